"""The training loop: reproducible steps, regularisers around the optimiser step, the plateau
policy, checkpoints that resume bit-identically, and clear errors (entropic_ae.training)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from entropic_ae.checkpoints import CheckpointError
from entropic_ae.training import History, Plateau, default_device, set_seed, train


class TinyAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(64, 6)
        self.dec = nn.Linear(6, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.relu(self.enc(x.reshape(x.shape[0], -1)))
        return torch.sigmoid(self.dec(z)).reshape(x.shape)


def make_model(seed: int = 0) -> TinyAE:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return TinyAE()


def loss_fn(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    # a noisy term exercises the global RNG, which resuming must restore too
    return {"mse": ((model(x) - x) ** 2).mean(),
            "l1": sum(p.abs().sum() for p in model.parameters()) / 1000 + torch.randn(()) * 1e-3}


@pytest.fixture(scope="module")
def data() -> torch.Tensor:
    return torch.rand(256, 1, 8, 8, generator=torch.Generator().manual_seed(123))


def run(data, epochs, **kw):
    model = make_model(kw.pop("init", 0))
    kw.setdefault("batch_size", 48)  # 256 = 5*48 + 16: a short last batch
    kw.setdefault("lr", 1e-2)
    kw.setdefault("seed", 0)
    return model, train(model, loss_fn, data, epochs=epochs, **kw)


def params(model):
    return [p.detach().clone() for p in model.parameters()]


def test_history_holds_sample_weighted_means_of_every_term(data):
    model, hist = run(data, 3, weights={"l1": 0.5})
    assert hist.epochs == 3 and set(hist.terms) == {"mse", "l1", "loss"}
    for e in range(3):
        assert hist.terms["loss"][e] == pytest.approx(hist.terms["mse"][e]
                                                      + 0.5 * hist.terms["l1"][e], rel=1e-5)
    assert hist.terms["mse"][2] < hist.terms["mse"][0]
    assert hist.lr == [1e-2] * 3 and hist.stopped is None and not model.training
    assert History.from_dict(hist.to_dict()).to_dict() == hist.to_dict()
    assert list(hist.as_frame().columns) == ["mse", "l1", "loss", "lr"]


def test_same_seed_same_result_and_the_seed_matters(data):
    a, _ = run(data, 2)
    b, _ = run(data, 2)
    c, _ = run(data, 2, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(params(a), params(b), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(params(a), params(c), strict=True))


def test_resume_is_bit_identical_and_a_finished_checkpoint_loads(data, tmp_path):
    ckpt = tmp_path / "c.pt"
    straight, h1 = run(data, 4)
    run(data, 2, checkpoint=ckpt)
    resumed, h2 = run(data, 4, checkpoint=ckpt, init=7)  # other init: the weights are loaded
    assert all(torch.equal(x, y) for x, y in zip(params(straight), params(resumed), strict=True))
    assert h1.to_dict() == h2.to_dict() and len(h2.epoch_seconds) == 2
    again, h3 = run(data, 4, checkpoint=ckpt, init=3)
    assert h3.epoch_seconds == [] and h3.to_dict() == h1.to_dict()


def test_checkpoint_bytes_do_not_depend_on_the_clock(data, tmp_path):
    run(data, 2, checkpoint=tmp_path / "a.pt")
    run(data, 2, checkpoint=tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


@pytest.mark.parametrize("change", [{"batch_size": 32}, {"seed": 1}, {"optimizer": "sgd"}])
def test_a_checkpoint_of_another_configuration_is_refused_naming_the_difference(
        data, tmp_path, change):
    ckpt = tmp_path / "c.pt"
    run(data, 1, checkpoint=ckpt)
    with pytest.raises(CheckpointError, match=str(ckpt)):
        run(data, 2, checkpoint=ckpt, **change)


def test_other_data_is_refused_by_the_fingerprint(data, tmp_path):
    ckpt = tmp_path / "c.pt"
    run(data, 1, checkpoint=ckpt)
    other = data.clone()
    other[100, 0, 3, 3] += 1e-3
    with pytest.raises(CheckpointError, match="data"):
        run(other, 2, checkpoint=ckpt)


def test_a_damaged_checkpoint_is_never_resumed(data, tmp_path):
    ckpt = tmp_path / "c.pt"
    run(data, 1, checkpoint=ckpt)
    raw = bytearray(ckpt.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum|cannot be read"):
        run(data, 2, checkpoint=ckpt)


class Recorder:
    """A regulariser that records when it is called and adds a known gradient."""

    name = "probe"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def before_step(self, model, step, x):
        self.calls.append(("before", step))
        grad_seen = model.enc.weight.grad is not None
        model.enc.bias.grad.add_(1.0)  # lands in this step's update
        return float(grad_seen)

    def after_step(self, model, step, lr):
        self.calls.append(("after", step))

    def reset(self):
        self.calls.append(("reset", -1))


def test_regularisers_act_between_backward_and_step_and_after_it(data):
    probe = Recorder()
    model, hist = run(data, 2, regularisers=[probe], optimizer="sgd")
    steps_per_epoch = 6  # 256 = 5 * 48 + 16
    kinds = [k for k, _ in probe.calls]
    assert kinds.count("reset") == 2 and kinds.count("before") == 2 * steps_per_epoch
    assert probe.calls[1:3] == [("before", 0), ("after", 0)]
    assert hist.terms["probe"] == [1.0, 1.0]  # the gradient existed when it ran


def test_a_regulariser_gradient_enters_the_same_step(data):
    class Push:
        name = "push"

        def before_step(self, model, step, x):
            model.enc.bias.grad.add_(100.0)

        def after_step(self, model, step, lr):
            pass

        def reset(self):
            pass

    plain, _ = run(data, 1, optimizer="sgd")
    pushed, _ = run(data, 1, optimizer="sgd", regularisers=[Push()])
    # SGD with momentum: the added gradient moves every bias down by a large amount
    assert (pushed.enc.bias < plain.enc.bias - 1.0).all()


def test_a_plateau_cuts_the_rate_stops_and_returns_the_best_weights(data):
    values = iter([1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])
    snapshots = []

    def validate(model):
        snapshots.append(params(model))
        return next(values)

    model, hist = run(data, 9, validate=validate, plateau=Plateau(patience=2, factor=0.5,
                                                                   cuts=1))
    # epochs 3 and 4 do not improve on 0.5 -> cut; 5 and 6 do not -> stop (after one cut)
    assert hist.validation == [1.0, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert hist.lr == [1e-2, 1e-2, 1e-2, 1e-2, 5e-3, 5e-3]
    assert hist.stopped == 6 and hist.best_epoch == 2
    assert all(torch.equal(x, y) for x, y in zip(params(model), snapshots[1], strict=True))


def test_a_plateau_resumes_bit_identically(data, tmp_path):
    def validate(model):
        return float(model.dec.bias.detach().sum()) ** 2  # deterministic in the weights

    policy = Plateau(patience=1, factor=0.5, cuts=1)
    straight, h1 = run(data, 6, validate=validate, plateau=policy)
    run(data, 3, validate=validate, plateau=policy, checkpoint=tmp_path / "c.pt")
    resumed, h2 = run(data, 6, validate=validate, plateau=policy, checkpoint=tmp_path / "c.pt")
    assert h1.to_dict() == h2.to_dict()
    assert all(torch.equal(x, y) for x, y in zip(params(straight), params(resumed), strict=True))


def test_resume_after_sigkill_is_bit_identical(data, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(f"""
import os, signal, sys, torch
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_training import run
data = torch.rand(256, 1, 8, 8, generator=torch.Generator().manual_seed(123))
n = int(sys.argv[1])
run(data, n, checkpoint={str(tmp_path / 'k.pt')!r})
if n == 2:
    os.kill(os.getpid(), signal.SIGKILL)
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, str(script), "2"], env=env)
    assert killed.returncode == -signal.SIGKILL
    subprocess.run([sys.executable, str(script), "4"], env=env, check=True)
    straight, _ = run(data, 4)
    resumed = make_model()
    train(resumed, loss_fn, data, epochs=4, lr=1e-2, batch_size=48, seed=0,
          checkpoint=tmp_path / "k.pt")
    assert all(torch.equal(x, y) for x, y in zip(params(straight), params(resumed), strict=True))


