"""Content-addressed cache: keys follow the job and the code, corrupt entries are recomputed."""
import json

import numpy as np
import pytest

from lowrank_icl.validation.cache import Cache, canonical_json, code_fingerprint, default_cache_dir

CODE = ("lowrank_icl.validation.io",)


def test_default_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LOWRANK_ICL_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LOWRANK_ICL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "lowrank-icl"


def test_key_depends_on_every_job_field_and_the_code(tmp_path):
    cache = Cache("unit", CODE, tmp_path)
    job = {"alpha": 1.0, "seed": 3, "dims": [8, 16]}
    base = cache.key(job)
    assert cache.key(dict(reversed(list(job.items())))) == base       # order of fields is irrelevant
    for changed in ({**job, "alpha": 1.0000000000000002}, {**job, "seed": 4}, {**job, "dims": [8, 17]},
                    {**job, "extra": None}):
        assert cache.key(changed) != base
    other_code = Cache("unit", ("lowrank_icl.validation.cache",), tmp_path)
    assert code_fingerprint(*CODE) != code_fingerprint("lowrank_icl.validation.cache")
    assert other_code.key(job) != base
    assert Cache("other", CODE, tmp_path).key(job) != base


def test_round_trip_with_arrays_and_non_finite_values(tmp_path):
    cache = Cache("unit", CODE, tmp_path)
    job = {"kappa": float("inf"), "seed": 0}
    calls = []

    def compute():
        calls.append(1)
        return {"err": 0.5, "values": [1.0, 2.0]}, {"gamma": np.arange(6.0).reshape(2, 3)}

    value, arrays = cache.get_or_compute(job, compute)
    value2, arrays2 = cache.get_or_compute(job, compute)
    assert len(calls) == 1 and value2 == value
    np.testing.assert_array_equal(arrays2["gamma"], np.arange(6.0).reshape(2, 3))
    assert canonical_json(job) == '{"kappa":"inf","seed":0}'


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing_npz"])
def test_corrupt_entry_is_discarded_with_a_note(tmp_path, capsys, damage):
    cache = Cache("unit", CODE, tmp_path)
    job = {"seed": 1}
    cache.store(job, {"x": 1.0}, {"a": np.ones(3)})
    meta, npz = cache.paths(cache.key(job))
    if damage == "truncate":
        meta.write_text(meta.read_text()[:20])
    elif damage == "garbage":
        meta.write_text(json.dumps({"key": "wrong", "value": 1}))
    else:
        npz.unlink()
    assert cache.load(job) is None
    assert "discarding corrupt cache entry" in capsys.readouterr().err
    assert not meta.exists()
    assert cache.get_or_compute(job, lambda: {"x": 2.0}) == {"x": 2.0}


def test_unusable_directory_is_refused(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        Cache("unit", CODE, a_file)
    with pytest.raises(ValueError, match="cannot be created"):
        Cache("unit", CODE, a_file / "sub")
