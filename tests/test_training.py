"""Tests for the training loop, schedules, checkpoints and evaluation (entropic_ae.training)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from entropic_ae.training import (
    History,
    checkpoint_path,
    constant,
    cosine,
    default_device,
    evaluate,
    linear_warmup,
    seeded,
    set_seed,
    steps,
    train,
)


class TinyAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(64, 6)
        self.dec = nn.Linear(6, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.relu(self.enc(x.reshape(x.shape[0], -1)))
        return torch.sigmoid(self.dec(z)).reshape(x.shape)


def make_model(seed: int = 0) -> TinyAE:
    torch.manual_seed(seed)
    return TinyAE()


def loss_fn(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    recon = model(x)
    # a noisy term exercises the global RNG, which resuming must restore too
    noise = torch.randn(()) * 1e-3
    return {
        "mse": ((recon - x) ** 2).mean(),
        "l1": sum(p.abs().sum() for p in model.parameters()) / 1000 + noise,
    }


@pytest.fixture(scope="module")
def data() -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    return torch.rand(256, 1, 8, 8, generator=g)


def run(data, epochs, **kw):
    model = make_model(kw.pop("init", 0))
    kw.setdefault("progress", False)
    kw.setdefault("device", "cpu")
    kw.setdefault("batch_size", 48)  # 256 = 5*48 + 16: exercises a short last batch
    hist = train(model, loss_fn, data, epochs=epochs, **kw)
    return model, hist


# --- schedules -----------------------------------------------------------------------------------


def test_schedules():
    assert [constant(0.3)(e) for e in range(3)] == [0.3, 0.3, 0.3]
    w = linear_warmup(1.0, 4)
    assert [w(e) for e in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert linear_warmup(2.0, 0)(0) == 2.0
    assert linear_warmup(1.0, 2, start=0.5)(1) == 0.75
    c = cosine(1.0, 0.0, 4)
    assert c(0) == 1.0 and c(4) == pytest.approx(0.0, abs=1e-12) and c(9) == c(4)
    assert c(2) == pytest.approx(0.5)
    s = steps({0: 0.0, 3: 1.0, 5: 0.1})
    assert [s(e) for e in range(7)] == [0.0, 0.0, 0.0, 1.0, 1.0, 0.1, 0.1]
    with pytest.raises(ValueError, match="finite"):
        constant(float("nan"))
    with pytest.raises(TypeError, match="number"):
        constant("1")
    with pytest.raises(ValueError, match=">= 0"):
        linear_warmup(1.0, -1)
    with pytest.raises(ValueError, match="first epoch key must be 0"):
        steps({2: 1.0})


def test_schedules_apply_per_epoch(data):
    _, hist = run(data, 4, weights={"mse": 1.0, "l1": linear_warmup(0.6, 3)})
    assert hist.weights["l1"] == pytest.approx([0.0, 0.2, 0.4, 0.6])
    assert hist.weights["mse"] == [1.0] * 4


# --- history -------------------------------------------------------------------------------------


def test_history_complete_and_total_consistent(data):
    _, hist = run(data, 3, weights={"mse": 0.7, "l1": 0.3})
    assert hist.epochs == 3
    assert set(hist.terms) == {"mse", "l1", "loss"}
    assert set(hist.weights) == {"mse", "l1"}
    assert all(len(v) == 3 for v in hist.terms.values())
    assert len(hist.epoch_seconds) == 3
    for e in range(3):
        expect = sum(hist.weights[k][e] * hist.terms[k][e] for k in ("mse", "l1"))
        assert hist.terms["loss"][e] == pytest.approx(expect, rel=1e-5)
    # a term with weight 0 is logged but not optimised; missing weights default to 1
    _, hist0 = run(data, 2, weights={"l1": 0.0})
    assert hist0.weights == {"mse": [1.0, 1.0], "l1": [0.0, 0.0]}
    assert hist0.terms["loss"] == pytest.approx(hist0.terms["mse"], rel=1e-6)


def test_history_terms_are_sample_weighted_means(data):
    """Epoch means of a term equal the mean over all samples (reference: one big batch)."""
    def per_sample(model, x):
        return {"mean_x": x.mean(), "mse": ((model(x) - x) ** 2).mean()}

    model = make_model()
    hist = train(model, per_sample, data, epochs=1, progress=False, device="cpu",
                 batch_size=100, weights={"mean_x": 0.0})
    assert hist.terms["mean_x"][0] == pytest.approx(data.mean().item(), rel=1e-6)


def test_history_roundtrip_and_frame(data):
    _, hist = run(data, 2)
    again = History.from_dict(hist.to_dict())
    assert again == hist
    assert hist.last() == {k: v[-1] for k, v in hist.terms.items()}
    with pytest.raises(ValueError, match="empty"):
        History().last()
    with pytest.raises(ValueError, match="History dict"):
        History.from_dict({"terms": {}})
    pd = pytest.importorskip("pandas")
    frame = hist.as_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == [1, 2]
    assert {"mse", "l1", "loss", "w_mse", "w_l1", "seconds"} <= set(frame.columns)


# --- determinism and checkpoints -----------------------------------------------------------------


def _assert_same(m1: nn.Module, m2: nn.Module) -> None:
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    for k in s1:
        assert torch.equal(s1[k], s2[k]), k


def test_same_seed_same_result_and_seed_matters(data):
    m1, h1 = run(data, 2)
    m2, h2 = run(data, 2)
    _assert_same(m1, m2)
    assert h1.terms == h2.terms
    m3, _ = run(data, 2, seed=1)
    assert not torch.equal(m1.enc.weight, m3.enc.weight)


def test_resume_is_bit_identical(data, tmp_path):
    weights = {"l1": linear_warmup(0.5, 3)}
    straight, h_straight = run(data, 4, weights=weights)

    ckpt = tmp_path / "run.pt"
    # "interrupted": the process dies after epoch 2 (the checkpoint was written before)
    class Interrupt(Exception):
        pass

    def die_after_two(epoch, history):
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(data, 4, weights=weights, checkpoint=ckpt, callback=die_after_two)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    torch.randn(100)  # the global RNG moves on in the meantime
    # resume with a freshly (differently) initialised model
    resumed, h_resumed = run(data, 4, weights=weights, checkpoint=ckpt, init=99)
    _assert_same(straight, resumed)
    assert h_resumed.terms == h_straight.terms
    assert h_resumed.weights == h_straight.weights
    assert h_resumed.epochs == 4


def test_resume_to_train_longer(data, tmp_path):
    ckpt = tmp_path / "run.pt"
    run(data, 2, checkpoint=ckpt)
    longer, h = run(data, 3, checkpoint=ckpt, init=5)
    straight, h3 = run(data, 3)
    _assert_same(longer, straight)
    assert h.terms == h3.terms


def test_finished_checkpoint_loads_without_training(data, tmp_path, capsys):
    ckpt = tmp_path / "done.pt"
    trained, hist = run(data, 2, checkpoint=ckpt)
    after_training = torch.rand(3)
    calls = []

    def counting_loss(model, x):
        calls.append(1)
        return loss_fn(model, x)

    fresh = make_model(7)
    torch.rand(10)
    again = train(fresh, counting_loss, data, epochs=2, checkpoint=ckpt, progress=True,
                  device="cpu", batch_size=48, desc="cached")
    assert calls == []
    # global RNG as after the training run: later cells draw the same numbers either way
    assert torch.equal(torch.rand(3), after_training)
    # the same completed progress bar as a run that trains
    assert "cached: 100%" in capsys.readouterr().err
    assert again == hist
    _assert_same(fresh, trained)
    assert not fresh.training
    with pytest.warns(UserWarning, match="more than"):
        train(make_model(), loss_fn, data, epochs=1, checkpoint=ckpt, progress=False,
              device="cpu", batch_size=48)


def test_checkpoint_mismatch_raises(data, tmp_path):
    ckpt = tmp_path / "run.pt"
    run(data, 1, checkpoint=ckpt)

    class Wider(TinyAE):
        def __init__(self):
            super().__init__()
            self.enc, self.dec = nn.Linear(64, 7), nn.Linear(7, 64)

    with pytest.raises(ValueError, match="different model architecture"):
        train(Wider(), loss_fn, data, epochs=2, checkpoint=ckpt, progress=False, device="cpu",
              batch_size=48)
    with pytest.raises(ValueError, match="batch_size"):
        run(data, 2, checkpoint=ckpt, batch_size=32)
    with pytest.raises(ValueError, match="data"):
        run(data[:200], 2, checkpoint=ckpt)
    with pytest.raises(ValueError, match="optimizer"):
        run(data, 2, checkpoint=ckpt, lr=1e-2)
    with pytest.raises(ValueError, match="weight"):
        run(data, 2, checkpoint=ckpt, weights={"l1": 0.5})
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read"):
        run(data, 1, checkpoint=bad)


def test_checkpoint_written_atomically(data, tmp_path):
    ckpt = tmp_path / "sub" / "run.pt"
    run(data, 1, checkpoint=ckpt)
    assert [p.name for p in ckpt.parent.iterdir()] == ["run.pt"]


def test_checkpoint_path():
    a = checkpoint_path("results", "mlp", lam=0.3, limit=None)
    assert a == checkpoint_path("results", "mlp", limit=None, lam=0.3)
    assert a != checkpoint_path("results", "mlp", lam=0.4, limit=None)
    assert a.parent.name == "results" and a.name.startswith("mlp-") and a.suffix == ".pt"
    with pytest.raises(ValueError, match="name"):
        checkpoint_path("results", "")


# --- other behaviour -----------------------------------------------------------------------------


def test_progress_bar_shown_and_silenced(data, capsys):
    run(data, 2, progress=True, desc="tiny run")
    err = capsys.readouterr().err
    assert "tiny run" in err and "2/2" in err and "mse=" in err
    run(data, 2, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_nan_term_raises(data):
    def nan_loss(model, x):
        t = loss_fn(model, x)
        t["bad"] = torch.log(torch.tensor(-1.0))
        return t

    with pytest.raises(FloatingPointError, match=r"epoch 0.*bad=nan"):
        train(make_model(), nan_loss, data, epochs=2, progress=False, device="cpu",
              weights={"bad": 0.0})


def test_model_in_eval_mode_and_dataset_input(data):
    ds = TensorDataset(data, torch.zeros(len(data), dtype=torch.long))
    m1, h1 = run(ds, 2)
    m2, h2 = run(data, 2)
    assert not m1.training
    _assert_same(m1, m2)  # a TensorDataset is read as its first tensor

    class PairDataset(Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            return data[i], i

    m3, h3 = run(PairDataset(), 2)
    _assert_same(m1, m3)  # same permutations, same batches -> same result
    assert h3.terms == h1.terms


def test_callback_can_stop_early(data):
    seen = []

    def cb(epoch, history):
        seen.append((epoch, history.epochs))
        return epoch == 1

    _, hist = run(data, 5, callback=cb)
    assert seen == [(0, 1), (1, 2)] and hist.epochs == 2


def test_custom_optimizer(data):
    _, hist = run(data, 2, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    assert hist.epochs == 2
    with pytest.raises(TypeError, match="Optimizer"):
        run(data, 1, optimizer=lambda p: None)


@pytest.mark.parametrize(
    ("kwargs", "exc", "msg"),
    [
        ({"epochs": -1}, ValueError, "epochs"),
        ({"epochs": 1.5}, TypeError, "epochs"),
        ({"epochs": 1, "batch_size": 0}, ValueError, "batch_size"),
        ({"epochs": 1, "weights": {"mse": float("inf")}}, ValueError, "finite"),
        ({"epochs": 1, "weights": {"typo": 1.0}}, ValueError, "typo"),
        ({"epochs": 1, "weights": {"loss": 1.0}}, ValueError, "loss"),
        ({"epochs": 1, "weights": {"mse": 0.0, "l1": 0.0}}, ValueError, "weight 0"),
        ({"epochs": 1, "weights": [1.0]}, TypeError, "mapping"),
        ({"epochs": 1, "seed": "0"}, TypeError, "seed"),
        ({"epochs": 1, "device": "tpu"}, ValueError, "device"),
    ],
)
def test_bad_arguments(data, kwargs, exc, msg):
    kwargs.setdefault("progress", False)
    with pytest.raises(exc, match=msg):
        train(make_model(), loss_fn, data, **kwargs)


def test_bad_loss_fn_and_data(data):
    with pytest.raises(TypeError, match="mapping"):
        train(make_model(), lambda m, x: ((m(x) - x) ** 2).mean(), data, epochs=1,
              progress=False)
    with pytest.raises(TypeError, match="scalar"):
        train(make_model(), lambda m, x: {"v": m(x) - x}, data, epochs=1, progress=False)
    with pytest.raises(TypeError, match="Tensor"):
        train(make_model(), loss_fn, [1, 2, 3], epochs=1, progress=False)
    with pytest.raises(ValueError, match="at least one"):
        train(make_model(), loss_fn, data[:0], epochs=1, progress=False)


def test_evaluate(data):
    model, _ = run(data, 1)
    model.train()
    res = evaluate(model, loss_fn, data, batch_size=100, weights={"l1": 0.5})
    assert not model.training
    with torch.no_grad():
        mse = ((model(data) - data) ** 2).mean().item()
    assert res["mse"] == pytest.approx(mse, rel=1e-5)
    assert res["loss"] == pytest.approx(res["mse"] + 0.5 * res["l1"], rel=1e-6)
    # seeded: reproducible and the global RNG is left alone
    state = torch.get_rng_state()
    assert evaluate(model, loss_fn, data) == evaluate(model, loss_fn, data)
    assert torch.equal(state, torch.get_rng_state())
    assert evaluate(model, loss_fn, TensorDataset(data))["mse"] == pytest.approx(mse, rel=1e-5)
    with pytest.raises(TypeError, match="schedule"):
        evaluate(model, loss_fn, data, weights={"l1": linear_warmup(1.0, 2)})


def test_seed_and_device_helpers():
    set_seed(3)
    a = torch.rand(3)
    set_seed(3)
    assert torch.equal(a, torch.rand(3))
    assert default_device("cpu") == torch.device("cpu")
    assert default_device("auto").type in {"cpu", "cuda", "mps"}
    assert math.isfinite(torch.rand(()).item())


# --- checkpoint integrity ------------------------------------------------------------------------


def _flip(path, start, count):
    data = bytearray(path.read_bytes())
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_a_checkpoint_are_refused_not_resumed(data, tmp_path):
    ckpt = tmp_path / "run.pt"
    model, _ = run(data, 1, checkpoint=ckpt)
    raw = ckpt.read_bytes()
    weights = model.enc.weight.detach().numpy().tobytes()
    start = raw.find(weights)
    assert start > 0, "the weights are stored as raw bytes inside the zip"
    good = ckpt.read_bytes()
    for where, count in ((start, len(weights)), (len(raw) // 2 - 1000, 2000)):
        ckpt.write_bytes(good)
        _flip(ckpt, where, count)
        fresh = make_model(5)
        before = {k: v.clone() for k, v in fresh.state_dict().items()}
        with pytest.raises(ValueError, match="delete it") as info:
            train(fresh, loss_fn, data, epochs=2, checkpoint=ckpt, progress=False,
                  device="cpu", batch_size=48)
        assert str(ckpt) in str(info.value)
        assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items()), \
            "nothing of a corrupted checkpoint reaches the model"
    ckpt.write_bytes(good)
    _flip(ckpt, start, len(weights))
    with pytest.raises(ValueError, match="checksum"):
        run(data, 2, checkpoint=ckpt)


@pytest.mark.parametrize(
    "change",
    [lambda x: x.flip(-1), lambda x: x.transpose(-1, -2), lambda x: x.flip(0),
     lambda x: torch.cat([x[1:2], x[:1], x[2:]]),
     lambda x: x.clone().index_put_((torch.tensor([100]),), x[100] + 1e-7)],
    ids=["flip-pixels", "transpose", "reverse-order", "swap-two-samples", "one-element-1e-7"],
)
def test_the_data_fingerprint_sees_every_element_and_the_order(data, tmp_path, change):
    ckpt = tmp_path / "run.pt"
    run(data, 1, checkpoint=ckpt)
    other = change(data)
    assert other.shape == data.shape and not torch.equal(other, data)
    with pytest.raises(ValueError, match="different data"):
        run(other, 2, checkpoint=ckpt)
    run(data.clone(), 2, checkpoint=ckpt)  # equal values, another tensor: accepted


@pytest.mark.parametrize(
    ("content", "message"),
    [({"format": 1}, "format 1"),
     ({"format": 1, "epoch": 1, "model": {}, "fingerprint": {}}, "format 1"),
     ({"format": "two"}, "not a checkpoint written by"),
     ([1, 2, 3], "not a checkpoint written by")],
)
def test_old_or_foreign_checkpoints_are_refused_clearly(data, tmp_path, content, message):
    ckpt = tmp_path / "old.pt"
    torch.save(content, ckpt)
    with pytest.raises(ValueError, match=message) as info:
        run(data, 1, checkpoint=ckpt)
    assert str(ckpt) in str(info.value) and "delete it" in str(info.value)


def test_a_checkpoint_missing_keys_names_them(data, tmp_path):
    ckpt = tmp_path / "run.pt"
    run(data, 1, checkpoint=ckpt)
    state = torch.load(ckpt, weights_only=True)
    for key in ("fingerprint", "sha256", "rng"):
        partial = {k: v for k, v in state.items() if k != key}
        torch.save(partial, ckpt)
        with pytest.raises(ValueError, match=f"lacks.*{key}") as info:
            run(data, 2, checkpoint=ckpt)
        assert str(ckpt) in str(info.value) and "delete it" in str(info.value)


def test_checkpoint_names_change_with_the_format():
    from entropic_ae import training

    name = checkpoint_path("results", "mlp", lam=0.3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "_CHECKPOINT_FORMAT", training._CHECKPOINT_FORMAT + 1)
        assert checkpoint_path("results", "mlp", lam=0.3) != name


KILLED_RUN = r"""
import os, signal, sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
import test_training as t

