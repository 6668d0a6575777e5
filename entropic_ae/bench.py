"""Training speed on the current device: ``python -m entropic_ae.bench``.

Prints, for each system of chapter 4 and each width, the training throughput (images per
second: forward, backward and Adam step at the given batch size) and the share of a step
taken by the entropy terms (the paper's Kozachenko–Leonenko estimate and the minibatch
surrogate), as medians of repeated runs after a warm-up. Use it to size the paper-scale
presets for a GPU, or to see how the chapter's budget splits on a CPU::

    python -m entropic_ae.bench --models EAE VAE RAE-GP --widths 0.0625 0.25 1 --batch-size 100

:func:`step_seconds` and :func:`term_seconds` are the measurements, also used by the
chapters' cost sections.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import torch

from entropic_ae.estimators import kozachenko_leonenko, minibatch_entropy
from entropic_ae.models.zoo import CONV_MODEL_NAMES, build_conv_model
from entropic_ae.timing import format_seconds, median_seconds
from entropic_ae.training import default_device

__all__ = ["ENTROPY_TERMS", "main", "mlp_step_seconds", "path_term_costs", "step_seconds",
           "term_seconds"]

#: The entropy terms compared: name → function of a batch of codes.
ENTROPY_TERMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Kozachenko–Leonenko": kozachenko_leonenko,
    "minibatch surrogate": minibatch_entropy,
}


def step_seconds(name: str, image_shape: tuple[int, int, int] = (1, 28, 28),
                 latent_dim: int = 16, width: float = 1.0, batch_size: int = 100,
                 device: str | torch.device | None = "auto", repeats: int = 10,
                 seed: int = 0) -> float:
    """Median seconds of one training step of system ``name`` (loss at its reference weights,
    backward, Adam) on a random batch."""
    dev = default_device(device)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        spec = build_conv_model(name, image_shape, latent_dim, width)
    model = spec.model.to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch_size, *image_shape, generator=gen).to(dev)

    def step() -> None:
        terms = spec.loss_fn(model, x)
        loss = sum(spec.weights.get(k, 1.0) * v for k, v in terms.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return median_seconds(step, repeats=repeats, warmup=2, device=dev)


def term_seconds(fn: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 100,
                 dim: int = 16, device: str | torch.device | None = "auto",
                 repeats: int = 30, seed: int = 0) -> float:
    """Median seconds of the forward and backward pass of ``fn`` on ``batch_size`` codes of
    ``dim`` dimensions."""
    dev = default_device(device)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch_size, dim, generator=gen).to(dev).requires_grad_(True)

    def run() -> None:
        fn(z).backward()

    return median_seconds(run, repeats=repeats, warmup=2, device=dev)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m entropic_ae.bench",
                                     description=__doc__.split("::")[0].strip())
    parser.add_argument("--models", nargs="+", default=["BN-AE", "EAE", "VAE", "RAE-GP"],
                        choices=CONV_MODEL_NAMES, metavar="MODEL")
    parser.add_argument("--widths", nargs="+", type=float, default=[0.0625, 0.25])
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=28, choices=[28, 32, 64])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own choice)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    args = _parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = default_device(args.device)
    channels = 1 if args.image_size == 28 else 3
    shape = (channels, args.image_size, args.image_size)
    print(f"device {device}, {torch.get_num_threads()} CPU thread(s), batch {args.batch_size}, "
          f"images {shape}, code size {args.latent_dim}")
    terms = {n: term_seconds(fn, args.batch_size, args.latent_dim, device, 3 * args.repeats)
             for n, fn in ENTROPY_TERMS.items()}
    for name, seconds in terms.items():
        print(f"entropy term {name}: {format_seconds(seconds)} (forward + backward)")
    print(f"{'model':8s} {'width':>7s} {'step':>10s} {'images/s':>10s} "
          + " ".join(f"{n[:14]:>16s}" for n in terms))
    for width in args.widths:
        for name in args.models:
            step = step_seconds(name, shape, args.latent_dim, width, args.batch_size, device,
                                args.repeats)
            shares = " ".join(f"{100 * t / step:15.1f}%" for t in terms.values())
            print(f"{name:8s} {width:7.4g} {format_seconds(step):>10s} "
                  f"{args.batch_size / step:10.0f} {shares}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def mlp_step_seconds(loss_fn: Callable, weights: dict[str, float],
                     layer_sizes: Sequence[int] = (784, 64, 16, 16, 16, 64, 784),
                     batch_size: int = 128, lr: float = 1e-3,
                     device: str | torch.device | None = "auto", repeats: int = 15,
                     inner: int = 20, seed: int = 0) -> float:
    """Median seconds of one training step (loss ``Σ w_t term_t``, backward, Adam) of an MLP
    autoencoder with ``loss_fn`` on a random batch of flat images."""
    from entropic_ae.models.mlp import MLPAutoencoder

    dev = default_device(device)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLPAutoencoder(list(layer_sizes)).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.rand(batch_size, layer_sizes[0], generator=gen).to(dev)

    def step() -> None:
        terms = loss_fn(model, x)
        loss = sum(weights.get(k, 1.0) * v for k, v in terms.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return median_seconds(step, repeats=repeats, inner=inner, warmup=3, device=dev)


def path_term_costs(layer_sizes: Sequence[int], x: torch.Tensor, every: int = 20,
                    alpha: float = 1.0, weight: float = 0.01, lr: float = 1e-3,
                    batch_size: int = 128, rounds: int = 100, seed: int = 0) -> dict[str, float]:
    """Median seconds of a training step of an MLP autoencoder on the rows of ``x`` with MSE
    only, with the weight path entropy every step, and with it every ``every`` steps (its
    stored gradient attached to Adam): ``{"plain", "every step", "evaluating step", "step in
    between", "average step"}``. The three kinds of training take turns step by step, so that
    a busy machine slows all of them alike; the average step is
    ``(evaluating + (every - 1) · in between) / every``."""
    import itertools
    import statistics
    import time

    from entropic_ae.models.mlp import MLPAutoencoder
    from entropic_ae.paths import PathEntropyTerm

    n_batches = max(1, min(8, len(x) // batch_size))
    batches = x[: n_batches * batch_size].reshape(n_batches, batch_size, -1)

    def runner(k: int) -> tuple[Callable[[], None], PathEntropyTerm | None]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = MLPAutoencoder(list(layer_sizes))
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        term = PathEntropyTerm(every=k, alpha=alpha) if k else None
        if term is not None:
            term.attach(opt)
        count = itertools.count()

        def step() -> None:
            xb = batches[next(count) % n_batches]
            loss = torch.nn.functional.mse_loss(net(xb), xb)
            if term is not None:
                loss = loss + weight * term(net)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step, term

    runners = {"plain": runner(0), "every step": runner(1), "every k": runner(every)}
    for step, _ in runners.values():
        for _ in range(2 * every):  # warm-up
            step()
    times: dict[str, list[float]] = {"plain": [], "every step": [], "evaluating step": [],
                                     "step in between": []}
    for _ in range(rounds):
        for name, (step, term) in runners.items():
            before = term.evaluations if term is not None else 0
            start = time.perf_counter()
            step()
            elapsed = time.perf_counter() - start
            if name != "every k":
                times[name].append(elapsed)
            else:
                key = "evaluating step" if term.evaluations > before else "step in between"
                times[key].append(elapsed)
    out = {k: statistics.median(v) for k, v in times.items() if v}
    out["average step"] = (out["evaluating step"] + (every - 1) * out["step in between"]) / every
    return out
