"""Throwaway exploration: does the data path entropy (and its variants) find the known bottleneck?

Uses the CURRENT training API (entropic_ae.training.train) with the new regularisers wired in
through optimiser hooks that follow the new loop's protocol exactly (before_step after backward,
after_step after the optimiser's step, reset at each epoch's end = before the next epoch).
"""

from __future__ import annotations

import json
import math
import sys
import time

import torch

from entropic_ae.compactifier import effective_rank
from entropic_ae.metrics import unit_ablation
from entropic_ae.models.mlp import MLPAutoencoder
from entropic_ae.paths import (
    Annealed,
    DataPathEntropyTerm,
    data_effective_nodes,
    linear_params,
)
from entropic_ae.synthetic.known_bottleneck import AE_SIZES, make_known_bottleneck
from entropic_ae.training import seeded, train

torch.set_num_threads(1)

N_TRAIN, N_TEST, BATCH, LR = 10000, 2000, 128, 1e-3


_DATA = {}


def data(k: int, gen_seed: int = 0):
    if (k, gen_seed) in _DATA:
        return _DATA[k, gen_seed]
    x, info = make_known_bottleneck(N_TRAIN, k, seed=gen_seed)
    x_test, _ = make_known_bottleneck(N_TEST, k, seed=gen_seed, data_seed=1000 + gen_seed)
    _DATA[k, gen_seed] = (x, x_test, info)
    return x, x_test, info


def fit(sizes, x, seed, epochs, reg=None):
    """Train an MLPAutoencoder; reg (a regulariser) acts through optimiser hooks."""
    state = {"step": 0, "x": None, "values": []}

    def loss(model, xb):
        state["x"] = xb
        return {"mse": torch.nn.functional.mse_loss(model(xb), xb)}

    model = seeded(lambda: MLPAutoencoder(sizes), seed)

    def make_opt(params):
        opt = torch.optim.Adam(params, lr=LR)
        if reg is not None:
            def pre(o, args, kwargs):
                v = reg.before_step(model, state["step"], state["x"])
                if v is not None:
                    state["values"].append(v)

            def post(o, args, kwargs):
                reg.after_step(model, state["step"], LR)
                state["step"] += 1

            opt.register_step_pre_hook(pre)
            opt.register_step_post_hook(post)
        return opt

    cb = (lambda e, h: reg.reset()) if reg is not None else None
    t0 = time.perf_counter()
    hist = train(model, loss, x, epochs=epochs, batch_size=BATCH, seed=seed, device="cpu",
                 progress=False, optimizer=make_opt, callback=cb)
    return model, hist, state["values"], time.perf_counter() - t0


@torch.no_grad()
def measure(model, x_test):
    model.eval()
    out = {"test_mse": float(torch.nn.functional.mse_loss(model(x_test), x_test))}
    ws, bs = linear_params(model)
    sample = x_test[:N_TEST]
    out["data_nodes"] = [round(float(v), 2) for v in data_effective_nodes(ws, bs, sample)[1:-1]]
    act, erank = [], []
    outs = model.layer_outputs(sample)
    for l in range(1, model.num_layers):
        rise = unit_ablation(lambda v, l=l: model.encode(v, l),
                             lambda h, l=l: model.decode_from(h, l), sample)
        act.append(int((rise > 0.01).sum()))
        try:
            erank.append(round(float(effective_rank(outs[l])), 2))
        except ValueError:
            erank.append(0.0)
    out["active"] = act
    out["erank"] = erank
    inner = [2, 3, 4]
    out["narrow_active"] = min(inner, key=lambda l: (act[l - 1], l))
    out["narrow_nodes"] = min(inner, key=lambda l: out["data_nodes"][l - 1])
    return out


def make_reg(spec: dict, steps_total: int):
    if spec.get("kind") in (None, "plain"):
        return None
    tau = spec.get("tau", 0.1)
    if isinstance(tau, list):  # annealed [start, end]
        tau = Annealed(tau[0], tau[1], steps=max(1, int(spec.get("anneal_frac", 0.7)
                                                         * steps_total)))
    return DataPathEntropyTerm(
        spec["lam"], every=spec.get("every", 10), objective=spec.get("objective", "softmin"),
        alpha=spec.get("alpha", 1.0), tau=tau, layers=spec.get("layers"),
        measure=spec.get("measure", "path"), normalize=spec.get("normalize", False),
        decoupled=spec.get("decoupled", False), mode=spec.get("mode", "reuse"))


def run(spec: dict) -> dict:
    k, seed, epochs = spec["k"], spec["seed"], spec["epochs"]
    x, x_test, info = data(k, spec.get("gen_seed", 0))
    sizes = list(AE_SIZES)
    if spec.get("hand_layer"):
        sizes[spec["hand_layer"]] = k
    steps_total = epochs * math.ceil(N_TRAIN / BATCH)
    reg = make_reg(spec, steps_total)
    model, hist, values, secs = fit(sizes, x, seed, epochs, reg)
    out = measure(model, x_test)
    out.update(spec=spec, secs=round(secs, 1),
               reg_first=values[0] if values else None, reg_last=values[-1] if values else None)
    return out


if __name__ == "__main__":
    specs = json.loads(sys.argv[1])
    dest = sys.argv[2]
    with open(dest, "a") as fh:
        for spec in specs:
            res = run(spec)
            fh.write(json.dumps(res) + "\n")
            fh.flush()
            print(json.dumps(res), flush=True)