def test_a_last_batch_of_one_sample_joins_the_previous_batch():
    from entropic_ae.training import _batch_bounds

    assert _batch_bounds(7, 3) == [(0, 3), (3, 7)]
    assert _batch_bounds(6, 3) == [(0, 3), (3, 6)]
    assert _batch_bounds(5, 2) == [(0, 2), (2, 5)]


def test_non_finite_terms_name_the_term_and_the_epoch(data):
    def bad(model, x):
        return {"mse": ((model(x) - x) ** 2).mean() * float("nan")}

    with pytest.raises(FloatingPointError, match="epoch 0.*mse=nan"):
        train(make_model(), bad, data, epochs=1, lr=1e-3, batch_size=64, seed=0)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"epochs": 0}, ValueError, "epochs must be >= 1"),
    ({"epochs": 1.5}, TypeError, "epochs must be an int"),
    ({"batch_size": 1}, ValueError, "batch_size must be >= 2"),
    ({"lr": -1.0}, ValueError, "lr must be > 0"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"optimizer": "adagrad"}, ValueError, "optimizer must be one of"),
    ({"weights": {"kl": 1.0}}, ValueError, r"weights given for \['kl'\]"),
    ({"plateau": Plateau()}, ValueError, "needs validate"),
    ({"regularisers": [object()]}, TypeError, "not a Regulariser"),
])
def test_bad_arguments_say_what_is_wrong(data, kwargs, error, message):
    args = {"epochs": 1, "lr": 1e-3, "batch_size": 32, "seed": 0, **kwargs}
    with pytest.raises(error, match=message):
        train(make_model(), loss_fn, data, **args)


