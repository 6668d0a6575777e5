"""The convolutional backbone of the entropic-autoencoder chapter and the models built on it.

The backbone of Ghose, Rashwan & Poupart (2020), which follows Tolstikhin et al. (2018) and
Ghosh et al. (2019): four stride-2 convolutions (4×4 kernels; 5×5 for 64×64 images) with
128, 256, 512, 1024 channels, each followed by batch norm and ReLU, then a linear map to the
code. The decoder maps the code linearly to a 1024-channel spatial map (7×7 for 28×28
images, 8×8 otherwise), upsamples it with stride-2 transposed convolutions (512, 256; and
128 for 64×64), and ends with a stride-1 convolution to the image channels and a sigmoid.
Convolutions pad like TensorFlow's "same" (output size ceil(input / stride)), so the encoder
maps 28 → 14 → 7 → 4 → 2, 32 → 16 → 8 → 4 → 2 and 64 → 32 → 16 → 8 → 4.
``width`` multiplies every channel count (width=1 is the paper's network).

Models: :class:`ConvAutoencoder`, :class:`ConvVAE` and :class:`SecondStageVAE` (the book
treats it as the two-stage VAE's sampler). Their losses live in :mod:`entropic_ae.losses`;
:mod:`entropic_ae.systems` puts models, losses and weights together by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ConvArchitecture", "ConvAutoencoder", "ConvDecoder", "ConvEncoder", "ConvVAE",
           "SecondStageVAE", "conv_architecture"]


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

    decoder = (1024, 512, 256, 128) if image_size == 64 else (1024, 512, 256)
    return ConvArchitecture(image_size, 5 if image_size == 64 else 4, scale((128, 256, 512, 1024)),
                            scale(decoder), 7 if image_size == 28 else 8)


def _same_padding(size: int, kernel: int, stride: int) -> nn.ZeroPad2d:
    """TensorFlow "same" padding: output ceil(size / stride); the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return nn.ZeroPad2d((total // 2, total - total // 2) * 2)  # (left, right, top, bottom)


class ConvEncoder(nn.Module):
    """Four stride-2 conv → BN → ReLU blocks, flatten, linear map to ``out_features``."""

    def __init__(self, in_channels: int, arch: ConvArchitecture, out_features: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size, channels = arch.image_size, in_channels
        for out_ch in arch.encoder_channels:
            layers += [_same_padding(size, arch.kernel, 2),
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
    stride-1 "same" convolution to the image channels followed by a sigmoid.

    ``spectral_norm=True`` reparametrises every linear, convolution and transposed
    convolution as :math:`W / \\sigma_{\\max}(W)` (one power iteration per training step,
    :func:`torch.nn.utils.parametrizations.spectral_norm`), the decoder of RAE-SN.
    """

    def __init__(self, latent_dim: int, arch: ConvArchitecture, out_channels: int,
                 spectral_norm: bool = False) -> None:
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
        layers += [_same_padding(arch.image_size, arch.kernel, 1),
                   nn.Conv2d(channels, out_channels, arch.kernel), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)
        self.spectral_norm = spectral_norm
        if spectral_norm:
            for module in self.modules():
                if isinstance(module, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
                    nn.utils.parametrizations.spectral_norm(module)

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


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_shape(x: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
    """ValueError unless ``x`` is a tensor of shape ``(N, *shape)``."""
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != shape:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} must have shape (N, {', '.join(map(str, shape))}), got {got}")


class ConvAutoencoder(nn.Module):
    """Deterministic convolutional autoencoder on the paper's backbone.

    ``bottleneck_norm=True`` puts a batch norm *without* affine parameters after the encoder,
    :math:`z_j = (h_j - \\hat\\mu_j) / \\sqrt{\\hat\\sigma_j^2 + \\epsilon}`, so the codes of a
    training batch have mean 0 and variance 1 in every dimension (BN-AE, EAE, EAE-MB). Without
    it the code is the encoder's linear output (AE, RAE variants, WAE, CV-VAE).
    ``decoder_spectral_norm=True`` spectrally normalises the decoder (RAE-SN).
    """

    _codes_per_dim = 1  # encoder outputs per code dimension

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), latent_dim: int = 16,
                 width: float = 1.0, bottleneck_norm: bool = True,
                 decoder_spectral_norm: bool = False) -> None:
        super().__init__()
        c, s, _ = _check_image_shape(image_shape)
        self.image_shape = (c, s, s)
        self.latent_dim = _positive_int("latent_dim", latent_dim)
        self.arch = conv_architecture(s, width)
        self.encoder = ConvEncoder(c, self.arch, self._codes_per_dim * latent_dim)
        self.bottleneck = (nn.BatchNorm1d(latent_dim, affine=False) if bottleneck_norm
                           else nn.Identity())
        self.decoder = ConvDecoder(latent_dim, self.arch, c, spectral_norm=decoder_spectral_norm)

    def encode(self, x: torch.Tensor, pre_norm: bool = False) -> torch.Tensor:
        """Codes of ``x``; ``pre_norm=True`` gives the encoder output before the batch norm."""
        _check_shape(x, self.image_shape, "images")
        h = self.encoder(x)
        return h if pre_norm else self.bottleneck(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] from codes (N, latent_dim)."""
        _check_shape(z, (self.latent_dim,), "codes")
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class ConvVAE(ConvAutoencoder):
    """VAE on the same backbone: the encoder's linear layer outputs :math:`(\\mu, \\log\\sigma^2)`
    and the code is :math:`z = \\mu + \\sigma\\odot\\varepsilon` during training. ``encode``
    returns the posterior mean (reconstructions, mixtures fitted to the codes).

    ``learn_gamma=True`` adds the scalar parameter :math:`\\log\\gamma` of a Gaussian decoder
    :math:`p(x \\mid z) = \\mathcal N(D(z), \\gamma I)` (the first stage of the two-stage VAE);
    it starts at :math:`\\gamma = 1`.
    """

    _codes_per_dim = 2  # (mu, logvar)

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), latent_dim: int = 16,
                 width: float = 1.0, learn_gamma: bool = False) -> None:
        super().__init__(image_shape, latent_dim, width, bottleneck_norm=False)
        self.log_gamma = nn.Parameter(torch.zeros(())) if learn_gamma else None

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of :math:`q(z \\mid x)`."""
        _check_shape(x, self.image_shape, "images")
        return self.encoder(x).chunk(2, dim=1)

    def encode(self, x: torch.Tensor, pre_norm: bool = False) -> torch.Tensor:
        return self.posterior(x)[0]


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # linear output


class SecondStageVAE(nn.Module):
    """The second stage of Dai & Wipf's two-stage VAE: a small fully connected VAE on codes.

    Encoder ``d → hidden → hidden → (μ, log σ²)`` of ``latent_dim`` each, decoder
    ``latent_dim → hidden → hidden → d`` (ReLU inside, linear output), and a learned scalar
    decoder variance :math:`\\gamma` (parameter ``log_gamma``, starting at 1).
    """

    def __init__(self, code_dim: int, latent_dim: int | None = None, hidden: int = 1024,
                 depth: int = 2) -> None:
        super().__init__()
        self.code_dim = _positive_int("code_dim", code_dim)
        latent_dim = code_dim if latent_dim is None else latent_dim
        self.latent_dim = _positive_int("latent_dim", latent_dim)
        _positive_int("hidden", hidden)
        _positive_int("depth", depth)
        self.encoder = _mlp([self.code_dim] + [hidden] * depth + [2 * self.latent_dim])
        self.decoder = _mlp([self.latent_dim] + [hidden] * depth + [self.code_dim])
        self.log_gamma = nn.Parameter(torch.zeros(()))

    def posterior(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of :math:`q(u \\mid z)`."""
        _check_shape(z, (self.code_dim,), "codes")
        return self.encoder(z).chunk(2, dim=1)

    def decode(self, u: torch.Tensor) -> torch.Tensor:
        """First-stage codes from second-stage latents ``u``."""
        _check_shape(u, (self.latent_dim,), "latents")
        return self.decoder(u)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode(self.posterior(z)[0])
