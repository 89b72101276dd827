"""Bucket choice against brute-force statements of the rules (property-based), presets and parsing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revise_prep.settings import FrameSettings, frames_signature
from revise_prep.video.buckets import (PRESETS, choose_bucket, choose_frame_count, merge_small_buckets,
                                       parse_buckets, parse_frame_buckets, plan_sample)

sizes = st.tuples(st.integers(1, 60).map(lambda n: 16 * n), st.integers(1, 60).map(lambda n: 16 * n))
bucket_sets = st.lists(sizes, min_size=1, max_size=7, unique=True)
pictures = st.tuples(st.integers(1, 4000), st.integers(1, 4000))


def log_distance(h, w, bh, bw) -> float:
    return abs(math.log(w / h) - math.log(bw / bh))


# few aspects at several scales, and pictures of the same few aspects: exact ties are common
tie_prone_sets = st.lists(st.tuples(st.sampled_from([(2, 3), (3, 2), (1, 1), (3, 4), (4, 3)]), st.integers(1, 4))
                          .map(lambda t: (16 * t[0][0] * t[1], 16 * t[0][1] * t[1])), min_size=1, max_size=6, unique=True)
tie_prone_pictures = st.tuples(st.sampled_from([(1, 1), (2, 3), (3, 2), (1, 2), (2, 1), (12, 17)]),
                               st.integers(1, 50)).map(lambda t: (t[0][0] * t[1], t[0][1] * t[1]))


@settings(max_examples=400, deadline=None)
@given(st.one_of(pictures, tie_prone_pictures), st.one_of(bucket_sets, tie_prone_sets))
def test_choose_bucket_is_the_closest_in_log_aspect(picture, buckets):
    h, w = picture
    i = choose_bucket(h, w, buckets)
    d = [log_distance(h, w, *b) for b in buckets]
    area = [bh * bw for bh, bw in buckets]
    for j in range(len(buckets)):
        assert d[j] >= d[i] - 1e-12, (j, d[j], d[i])  # nothing is closer
        # an exact tie in aspect distance (cross-multiplied integers) goes to the larger area, then the first
        a_i = sorted((w * buckets[i][0], h * buckets[i][1]))
        a_j = sorted((w * buckets[j][0], h * buckets[j][1]))
        if a_i[1] * a_j[0] == a_j[1] * a_i[0] and j != i:
            assert area[j] < area[i] or (area[j] == area[i] and j > i), (i, j)


def test_choose_bucket_ties():
    # a square picture is as far from 2:3 as from 3:2: the larger area wins, then the first listed
    assert choose_bucket(100, 100, [(32, 48), (48, 32)]) == 0
    assert choose_bucket(100, 100, [(48, 32), (32, 48)]) == 0
    assert choose_bucket(100, 100, [(32, 48), (64, 96), (48, 32)]) == 1
    assert choose_bucket(720, 1280, PRESETS["wan-480p"]) == 0 and choose_bucket(1280, 720, PRESETS["wan-480p"]) == 1
    assert PRESETS["wan-480p"][choose_bucket(480, 640, PRESETS["wan-480p"])] == (544, 720)
    assert PRESETS["wan-480p"][choose_bucket(1080, 1080, PRESETS["wan-480p"])] == (624, 624)
    assert PRESETS["wan-480p"][choose_bucket(1080, 2560, PRESETS["wan-480p"])] == (480, 832)  # ultrawide


def serves(total, count, interval, skip, strict) -> bool:
    """Brute force: some interval in 1..requested samples ``count`` frames, with the original's condition."""
    need = (lambda r: count * r + skip) if strict else (lambda r: (count - 1) * r + 1 + skip)
    return any(total >= need(r) for r in range(1, interval + 1))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=1, max_size=2), st.lists(st.integers(0, 25).map(lambda n: 4 * n + 1),
       min_size=1, max_size=5, unique=True), st.integers(1, 5), st.integers(0, 10), st.booleans())
def test_choose_frame_count_is_the_largest_both_serve(totals, counts, interval, skip, strict):
    chosen = choose_frame_count(totals, counts, interval, skip, strict)
    served = [c for c in counts if all(serves(t, c, interval, skip, strict) for t in totals)]
    assert chosen == (max(served) if served else None)
    if len(totals) == 2 and chosen is not None:  # the pair's count is the smaller of the two videos' own counts
        own = [choose_frame_count([t], counts, interval, skip, strict) for t in totals]
        assert chosen == min(own)


def test_plan_sample_uses_source_aspect_and_shared_count():
    frames = FrameSettings(frame_num=9, interval=2, buckets=((32, 48), (48, 32), (32, 32)), frame_buckets=(9, 5))
    s, why = plan_sample(frames, (64, 40), {"source": 40, "target": 8})  # portrait source, short target
    assert (s.height, s.width, s.frame_num, s.interval) == (48, 32, 5, 2)
    assert why["size"] == [48, 32] and why["frame_num"] == 5 and why["source_display"] == [64, 40]
    assert "target 8" in why["frame_reason"] and "closest in log aspect" in why["size_reason"]
    s, _ = plan_sample(frames, (10, 10), {"source": 3})  # too short for any: the smallest, reading reports it
    assert (s.height, s.width, s.frame_num) == (32, 32, 5)


