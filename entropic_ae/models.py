"""Autoencoder architectures used in the book.

The module is organised in sections, one per family of models. Each section appends its own
public names to ``__all__``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__: list[str] = []


# --- MLP autoencoders ---
#
# A fully connected autoencoder described only by its list of layer widths, e.g.
# ``[784, 64, 16, 16, 16, 64, 784]``. There is no fixed encoder/decoder split: the run of
# narrow layers in the middle is the "extended latent space", and the entropic regularisers decide
# where inside it the real bottleneck ends up. Layer ``l`` (0..L) means the activations after the
# ``l``-th linear map (layer 0 is the input), so ``linears[l - 1]`` maps layer ``l - 1`` to ``l``.

__all__ += ["MLPAutoencoder", "PruneReport", "prune"]


def _check_layer_sizes(layer_sizes: Sequence[int]) -> tuple[int, ...]:
    if isinstance(layer_sizes, (str, bytes)) or not isinstance(layer_sizes, Sequence):
        raise TypeError(
            f"layer_sizes must be a sequence of ints such as [784, 64, 16, 64, 784], "
            f"got {type(layer_sizes).__name__}"
        )
    sizes = tuple(layer_sizes)
    if len(sizes) < 2:
        raise ValueError(
            f"layer_sizes needs at least 2 entries (input and output width), got {list(sizes)}"
        )
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"layer_sizes[{i}] must be an int, got {type(s).__name__} ({s!r})")
        if s <= 0:
            raise ValueError(f"layer_sizes[{i}] must be a positive width, got {s}")
    if sizes[0] != sizes[-1]:
        raise ValueError(
            f"an autoencoder's output width must equal its input width, got input {sizes[0]} "
            f"and output {sizes[-1]}"
        )
    return sizes


def _default_latent_layers(sizes: tuple[int, ...]) -> tuple[int, ...]:
    """Hidden layers whose width is the smallest hidden width (all of them if there are none)."""
    hidden = range(1, len(sizes) - 1)
    if not hidden:
        return ()
    narrowest = min(sizes[i] for i in hidden)
    return tuple(i for i in hidden if sizes[i] == narrowest)


class MLPAutoencoder(nn.Module):
    """Fully connected autoencoder ``x -> sigmoid(W_L relu(... relu(W_1 x + b_1) ...) + b_L)``.

    Parameters
    ----------
    layer_sizes:
        Widths of layers ``0..L``; input and output width must be equal. ``nn.Linear`` maps
        consecutive widths, ReLU follows every hidden layer and a sigmoid the output layer.
    latent_layers:
        Indices (``1..L-1``) of the hidden layers that form the "extended latent space". Default:
        every hidden layer of the smallest hidden width. Informational only (plots, pruning
        reports, chapters); the computation does not depend on it.
    image_shape:
        Shape of one sample without the batch dimension, e.g. ``(1, 28, 28)``. Used by
        :meth:`decode_from` to return images; default: flat vectors. :meth:`forward` always
        returns the shape of its input.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        latent_layers: Sequence[int] | None = None,
        image_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        sizes = _check_layer_sizes(layer_sizes)
        n_layers = len(sizes) - 1
        if latent_layers is None:
            latent = _default_latent_layers(sizes)
        else:
            latent = tuple(latent_layers)
            for i in latent:
                if isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= n_layers - 1:
                    raise ValueError(
                        f"latent_layers must hold hidden-layer indices in 1..{n_layers - 1}, "
                        f"got {list(latent)}"
                    )
        if image_shape is not None:
            image_shape = tuple(int(s) for s in image_shape)
            if math.prod(image_shape) != sizes[0]:
                raise ValueError(
                    f"image_shape {image_shape} has {math.prod(image_shape)} entries but the "
                    f"input width is {sizes[0]}"
                )
        self.latent_layers: tuple[int, ...] = latent
        self.image_shape: tuple[int, ...] | None = image_shape
        self.linears = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )

    # -- structure ------------------------------------------------------------------------------
    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Widths of layers ``0..L`` as the weights currently define them."""
        return (self.linears[0].in_features, *(lin.out_features for lin in self.linears))

    @property
    def num_layers(self) -> int:
        """``L``, the number of linear maps (layer indices run from 0 to ``L``)."""
        return len(self.linears)

    def extra_repr(self) -> str:
        return f"layer_sizes={list(self.layer_sizes)}, latent_layers={list(self.latent_layers)}"

    def _check_layer(self, layer: int) -> int:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise TypeError(f"layer must be an int, got {type(layer).__name__}")
        if not 0 <= layer <= self.num_layers:
            raise ValueError(f"layer must be in 0..{self.num_layers}, got {layer}")
        return layer

    def _flatten(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 1:
            raise ValueError("x must have a batch dimension, got a 0-d tensor")
        flat = x.reshape(x.shape[0], -1) if x.dim() != 1 else x.reshape(1, -1)
        if flat.shape[1] != self.layer_sizes[0]:
            raise ValueError(
                f"each sample must have {self.layer_sizes[0]} entries, got shape "
                f"{tuple(x.shape)} ({flat.shape[1]} per sample)"
            )
        return flat

    def _step(self, i: int, h: Tensor) -> Tensor:
        """Layer ``i + 1`` from layer ``i``: ReLU for hidden layers, sigmoid for the output."""
        z = self.linears[i](h)
        return torch.sigmoid(z) if i == self.num_layers - 1 else torch.relu(z)

    # -- computation ----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of ``x``, in the shape of ``x`` (e.g. ``N×1×28×28`` or ``N×784``)."""
        h = self._flatten(x)
        for i in range(self.num_layers):
            h = self._step(i, h)
        return h.reshape(x.shape)

    def layer_outputs(self, x: Tensor) -> list[Tensor]:
        """Activations ``[h_0, h_1, ..., h_L]`` (flat, ``N×width``); ``h_0`` is the input."""
        h = self._flatten(x)
        outs = [h]
        for i in range(self.num_layers):
            h = self._step(i, h)
            outs.append(h)
        return outs

    def encode(self, x: Tensor, layer: int) -> Tensor:
        """Codes at ``layer``: ``h_layer`` (``N×layer_sizes[layer]``), post-activation."""
        self._check_layer(layer)
        h = self._flatten(x)
        for i in range(layer):
            h = self._step(i, h)
        return h

    def decode_from(self, h: Tensor, layer: int) -> Tensor:
        """Run layers ``layer+1..L`` on codes ``h`` of layer ``layer``; returns the output.

        The output is ``N×layer_sizes[-1]``, or ``N×image_shape`` if the model has one. The codes
        are fed in as they are (no ReLU is applied to them first), so negative values are allowed,
        as in latent sweeps.
        """
        self._check_layer(layer)
        if not isinstance(h, Tensor):
            raise TypeError(f"h must be a torch.Tensor, got {type(h).__name__}")
        width = self.layer_sizes[layer]
        if h.dim() == 1:
            h = h.unsqueeze(0)
        if h.dim() != 2 or h.shape[1] != width:
            raise ValueError(
                f"codes for layer {layer} must have shape N×{width}, got {tuple(h.shape)}"
            )
        for i in range(layer, self.num_layers):
            h = self._step(i, h)
        if self.image_shape is not None:
            h = h.reshape(h.shape[0], *self.image_shape)
        return h


