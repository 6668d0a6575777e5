r"""Path entropies of feed-forward networks, exact, by dynamic programming.

A *path* picks one node per layer of a network, from an input node to an output node; giving
each path a weight and normalising gives a distribution over all :math:`n_0 n_1 \cdots n_L`
paths, whose entropy is small when the mass runs along few paths. Nothing here enumerates
paths (except the brute-force references): the distribution is a Markov chain over the layers,
so its entropies and marginals follow from forward and backward passes of matrix products.

One module per idea: :mod:`~entropic_ae.paths.network` reads a network's layers and holds the
checks and numerics the others share; :mod:`~entropic_ae.paths.weights` has the weight-only path
entropy (path weights are products of :math:`|W| + |b|`), its brute-force reference and the node
marginals; :mod:`~entropic_ae.paths.data` the path mass a batch of inputs carries through the ReLU
gates; :mod:`~entropic_ae.paths.objectives` the bottleneck objectives over the hidden layers and
the temperature schedule; :mod:`~entropic_ae.paths.terms` the regularisers for the training loop.
"""

from entropic_ae.paths.data import (
    DataPathFlows,
    data_effective_nodes,
    data_node_entropies,
    data_path_chain_entropy,
    data_path_example_entropy,
    data_path_flows,
    relu_gates,
)
from entropic_ae.paths.network import layer_sizes, linear_params
from entropic_ae.paths.objectives import (
    DATA_OBJECTIVES,
    MEASURES,
    Annealed,
    data_layer_measures,
    data_path_objective,
    layer_signals,
)
from entropic_ae.paths.terms import (
    MODES,
    DataPathEntropyTerm,
    Decoupled,
    PathEntropyTerm,
    Regulariser,
    TermRegulariser,
)
from entropic_ae.paths.weights import (
    count_paths,
    effective_nodes,
    node_path_marginals,
    path_entropy,
    path_entropy_bruteforce,
)

__all__ = [
    "DATA_OBJECTIVES", "MEASURES", "MODES", "Annealed", "DataPathEntropyTerm", "DataPathFlows",
    "Decoupled", "PathEntropyTerm", "Regulariser", "TermRegulariser", "count_paths",
    "data_effective_nodes", "data_layer_measures", "data_node_entropies", "data_path_chain_entropy",
    "data_path_example_entropy", "data_path_flows", "data_path_objective", "effective_nodes",
    "layer_signals", "layer_sizes", "linear_params", "node_path_marginals", "path_entropy",
    "path_entropy_bruteforce", "relu_gates",
]