def test_parse_and_validation_errors():
    assert parse_buckets("32x48, 48x32") == ((32, 48), (48, 32))
    assert parse_buckets("wan-720p") == PRESETS["wan-720p"]
    assert parse_frame_buckets("81,49,33,17") == (81, 49, 33, 17)
    for sizes in PRESETS.values():
        FrameSettings(buckets=sizes)  # every preset passes the multiple-of-16 check
    with pytest.raises(ValueError, match="multiples of 16.*40x48"):
        parse_buckets("32x48,40x48")
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        parse_buckets("480-832")
    with pytest.raises(ValueError, match="4n\\+1.*80"):
        parse_frame_buckets("81,80")
    with pytest.raises(ValueError, match="multiples of 16"):
        FrameSettings(buckets=((30, 48),))


def test_signature_omits_unset_bucket_keys():
    from dataclasses import asdict

    plain = FrameSettings(frame_num=5, interval=2, height=32, width=48)
    assert frames_signature(plain) == {k: v for k, v in asdict(plain).items()
                                       if k not in ("buckets", "frame_buckets")}
    sig = frames_signature(FrameSettings(buckets=((32, 48),), frame_buckets=(5,), frame_num=5))
    assert sig["buckets"] == ["32x48"] and sig["frame_buckets"] == [5]


LAND, PORT, SQUARE = (40, 64), (64, 40), (48, 48)  # source displayed (height, width)


def test_merge_small_buckets_examples():
    sizes = ((32, 48), (48, 32), (32, 32))
    samples = [(LAND, (9, 32, 48))] * 5 + [(LAND, (5, 32, 48))] * 4 + [(PORT, (9, 48, 32))] + \
        [(SQUARE, (9, 32, 32))] * 2 + [None]
    merged = merge_small_buckets(samples, sizes, 4)
    # each goes to the nearest bucket with enough samples that it can serve, the most frames first; the square
    # pair is as far from 32x48 as from 48x32 and goes to the first listed
    assert merged == [(9, 32, 48)] * 5 + [(5, 32, 48)] * 4 + [(9, 32, 48)] * 3 + [None]
    assert merge_small_buckets(samples, sizes, 1) == [None if s is None else s[1] for s in samples]
    # the same aspect with fewer frames before another aspect
    samples = [(LAND, (9, 32, 48))] * 2 + [(LAND, (5, 32, 48))] * 6 + [(SQUARE, (9, 32, 32))] * 6
    assert merge_small_buckets(samples, sizes, 4)[:2] == [(5, 32, 48)] * 2
    # never more frames than the sample's videos serve, and never into a bucket that is small too: it stays
    samples = [(LAND, (5, 32, 48))] + [(LAND, (9, 32, 48))] * 6 + [(SQUARE, (9, 32, 32))] * 3
    assert merge_small_buckets(samples, sizes, 4) == [(5, 32, 48)] + [(9, 32, 48)] * 9


bucket_samples = st.lists(st.one_of(st.none(), st.tuples(
    st.sampled_from([LAND, PORT, SQUARE, (30, 40), (72, 168)]),
    st.tuples(st.sampled_from([5, 9, 17]), st.sampled_from([(32, 48), (48, 32), (32, 32)])).map(
        lambda t: (t[0], *t[1])))), max_size=40)


@settings(max_examples=300, deadline=None)
@given(bucket_samples, st.integers(1, 8), st.randoms(use_true_random=False))
def test_merge_small_buckets_invariants(samples, minimum, rng):
    from collections import Counter

    sizes = ((32, 48), (48, 32), (32, 32))
    merged = merge_small_buckets(samples, sizes, minimum)
    own = Counter(s[1] for s in samples if s is not None)
    final = Counter(b for b in merged if b is not None)
    for s, b in zip(samples, merged):
        if s is None:
            assert b is None
            continue
        assert b[0] <= s[1][0] and b[1:] in sizes  # never more frames than its own bucket's
        if b != s[1]:  # only samples of small buckets move, and only to one that had enough on its own
            assert own[s[1]] < minimum <= own[b]
        elif own[b] < minimum:  # left in a small bucket: no bucket with enough samples serves it
            assert not any(n >= minimum and c[0] <= s[1][0] for c, n in own.items())
    # a bucket big enough on its own only gains samples
    assert all(final[b] >= n for b, n in own.items() if n >= minimum)
    order = list(range(len(samples)))
    rng.shuffle(order)
    again = merge_small_buckets([samples[i] for i in order], sizes, minimum)
    assert again == [merged[i] for i in order]  # depends on the samples, not on their order