data = torch.rand(256, 1, 8, 8, generator=torch.Generator().manual_seed(123))

def kill_after_two(epoch, history):
    if epoch == 1:
        os.kill(os.getpid(), signal.SIGKILL)

t.run(data, 4, weights={"l1": t.linear_warmup(0.5, 3)}, checkpoint=sys.argv[2],
      callback=kill_after_two)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_resume_after_sigkill_is_bit_identical(data, tmp_path, one_thread):
    ckpt = tmp_path / "killed.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(Path(__file__).parent), str(ckpt)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    weights = {"l1": linear_warmup(0.5, 3)}
    resumed, h_resumed = run(data, 4, weights=weights, checkpoint=ckpt, init=99)
    straight, h_straight = run(data, 4, weights=weights)
    _assert_same(straight, resumed)
    assert h_resumed.terms == h_straight.terms


def test_concurrent_writers_leave_a_valid_file(data, tmp_path):
    from entropic_ae import training

    ckpt = tmp_path / "shared.pt"
    model, _ = run(data, 1, checkpoint=ckpt)
    state = torch.load(ckpt, weights_only=True)
    errors = []

    def writer(seed):
        try:
            for epoch in range(8):
                s = dict(state, epoch=epoch, history={"terms": {}, "weights": {},
                                                      "epoch_seconds": [float(seed)]})
                s["model"] = {k: v + seed for k, v in state["model"].items()}
                training._save_checkpoint(ckpt, s)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    loaded = training._load_checkpoint(ckpt, torch.device("cpu"))  # checksum verified
    seed = int(loaded["history"]["epoch_seconds"][0])
    assert torch.equal(loaded["model"]["enc.weight"], state["model"]["enc.weight"] + seed)
    assert [p.name for p in tmp_path.iterdir()] == ["shared.pt"], "no temporary files left"


