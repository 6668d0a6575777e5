"""Checkpoint files: atomic, checksummed, refused clearly when damaged (entropic_ae.checkpoints)."""

import random

import numpy as np
import pytest
import torch

from entropic_ae.checkpoints import (
    CheckpointError,
    content_sha256,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)


def state():
    return {"epoch": 2, "model": {"w": torch.arange(6.0).reshape(2, 3)},
            "history": {"terms": {"mse": [0.5, 0.25]}}, "note": None}


def test_a_saved_checkpoint_loads_back_equal(tmp_path):
    path = save_checkpoint(tmp_path / "a" / "c.pt", state())
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 2 and torch.equal(loaded["model"]["w"], state()["model"]["w"])
    assert loaded["sha256"] == content_sha256(loaded)
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.pt"]


def test_the_checksum_sees_every_value_and_every_type():
    base = content_sha256(state())
    changed = state()
    changed["model"]["w"][1, 2] = 5.5
    assert content_sha256(changed) != base
    as_list = state()
    as_list["history"]["terms"]["mse"] = (0.5, 0.25)  # a tuple is not a list
    assert content_sha256(as_list) != base
    with pytest.raises(TypeError, match="cannot checksum a set"):
        content_sha256({"x": {1}})


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_bytes(b"not a checkpoint"), "cannot be read"),
    (lambda p: torch.save({"format": 2, "epoch": 1, "sha256": ""}, p), "format 3"),
    (lambda p: torch.save({"format": 3, "epoch": 1}, p), "lacks sha256"),
])
def test_foreign_or_old_files_are_refused_naming_them(tmp_path, write, message):
    path = tmp_path / "c.pt"
    write(path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert info.value.path == path and str(path) in str(info.value)


def test_an_edited_checkpoint_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", state())
    edited = torch.load(path, weights_only=True)
    edited["epoch"] = 3
    torch.save(edited, path)
    with pytest.raises(CheckpointError, match="does not match its SHA-256"):
        load_checkpoint(path)


def test_rng_states_round_trip():
    saved = get_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
