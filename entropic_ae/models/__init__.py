"""The book's autoencoders, one module per family.

- :mod:`~entropic_ae.models.mlp`: fully connected autoencoders and exact pruning (chapters 2–3);
- :mod:`~entropic_ae.models.conv`: the convolutional backbone of the EAE paper, and the VAE and
  two-stage VAE built on it (chapter 4);
- :mod:`~entropic_ae.models.lenet`: the small classifier whose features define the book's
  Fréchet distance on grey images.
"""

from entropic_ae.models.conv import (
    ConvArchitecture,
    ConvAutoencoder,
    ConvDecoder,
    ConvEncoder,
    ConvVAE,
    SecondStageVAE,
    conv_architecture,
)
from entropic_ae.models.lenet import LeNetFeatures, feature_network
from entropic_ae.models.mlp import MLPAutoencoder, PruneReport, prune

__all__ = ["ConvArchitecture", "ConvAutoencoder", "ConvDecoder", "ConvEncoder", "ConvVAE",
           "LeNetFeatures", "MLPAutoencoder", "PruneReport", "SecondStageVAE", "conv_architecture",
           "feature_network", "prune"]
