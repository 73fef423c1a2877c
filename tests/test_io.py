"""Atomic writers: content, permissions like open(), no temp files left behind."""
import json
import os
import stat

import numpy as np
import pytest

from lowrank_icl.validation.io import atomic_savez, atomic_write_bytes, atomic_write_csv, atomic_write_json, atomic_write_text


def test_atomic_writers_round_trip_and_mode(tmp_path):
    p = atomic_write_text(tmp_path / "sub" / "a.txt", "hello")
    assert p.read_text() == "hello"
    mask = os.umask(0)
    os.umask(mask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~mask)
    j = atomic_write_json(tmp_path / "b.json", {"x": np.float64(0.1), "v": np.arange(3)})
    assert json.loads(j.read_text()) == {"x": 0.1, "v": [0, 1, 2]}
    c = atomic_write_csv(tmp_path / "c.csv", ("a", "b"), [(1, 0.1)])
    assert c.read_text() == "a,b\n1,0.1\n"
    z = atomic_savez(tmp_path / "d.npz", {"g": np.eye(2)})
    with np.load(z, allow_pickle=False) as data:
        assert np.array_equal(data["g"], np.eye(2))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_json_files_are_strict_json(tmp_path):
    path = atomic_write_json(tmp_path / "n.json", {"nan": float("nan"), "inf": np.float64(np.inf), "v": np.array([1.5])})

    def refuse(token):
        raise AssertionError(f"bare {token}")
    assert json.loads(path.read_text(), parse_constant=refuse) == {"nan": None, "inf": "inf", "v": [1.5]}


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder"])
def test_atomic_writer_refuses_a_target_that_is_not_a_regular_file(tmp_path, kind):
    target = tmp_path / "out.nc"
    real = tmp_path / "real.txt"
    real.write_text("keep me")
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        target.symlink_to(real)
    else:
        target.mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        atomic_write_bytes(target, b"data")
    assert real.read_text() == "keep me"
    assert target.is_symlink() if kind == "symlink" else True
    if kind == "fifo":
        assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_atomic_writer_replaces_a_regular_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