@dataclass
class PruneReport:
    """What :func:`prune` did.

    ``kept[l]`` and ``removed[l]`` are the original indices of the neurons of layer ``l`` that
    survived or were removed (input and output layers are never pruned); ``reasons[l][i]`` says
    why neuron ``i`` was removed: ``"dead"`` (output identically 0 on the data), ``"constant"``
    (constant nonzero output, folded into the next bias), ``"no incoming weights"`` (output is the
    constant ``relu(b)`` for every input), ``"no outgoing weights"`` or ``"requested"``.
    """

    old_sizes: tuple[int, ...]
    new_sizes: tuple[int, ...]
    kept: list[list[int]]
    removed: list[list[int]] = field(default_factory=list)
    reasons: list[dict[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line per pruned layer, e.g. ``layer 3: 16 -> 10 (6 dead)``."""
        lines = []
        for layer, reasons in enumerate(self.reasons):
            if not reasons:
                continue
            counts: dict[str, int] = {}
            for why in reasons.values():
                counts[why] = counts.get(why, 0) + 1
            detail = ", ".join(f"{n} {why}" for why, n in sorted(counts.items()))
            lines.append(
                f"layer {layer}: {self.old_sizes[layer]} -> {self.new_sizes[layer]} ({detail})"
            )
        return "\n".join(lines) if lines else "nothing pruned"


@torch.no_grad()
def prune(
    model: MLPAutoencoder,
    data: Tensor | None = None,
    *,
    tol: float = 1e-6,
    weight_tol: float = 0.0,
    layers: Sequence[int] | None = None,
    remove: dict[int, Sequence[int]] | None = None,
    batch_size: int = 4096,
) -> tuple[MLPAutoencoder, PruneReport]:
    """A physically smaller copy of ``model`` without its inactive hidden neurons.

    Neuron ``i`` of hidden layer ``l`` (activation ``h_i = relu(w_i·h_{l-1} + b_i)``) is removed
    when any of these holds:

    * its incoming weights are negligible, ``max_j |W^l_ij| <= weight_tol``: then
      ``h_i = relu(b_i)`` for every input ("no incoming weights");
    * its outgoing weights are negligible, ``max_k |W^{l+1}_ki| <= weight_tol``
      ("no outgoing weights");
    * ``data`` is given and ``h_i`` is constant on it, ``max_n |h_i(x_n) - mean_n h_i| <= tol``
      ("dead" if the mean is 0, else "constant");
    * ``i`` is listed in ``remove[l]`` ("requested"; this can change the outputs).

    Removing neuron ``i`` deletes row ``i`` of ``W^l, b^l`` and column ``i`` of ``W^{l+1}`` and
    folds its mean output into the next bias, ``b^{l+1} += W^{l+1}_{:,i} · mean(h_i)``, so the
    network function is unchanged wherever the removed neurons take their mean value. That is
    exact (up to float rounding and ``tol``) on ``data``; on other inputs it is exact for the
    weight-based criteria and for neurons that are constant everywhere, but a neuron that merely
    happened to be constant on ``data`` may not be. At least one neuron of every layer is kept.

    Returns the pruned model (a new :class:`MLPAutoencoder` on the same device, in eval mode,
    with the same ``latent_layers`` and ``image_shape``) and a :class:`PruneReport`.
    """
    if not isinstance(model, MLPAutoencoder):
        raise TypeError(f"prune needs an MLPAutoencoder, got {type(model).__name__}")
    for name, value in (("tol", tol), ("weight_tol", weight_tol)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    n_layers = model.num_layers
    hidden = list(range(1, n_layers))
    if layers is None:
        layers = hidden
    else:
        layers = list(layers)
        bad = [l for l in layers if l not in hidden]
        if bad:
            raise ValueError(f"layers must be hidden-layer indices in 1..{n_layers - 1}, got {bad}")
    remove = {} if remove is None else dict(remove)
    for l, idx in remove.items():
        if l not in hidden:
            raise ValueError(f"remove: {l} is not a hidden-layer index (1..{n_layers - 1})")
        if any(not 0 <= int(i) < model.layer_sizes[l] for i in idx):
            raise ValueError(f"remove[{l}] holds indices outside 0..{model.layer_sizes[l] - 1}")

    # Work in float64 so folding constants adds no rounding of its own.
    weights = [lin.weight.detach().double().clone() for lin in model.linears]
    biases = [lin.bias.detach().double().clone() for lin in model.linears]

    # Per-neuron mean and max deviation on the data, in float64 from the original model.
    means: dict[int, Tensor] = {}
    spread: dict[int, Tensor] = {}
    if data is not None:
        if not isinstance(data, Tensor):
            raise TypeError(f"data must be a torch.Tensor of inputs, got {type(data).__name__}")
        if data.shape[0] == 0:
            raise ValueError("data is empty; pass at least one sample or data=None")
        device = weights[0].device
        chunks = [data[i : i + batch_size] for i in range(0, data.shape[0], batch_size)]
        sums = {l: torch.zeros(model.layer_sizes[l], dtype=torch.float64, device=device)
                for l in hidden}
        lo = {l: torch.full_like(sums[l], math.inf) for l in hidden}
        hi = {l: torch.full_like(sums[l], -math.inf) for l in hidden}
        for chunk in chunks:
            h = model._flatten(chunk.to(device)).double()
            for i in range(n_layers - 1):
                h = torch.relu(h @ weights[i].T + biases[i])
                l = i + 1
                sums[l] += h.sum(0)
                lo[l] = torch.minimum(lo[l], h.min(0).values)
                hi[l] = torch.maximum(hi[l], h.max(0).values)
        for l in hidden:
            means[l] = sums[l] / data.shape[0]
            spread[l] = torch.maximum(hi[l] - means[l], means[l] - lo[l])

    kept: list[list[int]] = [list(range(s)) for s in model.layer_sizes]
    removed: list[list[int]] = [[] for _ in model.layer_sizes]
    reasons: list[dict[int, str]] = [{} for _ in model.layer_sizes]
    for l in hidden:
        if l not in layers and l not in remove:
            continue
        w_in, b_in, w_out = weights[l - 1], biases[l - 1], weights[l]
        width = w_in.shape[0]
        why: dict[int, str] = {}
        const = torch.zeros(width, dtype=torch.float64, device=w_in.device)
        if l in layers:
            no_in = w_in.abs().amax(dim=1) <= weight_tol
            no_out = w_out.abs().amax(dim=0) <= weight_tol
            for i in range(width):
                if no_in[i]:
                    why[i] = "no incoming weights"
                    const[i] = torch.relu(b_in[i])
                elif l in spread and spread[l][i] <= tol:
                    why[i] = "dead" if means[l][i] == 0 else "constant"
                    const[i] = means[l][i]
                elif no_out[i]:
                    why[i] = "no outgoing weights"
                    const[i] = means[l][i] if l in means else 0.0
        for i in remove.get(l, ()):
            i = int(i)
            if i not in why:
                why[i] = "requested"
                const[i] = means[l][i] if l in means else 0.0
        if len(why) == width:  # keep the most variable neuron so the layer is not empty
            keep_one = int(torch.argmax(spread[l])) if l in spread else 0
            del why[keep_one]
        gone = sorted(why)
        keep = [i for i in range(width) if i not in why]
        if gone:
            gone_t = torch.tensor(gone, device=w_in.device)
            biases[l] = biases[l] + w_out[:, gone_t] @ const[gone_t]
        keep_t = torch.tensor(keep, device=w_in.device)
        weights[l - 1] = w_in[keep_t]
        biases[l - 1] = b_in[keep_t]
        weights[l] = w_out[:, keep_t]
        kept[l], removed[l], reasons[l] = keep, gone, {i: why[i] for i in gone}

    new_sizes = (weights[0].shape[1], *(w.shape[0] for w in weights))
    param = model.linears[0].weight
    pruned = MLPAutoencoder(
        list(new_sizes), latent_layers=model.latent_layers, image_shape=model.image_shape
    ).to(device=param.device, dtype=param.dtype)
    for lin, w, b in zip(pruned.linears, weights, biases, strict=True):
        lin.weight.copy_(w.to(param.dtype))
        lin.bias.copy_(b.to(param.dtype))
    pruned.eval()
    report = PruneReport(
        old_sizes=model.layer_sizes, new_sizes=tuple(new_sizes), kept=kept, removed=removed,
        reasons=reasons,
    )
    return pruned, report


# --- Convolutional autoencoders (entropic autoencoder chapter) ---
#
# The backbone of Ghosh, Rashwan & Poupart (2020), which follows Tolstikhin et al. (2017) and
# Ghosh et al. (2019): four stride-2 convolutions (4×4 kernels; 5×5 for 64×64 images) with
# 128, 256, 512, 1024 channels, each followed by batch norm and ReLU, then a linear map to the
# code. The decoder maps the code linearly to a 1024-channel spatial map (7×7 for 28×28
# images, 8×8 otherwise), upsamples it with stride-2 transposed convolutions (512, 256; and
# 128 for 64×64), and ends with a stride-1 convolution to the image channels and a sigmoid.
# Convolutions pad like TensorFlow's "same" (output size ceil(input / stride)), so the encoder
# maps 28 → 14 → 7 → 4 → 2, 32 → 16 → 8 → 4 → 2 and 64 → 32 → 16 → 8 → 4.
# ``width`` multiplies every channel count (width=1 is the paper's network).

from collections.abc import Callable  # noqa: E402

from entropic_ae.estimators import kozachenko_leonenko  # noqa: E402

__all__ += [
    "CONV_DEFAULT_WEIGHTS",
    "CONV_MODEL_NAMES",
    "ConvArchitecture",
    "ConvAutoencoder",
    "ConvDecoder",
    "ConvEncoder",
    "ConvGenerativeModel",
    "ConvVAE",
    "build_conv_model",
    "conv_architecture",
    "decoder_jacobian_penalty",
    "eae_loss",
    "imq_mmd",
    "reconstruction_error",
]

CONV_MODEL_NAMES = ("AE", "AE-L2", "EAE", "VAE", "WAE-MMD", "RAE-L2", "RAE-GP")


@dataclass(frozen=True)
class ConvArchitecture:
    """Channel counts and kernel of the paper's backbone for one image size (see above)."""

    image_size: int
    kernel: int
    encoder_channels: tuple[int, ...]
    decoder_channels: tuple[int, ...]  # first entry: the channels of the linear layer's map
    decoder_start: int  # side of the spatial map the decoder's linear layer produces


def conv_architecture(image_size: int, width: float = 1.0) -> ConvArchitecture:
    """The paper's channel layout for 28×28, 32×32 or 64×64 images, scaled by ``width``.

    28 and 32: 4×4 kernels, encoder [128, 256, 512, 1024], decoder 1024 → [512, 256];
    64: 5×5 kernels, decoder 1024 → [512, 256, 128]. Each count becomes
    ``max(1, round(width · count))``.
    """
    if isinstance(image_size, bool) or image_size not in (28, 32, 64):
        raise ValueError(f"image_size must be 28, 32 or 64 (MNIST, CIFAR-10, CelebA), "
                         f"got {image_size!r}")
    if isinstance(width, bool) or not isinstance(width, int | float) or not width > 0:
        raise ValueError(f"width must be a positive number, got {width!r}")

    def scale(channels: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(max(1, round(width * c)) for c in channels)

    if image_size == 64:
        return ConvArchitecture(64, 5, scale((128, 256, 512, 1024)),
                                scale((1024, 512, 256, 128)), 8)
    start = 7 if image_size == 28 else 8
    return ConvArchitecture(image_size, 4, scale((128, 256, 512, 1024)),
                            scale((1024, 512, 256)), start)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding: output ceil(size / stride); the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ConvEncoder(nn.Module):
    """Four stride-2 conv → BN → ReLU blocks, flatten, linear map to ``out_features``."""

    def __init__(self, in_channels: int, arch: ConvArchitecture, out_features: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size, channels = arch.image_size, in_channels
        for out_ch in arch.encoder_channels:
            before, after = _same_padding(size, arch.kernel, 2)
            layers += [nn.ZeroPad2d((before, after, before, after)),
                       nn.Conv2d(channels, out_ch, arch.kernel, stride=2, bias=False),
                       nn.BatchNorm2d(out_ch), nn.ReLU()]
            size, channels = -(-size // 2), out_ch
        self.features = nn.Sequential(*layers)
        self.feature_shape = (channels, size, size)
        self.linear = nn.Linear(channels * size * size, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """Linear map to a spatial map (BN, ReLU), stride-2 transposed convs (BN, ReLU), and a
    stride-1 "same" convolution to the image channels followed by a sigmoid."""

    def __init__(self, latent_dim: int, arch: ConvArchitecture, out_channels: int) -> None:
        super().__init__()
        first, *rest = arch.decoder_channels
        s = arch.decoder_start
        self.start_shape = (first, s, s)
        self.linear = nn.Sequential(nn.Linear(latent_dim, first * s * s, bias=False),
                                    nn.BatchNorm1d(first * s * s), nn.ReLU())
        # stride-2 transposed convs that exactly double the side: k=4, p=1; k=5, p=2, op=1.
        pad, out_pad = (1, 0) if arch.kernel == 4 else (2, 1)
        layers: list[nn.Module] = []
        channels = first
        for out_ch in rest:
            layers += [nn.ConvTranspose2d(channels, out_ch, arch.kernel, stride=2, padding=pad,
                                          output_padding=out_pad, bias=False),
                       nn.BatchNorm2d(out_ch), nn.ReLU()]
            channels = out_ch
        before, after = _same_padding(arch.image_size, arch.kernel, 1)
        layers += [nn.ZeroPad2d((before, after, before, after)),
                   nn.Conv2d(channels, out_channels, arch.kernel), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.linear(z).view(-1, *self.start_shape))


def _check_image_shape(image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    if (not isinstance(image_shape, tuple | list) or len(image_shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in image_shape)):
        raise TypeError(f"image_shape must be a tuple (C, H, W) of ints, got {image_shape!r}")
    c, h, w = image_shape
    if c < 1 or h != w:
        raise ValueError(f"image_shape must be (C, S, S) with square images, got {image_shape}")
    return int(c), int(h), int(w)


class ConvAutoencoder(nn.Module):
    """Deterministic convolutional autoencoder on the paper's backbone.

    ``bottleneck_norm=True`` puts a batch norm *without* affine parameters after the encoder,
    :math:`z_j = (h_j - \\hat\\mu_j) / \\sqrt{\\hat\\sigma_j^2 + \\epsilon}`, so the codes of a
    training batch have mean 0 and variance 1 in every dimension (AE, AE-L2, EAE). The RAE
    variants use ``bottleneck_norm=False``.
    """

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), latent_dim: int = 16,
                 width: float = 1.0, bottleneck_norm: bool = True) -> None:
        super().__init__()
        c, s, _ = _check_image_shape(image_shape)
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
        self.image_shape = (c, s, s)
        self.latent_dim = latent_dim
        self.arch = conv_architecture(s, width)
        self.encoder = ConvEncoder(c, self.arch, self._encoder_outputs())
        self.bottleneck = (nn.BatchNorm1d(latent_dim, affine=False) if bottleneck_norm
                           else nn.Identity())
        self.decoder = ConvDecoder(latent_dim, self.arch, c)

    def _encoder_outputs(self) -> int:
        return self.latent_dim

    def _check_input(self, x: torch.Tensor) -> None:
        if (not isinstance(x, torch.Tensor) or x.dim() != 4
                or tuple(x.shape[1:]) != self.image_shape):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            c, h, w = self.image_shape
            raise ValueError(f"expected images of shape (N, {c}, {h}, {w}), got {got}")

    def encode(self, x: torch.Tensor, pre_norm: bool = False) -> torch.Tensor:
        """Codes of ``x``; ``pre_norm=True`` gives the encoder output before the batch norm."""
        self._check_input(x)
        h = self.encoder(x)
        return h if pre_norm else self.bottleneck(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] from codes (N, latent_dim)."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"codes must have shape (N, {self.latent_dim})")
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class ConvVAE(ConvAutoencoder):
    """VAE on the same backbone: the encoder's linear layer outputs :math:`(\\mu, \\log\\sigma^2)`
    and the code is :math:`z = \\mu + \\sigma\\odot\\varepsilon` during training. ``encode``
    returns the posterior mean (used for reconstructions and for fitting the mixture)."""

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), latent_dim: int = 16,
                 width: float = 1.0) -> None:
        super().__init__(image_shape, latent_dim, width, bottleneck_norm=False)

    def _encoder_outputs(self) -> int:
        return 2 * self.latent_dim

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of :math:`q(z \\mid x)`."""
        self._check_input(x)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: torch.Tensor, pre_norm: bool = False) -> torch.Tensor:
        return self.posterior(x)[0]


def reconstruction_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""Squared error summed over an image's pixels, averaged over the batch:
    :math:`\frac1B\sum_i \lVert \hat x_i - x_i\rVert^2`."""
    return (x_hat - x).pow(2).flatten(1).sum(dim=1).mean()


def _squared_weights(module: nn.Module) -> torch.Tensor:
    """:math:`\\sum \\lVert W\\rVert^2` over the weights of conv and linear layers (no biases,
    no batch-norm parameters)."""
    terms = [m.weight.pow(2).sum() for m in module.modules()
             if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)]
    return torch.stack(terms).sum()


def imq_mmd(z: torch.Tensor, y: torch.Tensor,
            scales: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)) -> torch.Tensor:
    r"""Unbiased estimate of :math:`\mathrm{MMD}^2` between samples ``z`` and ``y`` (N × d) with
    the inverse multiquadratic kernel :math:`k(a, b) = C / (C + \lVert a - b\rVert^2)`, summed
    over :math:`C = 2 d s` for each ``s`` in ``scales`` (Tolstikhin et al. 2017 use
    :math:`C = 2d\sigma^2` for a prior :math:`\mathcal N(0, \sigma^2 I)`)."""
    if z.dim() != 2 or z.shape != y.shape or z.shape[0] < 2:
        raise ValueError(f"z and y must both have shape (N >= 2, d), got {tuple(z.shape)} "
                         f"and {tuple(y.shape)}")
    n, d = z.shape
    dzz, dyy, dzy = torch.cdist(z, z).pow(2), torch.cdist(y, y).pow(2), torch.cdist(z, y).pow(2)
    off = 1.0 - torch.eye(n, dtype=z.dtype, device=z.device)
    total = z.new_zeros(())
    for s in scales:
        c = 2.0 * d * s
        kzz, kyy, kzy = c / (c + dzz), c / (c + dyy), c / (c + dzy)
        total = total + ((kzz * off).sum() + (kyy * off).sum()) / (n * (n - 1)) - 2 * kzy.mean()
    return total


def decoder_jacobian_penalty(model: ConvAutoencoder, z: torch.Tensor,
                             x_hat: torch.Tensor) -> torch.Tensor:
    r"""Hutchinson estimate of :math:`\lVert \partial D(z) / \partial z\rVert_F^2`, averaged over
    the batch: :math:`\lVert J^\top v\rVert^2` with :math:`v \sim \mathcal N(0, I)` has
    expectation :math:`\operatorname{tr}(J J^\top)`. One extra (double) backward pass instead
    of one per pixel."""
    v = torch.randn_like(x_hat)
    (grad,) = torch.autograd.grad((x_hat * v).sum(), z, create_graph=True)
    return grad.pow(2).sum(dim=1).mean()


@dataclass
class ConvGenerativeModel:
    """A model on the convolutional backbone with its loss.

    ``loss_fn(model, x)`` returns named, unweighted scalar terms; the objective is
    :math:`\\sum_t w_t \\cdot \\text{term}_t` with ``weights`` (missing names weigh 1), which is
    what :func:`entropic_ae.training.train` minimises. ``prior_sampling`` says whether the
    model is trained to make :math:`\\mathcal N(0, I)` its code distribution.
    """

    name: str
    model: ConvAutoencoder
    loss_fn: Callable[[nn.Module, torch.Tensor], dict[str, torch.Tensor]]
    weights: dict[str, float]
    prior_sampling: bool


def _ae_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"recon": reconstruction_error(model(x), x)}


