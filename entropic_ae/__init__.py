"""Entropy-regularized autoencoders: the code behind the book.

Importing this package has no side effects: it seeds nothing, downloads nothing
and changes no plotting style. Modules, one per idea:

- ``entropy``: Shannon and Rényi entropy of probability vectors.
- ``compactifier``: entropy of latent-neuron activity (the "entropic compactifier").
- ``paths``: exact entropy of the distribution over paths through a network.
- ``estimators``: Kozachenko–Leonenko nearest-neighbour entropy estimator.
- ``models``, ``training``, ``data``, ``metrics``, ``sampling``, ``plotting``.
"""

__version__ = "0.1.0"