# --- batches, data checks and seeding ------------------------------------------------------------


class TinyBNAE(TinyAE):
    """TinyAE with a batch norm on the code: a batch of one sample cannot be normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.norm(self.enc(x.reshape(x.shape[0], -1)))
        return torch.sigmoid(self.dec(z)).reshape(x.shape)


def _recording_loss(sizes):
    def loss(model, x):
        sizes.append(x.shape[0])
        return {"mse": ((model(x) - x) ** 2).mean()}
    return loss


@pytest.mark.parametrize("model_class", [TinyAE, TinyBNAE])
def test_a_final_batch_of_one_sample_is_merged_into_the_previous(data, model_class):
    sizes = []
    torch.manual_seed(0)
    hist = train(model_class(), _recording_loss(sizes), data[:97], epochs=2, batch_size=48,
                 progress=False, device="cpu")
    assert sizes == [48, 49] * 2 and hist.epochs == 2
    ds_sizes = []
    torch.manual_seed(0)
    train(model_class(), _recording_loss(ds_sizes), TensorDataset(data[:97]), epochs=1,
          batch_size=48, progress=False, device="cpu")
    assert ds_sizes == [48, 49]
    sizes.clear()
    train(model_class(), _recording_loss(sizes), data[:98], epochs=1, batch_size=48,
          progress=False, device="cpu")
    assert sizes == [48, 48, 2], "a final batch of two is left alone"


def test_the_merged_batch_holds_every_sample_once(data):
    seen = []

    def loss(model, x):
        seen.append(x.reshape(x.shape[0], -1)[:, 0].clone())
        return {"mse": ((model(x) - x) ** 2).mean()}

    train(make_model(), loss, data[:49], epochs=1, batch_size=8, progress=False, device="cpu")
    firsts = torch.cat(seen)
    assert [len(s) for s in seen] == [8] * 5 + [9]
    assert torch.equal(firsts.sort().values, data[:49].reshape(49, -1)[:, 0].sort().values)


@pytest.mark.parametrize(("n", "batch_size"), [(1, 128), (50, 1)])
def test_batch_norm_with_single_sample_batches_fails_up_front(data, n, batch_size):
    calls = []
    with pytest.raises(ValueError, match="batch norm") as info:
        train(TinyBNAE(), _recording_loss(calls), data[:n], epochs=1, batch_size=batch_size,
              progress=False, device="cpu")
    assert calls == [], "the error comes before any step"
    assert "BatchNorm1d" in str(info.value)
    # without batch norm one sample is a valid (if tiny) dataset
    train(make_model(), _recording_loss(calls), data[:1], epochs=1, progress=False, device="cpu")
    assert calls == [1]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_tensor_data_is_refused_before_the_first_step(data, bad):
    x = data.clone()
    x[37, 0, 3, 4] = bad
    calls = []
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"NaN or infinite.*sample 37") as info:
        train(model, _recording_loss(calls), x, epochs=1, progress=False, device="cpu")
    assert "1 non-finite" in str(info.value)
    assert calls == [] and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_non_finite_dataset_items_are_refused_before_their_step(data):
    x = data.clone()
    x[200] = float("nan")

    class Items(Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i], i

    model = make_model()
    with pytest.raises(ValueError, match="NaN or infinite"):
        train(model, loss_fn, Items(), epochs=1, progress=False, device="cpu", batch_size=48)
    assert all(torch.isfinite(p).all() for p in model.parameters()), "no step used the batch"


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_non_float_data_gives_a_clear_type_error(data, dtype):
    x = (data * 255).to(dtype)
    with pytest.raises(TypeError, match=r"floating point.*\[0, 1\]"):
        train(make_model(), loss_fn, x, epochs=1, progress=False, device="cpu")
    with pytest.raises(TypeError, match=r"floating point.*\[0, 1\]"):
        train(make_model(), loss_fn, TensorDataset(x, x), epochs=1, progress=False,
              device="cpu")

    class Items(Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i]

    with pytest.raises(TypeError, match=r"floating point.*\[0, 1\]"):
        train(make_model(), loss_fn, Items(), epochs=1, progress=False, device="cpu")


def test_a_model_factory_is_seeded_by_train(data):
    kw = {"epochs": 2, "progress": False, "device": "cpu", "batch_size": 48}
    h1 = train(TinyAE, loss_fn, data, seed=3, **kw)
    h2 = train(TinyAE, loss_fn, data, seed=3, **kw)
    assert isinstance(h1.model, TinyAE) and h1.model is not h2.model
    _assert_same(h1.model, h2.model)
    assert h1.terms == h2.terms
    assert h1 == History.from_dict(h1.to_dict()), "the model takes no part in comparisons"
    h3 = train(TinyAE, loss_fn, data, seed=4, **kw)
    assert not torch.equal(h1.model.enc.weight, h3.model.enc.weight)
    # the same as building the model with seeded() and passing it
    model = seeded(TinyAE, 3)
    h4 = train(model, loss_fn, data, seed=3, **kw)
    assert h4.model is model
    _assert_same(h1.model, model)


def test_a_model_built_before_train_is_not_seeded_by_it(data):
    kw = {"epochs": 1, "progress": False, "device": "cpu", "batch_size": 48}
    torch.manual_seed(10)
    a = train(TinyAE(), loss_fn, data, seed=0, **kw).model
    torch.manual_seed(11)
    b = train(TinyAE(), loss_fn, data, seed=0, **kw).model
    assert not torch.equal(a.enc.weight, b.enc.weight), "documented: seed does not reach it"


def test_seeded_builds_reproducibly_and_leaves_the_global_rngs_alone():
    torch.manual_seed(1)
    state = torch.get_rng_state()
    a, b = seeded(TinyAE, 7), seeded(TinyAE, 7)
    _assert_same(a, b)
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(seeded(TinyAE, 8).enc.weight, a.enc.weight)
    with pytest.raises(TypeError, match="nn.Module"):
        seeded(lambda: 3, 0)
    with pytest.raises(TypeError, match="seed"):
        seeded(TinyAE, "0")


def test_bad_models_and_factories(data):
    with pytest.raises(TypeError, match="zero-argument"):
        train(5, loss_fn, data, epochs=1, progress=False)
    with pytest.raises(TypeError, match="returned int"):
        train(lambda: 5, loss_fn, data, epochs=1, progress=False)


def test_numpy_numbers_are_accepted(data):
    np = pytest.importorskip("numpy")
    _, hist = run(data, np.int64(1), seed=np.int64(2), lr=np.float32(1e-3),
                  batch_size=np.int64(64))
    assert hist.epochs == 1


# --- The GPU path, as far as a CPU can test it ---------------------------------------------------


def test_bf16_autocast_runs_on_the_cpu_and_changes_the_numbers(data):
    _, full = run(data, 2, precision="fp32")
    _, half = run(data, 2, precision="bf16")
    assert all(math.isfinite(v) for v in half.terms["loss"])
    assert half.terms["loss"] != full.terms["loss"]  # bf16 matmuls round differently
    assert run(data, 2, precision="auto")[1].terms["loss"] == full.terms["loss"]  # CPU: fp32


def test_precision_is_checked_and_part_of_the_fingerprint(data, tmp_path):
    with pytest.raises(ValueError, match="precision"):
        run(data, 1, precision="fp16")
    path = tmp_path / "c.pt"
    run(data, 1, checkpoint=path, precision="bf16")
    with pytest.raises(ValueError, match="precision"):
        run(data, 2, checkpoint=path, precision="fp32")


def test_precision_auto_means_bf16_only_on_cuda(monkeypatch):
    from entropic_ae.training import resolve_precision

    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision(None, torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_training_data_stays_on_the_gpu_only_when_it_fits():
    from entropic_ae.training import data_device

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert data_device(10**12, cpu) == cpu
    assert data_device(4 * 10**9, cuda, free_bytes=10 * 10**9) == cuda
    assert data_device(6 * 10**9, cuda, free_bytes=10 * 10**9) == cpu


def test_channels_last_layout_trains_the_same_function(data):
    """The memory layout is an implementation detail: on the CPU the results agree to
    rounding (convolution kernels may sum in another order)."""

    class ConvAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Conv2d(1, 2, 3, padding=1)
            self.dec = nn.Conv2d(2, 1, 3, padding=1)

        def forward(self, x):
            return self.dec(torch.relu(self.enc(x)))

    images = torch.rand(32, 1, 6, 6, generator=torch.Generator().manual_seed(0))

    def conv_loss(model, x):
        return {"mse": (model(x) - x).pow(2).mean()}

    plain = train(ConvAE, conv_loss, images, epochs=2, batch_size=8, progress=False,
                  device="cpu", channels_last=False)
    last = train(ConvAE, conv_loss, images, epochs=2, batch_size=8, progress=False,
                 device="cpu", channels_last=True)
    assert last.model.enc.weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(plain.terms["mse"], last.terms["mse"], strict=True):
        assert a == pytest.approx(b, rel=1e-5)
