"""The printed report of ``lowrank-icl bench --quick``: it names the sizes it ran, never prints a 0x
ratio, and says what the offset of the sampled estimator means."""
from __future__ import annotations

import contextlib
import io
import re

import pytest

from lowrank_icl.validation.bench import QUICK_SPECTRUM_SIZES, ratio_text
from lowrank_icl.validation.cli.main import main


@pytest.fixture(scope="module")
def quick_text():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["bench", "--quick"]) == 0
    return out.getvalue()


def test_quick_labels_the_sizes_it_ran(quick_text):
    side = QUICK_SPECTRUM_SIZES["forward"]["side"]
    speed, sbs = QUICK_SPECTRUM_SIZES["speed"], QUICK_SPECTRUM_SIZES["side_by_side"]
    assert "D=8 tau=2" in quick_text
    assert f"forward solver, {side} x {side} (alpha, kappa) grid" in quick_text
    assert f"general spectrum: {speed['atoms']} atoms x {speed['points']} points" in quick_text
    assert f"mean of {speed['baseline_points']} points" in quick_text
    assert (f"(d={sbs['dim']}, {sbs['draws']} sampled pools per estimate, {sbs['repeats']} estimates per row)"
            in quick_text)
    assert f"power:0.6 ({sbs['dim']} atoms)" in quick_text
    # the full-size labels of the default run must not appear in a run that did not use them
    assert "d=100, 10 pools per estimate" not in quick_text and "(100 atoms)" not in quick_text


def test_quick_prints_no_zero_ratio(quick_text):
    numbers = re.findall(r"(?<![\w.])([0-9][0-9.e+-]*)x(?!\w)", quick_text)
    assert len(numbers) >= 10  # dense/auto, damped/reduced (wall, CPU), two spectrum baselines, six table rows
    assert all(float(r) > 0 for r in numbers), numbers
    assert not re.search(r"(?<![\d.])0x", quick_text)


def test_quick_says_what_the_sampled_offset_means(quick_text):
    assert "(mean-exact)/sd" not in quick_text
    assert "offset/sd = (sampled mean - exact) / sd of one estimate" in quick_text
    assert "describes the sampled estimator, not an error of" in quick_text


@pytest.mark.parametrize("slow, fast, text", [
    (3.0, 0.0, "n/a (a time was zero or not measured)"),
    (0.0, 1.0, "n/a (a time was zero or not measured)"),
    (float("nan"), 1.0, "n/a (a time was zero or not measured)"),
    (0.02, 1.0, "0.02x"),
    (6.84, 1.0, "6.8x"),
    (152.4, 10.0, "15x"),
])
def test_ratio_text(slow, fast, text):
    assert ratio_text(slow, fast) == text
