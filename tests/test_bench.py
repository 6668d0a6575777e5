"""python -m entropic_ae.bench: the measurements and the command line (tiny sizes)."""

import pytest
import torch

from entropic_ae import losses
from entropic_ae.bench import ENTROPY_TERMS, main, mlp_step_seconds, step_seconds, term_seconds


def test_measurements_are_positive_seconds():
    assert 0 < step_seconds("EAE", latent_dim=4, width=1 / 32, batch_size=8, device="cpu",
                            repeats=2) < 10
    for fn in ENTROPY_TERMS.values():
        assert 0 < term_seconds(fn, batch_size=20, dim=4, device="cpu", repeats=2) < 1
    assert 0 < mlp_step_seconds(losses.mse, {"mse": 1.0}, layer_sizes=(16, 4, 16), batch_size=8,
                                device="cpu", repeats=2, inner=2) < 1


def test_command_line_prints_a_table(capsys):
    assert main(["--models", "BN-AE", "EAE-MB", "--widths", "0.03125", "--batch-size", "8",
                 "--latent-dim", "4", "--repeats", "2", "--device", "cpu", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "images/s" in out and "EAE-MB" in out and "minibatch surrogate" in out


def test_bad_model_name_is_refused():
    with pytest.raises(SystemExit):
        main(["--models", "GAN"])


def test_path_term_costs_report_every_kind_of_step():
    from entropic_ae.bench import path_term_costs

    x = torch.rand(64, 16)
    costs = path_term_costs([16, 8, 4, 8, 16], x, every=4, batch_size=16, rounds=8)
    assert set(costs) == {"plain", "every step", "evaluating step", "step in between",
                          "average step"}
    assert all(0 < t < 1 for t in costs.values())
    assert costs["average step"] == pytest.approx(
        (costs["evaluating step"] + 3 * costs["step in between"]) / 4)