def _ae_l2_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"recon": reconstruction_error(model(x), x), "weight_l2": _squared_weights(model)}


def eae_loss(k: int = 1) -> Callable[[nn.Module, torch.Tensor], dict[str, torch.Tensor]]:
    r"""Loss of the entropic autoencoder, Eq. (2) of the paper:
    :math:`\frac1B\sum_i\lVert D(z_i) - x_i\rVert^2 - \beta \hat H(z_1, \dots, z_B)`, with
    :math:`z_i` the batch-normalised codes of the batch and :math:`\hat H` the
    Kozachenko–Leonenko estimate (k-th neighbour). Terms ``recon`` and
    ``neg_entropy`` :math:`= -\hat H` (weight it with :math:`\beta`)."""

    def loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = model.encode(x)
        return {"recon": reconstruction_error(model.decode(z), x),
                "neg_entropy": -kozachenko_leonenko(z, k=k)}

    return loss


def _vae_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    mu, logvar = model.posterior(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()
    return {"recon": reconstruction_error(model.decode(z), x), "kl": kl}


def _wae_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    z = model.encode(x)
    return {"recon": reconstruction_error(model.decode(z), x),
            "mmd": imq_mmd(z, torch.randn_like(z))}


def _rae_l2_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    z = model.encode(x)
    return {"recon": reconstruction_error(model.decode(z), x),
            "code_l2": 0.5 * z.pow(2).sum(dim=1).mean(),
            "decoder_l2": _squared_weights(model.decoder)}


def _rae_gp_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    z = model.encode(x)
    x_hat = model.decode(z)
    return {"recon": reconstruction_error(x_hat, x),
            "code_l2": 0.5 * z.pow(2).sum(dim=1).mean(),
            "decoder_gp": decoder_jacobian_penalty(model, z, x_hat)}


#: Default loss weights of each model, for the per-image squared error used here.
CONV_DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "AE": {},
    "AE-L2": {"weight_l2": 1e-3},
    "EAE": {"neg_entropy": 1.0},
    "VAE": {"kl": 1.0},
    "WAE-MMD": {"mmd": 10.0},
    "RAE-L2": {"code_l2": 0.1, "decoder_l2": 1e-3},
    "RAE-GP": {"code_l2": 0.1, "decoder_gp": 1e-2},
}