@pytest.mark.parametrize("x, error, message", [
    (torch.zeros(1, 64), ValueError, "at least 2 samples"),
    (torch.zeros(8, 64, dtype=torch.uint8), TypeError, "floating point"),
    (torch.tensor([[0.0] * 64, [float("nan")] * 64]), ValueError, "non-finite.*sample 1"),
    ([[0.0]], TypeError, "torch.Tensor"),
])
def test_bad_data(x, error, message):
    with pytest.raises(error, match=message):
        train(make_model(), loss_fn, x, epochs=1, lr=1e-3, batch_size=2, seed=0)


def test_a_loss_without_trainable_parameters_is_refused(data):
    with pytest.raises(ValueError, match="does not depend"):
        train(make_model(), lambda m, x: {"c": x.mean()}, data, epochs=1, lr=1e-3,
              batch_size=32, seed=0)


def test_plateau_and_device_helpers_check_their_arguments():
    with pytest.raises(ValueError, match="factor"):
        Plateau(factor=1.5)
    with pytest.raises(ValueError, match="patience"):
        Plateau(patience=0)
    assert default_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        default_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            default_device("cuda")
    with pytest.raises(TypeError, match="seed must be an int"):
        set_seed(1.0)


def test_bf16_autocast_runs_on_the_cpu_and_changes_the_numbers(data):
    a, _ = run(data, 1, precision="fp32")
    b, _ = run(data, 1, precision="bf16")
    assert not all(torch.equal(x, y) for x, y in zip(params(a), params(b), strict=True))
    with pytest.raises(ValueError, match="precision"):
        run(data, 1, precision="fp16")
