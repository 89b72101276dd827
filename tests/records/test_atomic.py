"""Atomic writes on shared filesystems: modes from the umask, short temporaries, long final names."""

from __future__ import annotations

import os
import stat

import pytest

from revise_prep.records.atomic import TMP_PREFIX, _create_temporary, atomic_write_bytes, clean_temporaries


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_get_the_mode_the_umask_allows(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "r.pkl", b"x")
        with open(tmp_path / "plain", "wb"):  # what open() gives: the reference
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.pkl").stat().st_mode) == mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_any_name_the_filesystem_takes_can_be_written(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    for name in ("x" * (limit - 4) + ".pkl", "中" * ((limit - 4) // 3) + ".pkl"):
        assert len(name.encode()) <= limit
        atomic_write_bytes(tmp_path / name, b"record")
        assert (tmp_path / name).read_bytes() == b"record"
    fd, tmp = _create_temporary(tmp_path, "x" * 255)
    os.close(fd)
    assert tmp.name.startswith(TMP_PREFIX) and len(tmp.name) == 22  # fixed, whatever the final name


def test_temporaries_are_found_by_their_owner_only(tmp_path):
    mine = [_create_temporary(tmp_path, "a" * 200 + ".pkl"), _create_temporary(tmp_path, "b.pkl")]
    other = _create_temporary(tmp_path, "c.pkl")
    for fd, _ in (*mine, other):
        os.close(fd)
    atomic_write_bytes(tmp_path / ".tmp-like-a-record.pkl", b"a record with an odd name")
    assert clean_temporaries(tmp_path, {"a" * 200 + ".pkl", "b.pkl"}) == 2
    assert other[1].exists() and (tmp_path / ".tmp-like-a-record.pkl").exists()
    assert clean_temporaries(tmp_path) == 1 and (tmp_path / ".tmp-like-a-record.pkl").exists()