def build_conv_model(name: str, image_shape: tuple[int, int, int] = (1, 28, 28),
                     latent_dim: int = 16, width: float = 1.0,
                     weights: dict[str, float] | None = None, k: int = 1) -> ConvGenerativeModel:
    """One of ``CONV_MODEL_NAMES`` on the backbone, with its loss and default weights.

    * ``AE``: reconstruction only, bottleneck batch norm (the EAE without its entropy term).
    * ``AE-L2``: as AE plus an L2 penalty on all conv/linear weights (``weight_l2``).
    * ``EAE``: bottleneck batch norm, reconstruction − β·KL entropy (``neg_entropy``: β).
    * ``VAE``: Gaussian posterior, reconstruction + β·KL(q(z|x) ‖ N(0, I)) (``kl``).
    * ``WAE-MMD``: reconstruction + λ·MMD² to N(0, I), IMQ kernel (``mmd``).
    * ``RAE-L2``: no batch norm; reconstruction + β·½‖z‖² + λ·‖θ_D‖² (``code_l2``,
      ``decoder_l2``).
    * ``RAE-GP``: no batch norm; reconstruction + β·½‖z‖² + λ·‖∂D/∂z‖²_F (``decoder_gp``).

    ``weights`` overrides entries of ``CONV_DEFAULT_WEIGHTS[name]``; ``k`` is the EAE
    estimator's neighbour.
    """
    if name not in CONV_MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(CONV_MODEL_NAMES)}")
    merged = dict(CONV_DEFAULT_WEIGHTS[name])
    if weights is not None:
        if not isinstance(weights, dict):
            raise TypeError(f"weights must be a dict of term name to float, got "
                            f"{type(weights).__name__}")
        unknown = set(weights) - set(merged) - {"recon"}
        if unknown:
            raise ValueError(f"{name} has no loss term(s) {sorted(unknown)}; its terms are "
                             f"{['recon', *merged]}")
        merged.update({key: float(val) for key, val in weights.items()})
    if name == "VAE":
        model: ConvAutoencoder = ConvVAE(image_shape, latent_dim, width)
    else:
        model = ConvAutoencoder(image_shape, latent_dim, width,
                                bottleneck_norm=name in ("AE", "AE-L2", "EAE"))
    loss_fn = {"AE": _ae_loss, "AE-L2": _ae_l2_loss, "EAE": eae_loss(k), "VAE": _vae_loss,
               "WAE-MMD": _wae_loss, "RAE-L2": _rae_l2_loss, "RAE-GP": _rae_gp_loss}[name]
    return ConvGenerativeModel(name, model, loss_fn, merged,
                               prior_sampling=name in ("EAE", "VAE", "WAE-MMD"))
