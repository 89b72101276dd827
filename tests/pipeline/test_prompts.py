"""PromptBank: batches upcoming prompts, encodes each distinct prompt once, frees what is no longer needed."""

import torch

from revise_prep.pipeline.prompts import PromptBank


class Recorder:
    """A real-shaped text encoder stand-in would hide nothing here: the bank only calls ``encode``."""

    def __init__(self):
        self.calls = []

    def encode(self, prompts):
        self.calls.append(list(prompts))
        return [torch.full((len(p), 2), float(len(p))) for p in prompts]


def test_batches_dedups_and_frees():
    enc = Recorder()
    order = ["aa", "b", "aa", "ccc", "dddd", "b", "eeeee"]
    bank = PromptBank(enc, order, batch_size=3)
    out = [bank.get(p) for p in order]
    assert enc.calls == [["aa", "b", "ccc"], ["dddd", "eeeee"]]
    for p, e in zip(order, out):
        assert e.shape == (len(p), 2)
    assert bank.ready == {}


def test_prompt_not_in_queue_still_encoded():
    enc = Recorder()
    bank = PromptBank(enc, ["x"], batch_size=4)
    assert bank.get("other").shape == (5, 2) and enc.calls == [["other", "x"]]


def test_prompts_added_later_join_the_next_batch():
    """A Ray actor starts with no prompts and adds those of the samples waiting in it: the next sample that needs
    an embedding takes them along (up to the batch size), each distinct prompt once."""
    enc = Recorder()
    bank = PromptBank(enc, [], batch_size=3)
    bank.add(["aa"])
    assert bank.get("aa").shape == (2, 2) and enc.calls == [["aa"]]
    bank.add(["b", "ccc", "b", "dddd"])  # three samples arrived while "aa" was encoded, then one more
    assert bank.get("b").shape == (1, 2)
    assert enc.calls == [["aa"], ["b", "ccc", "dddd"]]
    for p in ("ccc", "b", "dddd"):
        bank.get(p)
    assert len(enc.calls) == 2 and bank.ready == {}
