"""One seed rule: every sampled model and the command line refuse the same bad seeds with the same message.

The Python entry points name the input ``seeds`` and the command line names it ``--seeds``; apart
from that name the message is word for word the same.
"""
from __future__ import annotations

import pytest

from lowrank_icl.numerics import TaskSpectrum
from lowrank_icl.validation.cli.main import main
from lowrank_icl.validation.forward.bayes import bayes_errors
from lowrank_icl.validation.forward.simulate import simulate
from lowrank_icl.validation.forward.spectrum_simulate import simulate_spectrum
from lowrank_icl.validation.forward.y2_column import simulate_y2_column

POINT = dict(dim=8, alpha=2.0, kappa=1.0, sigma=0.1)
ENTRY_POINTS = {
    "simulate": lambda seeds: simulate(**POINT, tau=1.5, rho=0.5, seeds=seeds),
    "simulate(y2_column=True)": lambda seeds: simulate(**POINT, tau=1.5, rho=0.5, seeds=seeds, y2_column=True),
    "simulate(spectrum=...)": lambda seeds: simulate(**POINT, tau=1.5, seeds=seeds,
                                                     spectrum=TaskSpectrum.low_rank(0.5)),
    "simulate_spectrum": lambda seeds: simulate_spectrum(**POINT, tau=1.5, seeds=seeds,
                                                         spectrum=TaskSpectrum.low_rank(0.5)),
    "simulate_y2_column": lambda seeds: simulate_y2_column(**POINT, tau=1.5, rho=0.5, seeds=seeds),
    "bayes_errors": lambda seeds: bayes_errors(**POINT, rho=0.5, seeds=seeds, prompts=10),
}
CLI = {"simulate": "simulate --dim 8 --alpha 2 --tau 1.5 --kappa 1 --rho 0.5 --quiet --no-cache --seeds",
       "bayes": "bayes --estimator dmmse --dim 8 --alpha 2 --kappa 1 --rho 0.5 --prompts 10 --seeds"}

# (the seeds as the Python API takes them, the same seeds as command-line text, the message after the name)
BAD_SEEDS = [
    ([1, 1], "1,1", " must be distinct (repeats [1]): a repeated seed is the same draw and would shrink the "
                    "standard error"),
    ([-1], "-1", " must be integers >= 0 (got -1)"),
    ([0, 2, -3], "0,2,-3", " must be integers >= 0 (got -3)"),
    ("x", "x", " must look like 0-4 or 1,3,7 (got 'x')"),
    ([], "", " must list at least one seed"),
]


@pytest.mark.parametrize("seeds, text, message", BAD_SEEDS)
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_python_entry_points_share_the_seed_message(entry, seeds, text, message):
    with pytest.raises(ValueError) as info:
        ENTRY_POINTS[entry](seeds)
    assert str(info.value) == "seeds" + message


@pytest.mark.parametrize("seed, message", [(-1, " must be integers >= 0 (got -1)"),
                                           ("x", " must be integers >= 0 (got 'x')"),
                                           (1.5, " must be integers >= 0 (got 1.5)")])
def test_train_transformer_takes_one_seed_by_the_same_rule(seed, message, capsys):
    pytest.importorskip("jax")
    from lowrank_icl.validation.forward.transformers import train_transformer
    with pytest.raises(ValueError) as info:
        train_transformer(model="linear", **POINT, tau=1.5, rho=0.5, steps=1, seed=seed)
    assert str(info.value) == "seed" + message
    if isinstance(seed, int):
        code = main(["transformer", "--model", "linear", "--dim", "8", "--alpha", "2", "--tau", "1.5", "--kappa", "1",
                     "--steps", "1", "--seed", str(seed)])
        assert code == 2 and capsys.readouterr().err.strip().endswith("--seed" + message)


@pytest.mark.parametrize("seeds, text, message", [b for b in BAD_SEEDS if b[1]])
@pytest.mark.parametrize("command", sorted(CLI))
def test_command_line_shares_the_seed_message(command, seeds, text, message, capsys):
    code = main(CLI[command].split() + [text])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].endswith("--seeds" + message), err
