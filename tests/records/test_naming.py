"""Output names: the original's rule, collisions disambiguated, exact duplicates detected."""

from hypothesis import given
from hypothesis import strategies as st

from revise_prep.inputs import Sample
from revise_prep.records.naming import original_name, plan_names, stable_suffix


def pair(i, src, tgt, text="an instruction long enough"):
    return Sample(index=i, source=src, target=tgt, instruction=text)


def test_original_rule():
    assert original_name(pair(0, "x/y/s.mp4", "z/target_0.mp4")) == "target_0"
    # stems shorter than 4 characters get the *source* video's parent folder as prefix
    assert original_name(pair(0, "data/seq12/s.mp4", "other/abc.mp4")) == "seq12_abc"
    assert original_name(pair(0, "data/seq12/s.mp4", "other/abcd.mp4")) == "abcd"
    # the original crashes here (no folder in the source path); we keep the bare stem
    assert original_name(pair(0, "s.mp4", "ab.mp4")) == "ab"
    caption = Sample(index=0, source="vids/clip_01.mp4", target=None, instruction="a caption here")
    assert original_name(caption) == "clip_01"


def test_collisions_keep_first_and_suffix_later():
    samples = [pair(0, "a/s.mp4", "a/outp.mp4"), pair(1, "b/s.mp4", "b/outp.mp4"), pair(2, "c/s.mp4", "c/outp.mp4")]
    plan = plan_names(samples)
    assert plan.names[0] == "outp"
    assert plan.names[1] == f"outp-{stable_suffix(samples[1])}"
    assert plan.names[2] == f"outp-{stable_suffix(samples[2])}"
    assert plan.renamed == {1: "outp", 2: "outp"}
    # stable: the same sample gets the same name in another run / another order of the others
    again = plan_names([samples[0], pair(5, "c/s.mp4", "c/outp.mp4")])
    assert again.names[5] == plan.names[2]


def test_exact_duplicates():
    samples = [pair(0, "a/s.mp4", "a/t.mp4"), pair(1, "a/s.mp4", "a/t.mp4"), pair(2, "a/s.mp4", "a/t.mp4", "other text!")]
    plan = plan_names(samples)
    assert plan.duplicates == {1: 0}
    assert 1 not in plan.names and plan.names[2] != plan.names[0]


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "ab", "long_name"]), st.sampled_from(["p", "q/r"]),
                          st.sampled_from(["x", "yy"])), max_size=30))
def test_names_unique_and_cover_every_non_duplicate(entries):
    samples = [pair(i, f"{folder}/src.mp4", f"{folder}/{stem}.mp4", text * 6) for i, (stem, folder, text) in
               enumerate(entries)]
    plan = plan_names(samples)
    assert len(set(plan.names.values())) == len(plan.names)
    assert set(plan.names) | set(plan.duplicates) == {s.index for s in samples}
    assert not set(plan.names) & set(plan.duplicates)


def test_unsafe_characters_are_replaced():
    from revise_prep.records.naming import safe_stem

    assert safe_stem("a\nb") == "a_b" and safe_stem("x\ry\tz\x7f") == "x_y_z_"
    assert safe_stem("line\u2028sep\u2029") == "line_sep_" and safe_stem("a\x85b") == "a_b"
    assert safe_stem("..") == "_.." and safe_stem("") == "_"
    assert safe_stem("normal name (1) é") == "normal name (1) é"
    for stem in ("a\nb", "x\u2028y", "\x1c\x1d\x1e"):
        assert len(safe_stem(stem).splitlines()) == 1  # one line of a list file, however it is split


def test_long_names_are_bounded_in_bytes_with_a_stable_hash():
    import hashlib

    from revise_prep.records.naming import bounded

    cjk = "中" * 90  # 270 bytes
    short = bounded(cjk, 251)
    assert len(short.encode()) <= 251 and short.startswith("中" * 80)
    assert short.endswith("-" + hashlib.sha1(cjk.encode()).hexdigest()[:8])  # stable: same name every run
    assert bounded("x" * 251, 251) == "x" * 251 and len(bounded("x" * 252, 251)) == 251
    assert bounded("y" * 300, 251) != bounded("y" * 301, 251)


def test_plan_names_bounds_every_name_and_keeps_the_original():
    long_stem = "v" * 251  # the longest video name (255 bytes); its .pkl fits, not with a collision suffix
    samples = [pair(0, "a/s.mp4", f"a/{long_stem}.mp4"), pair(1, "b/s.mp4", f"b/{long_stem}.mp4"),
               pair(2, "c/s.mp4", "c/two\nlines.mp4"), pair(3, "d/" + "p" * 250 + "/s.mp4", "e/abc.mp4")]
    plan = plan_names(samples, max_bytes=251)
    assert all(len(n.encode()) <= 251 for n in plan.names.values())
    assert len(set(plan.names.values())) == 4
    assert plan.names[0] == long_stem and plan.renamed == {1: long_stem} and plan.names[1].startswith("v" * 240)
    assert plan.names[2] == "two_lines" and plan.altered[2] == "two\nlines"
    assert plan.altered[3] == "p" * 250 + "_abc"  # the original's short-name prefix made it too long
