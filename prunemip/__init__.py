"""prunemip: prune ReLU networks and encode them as small, tightly bounded big-M MIPs.

The framework-free :class:`~prunemip.network.Network` joins the halves of the tool:
training and pruning (torch) on one side; bounds, encoders (``prunemip.encoders``),
solvers (``prunemip.solvers``) and adversarial search on the other.
"""

from prunemip.errors import PrunemipError
from prunemip.network import InputSpec, Layer, Network
from prunemip.regions import InputRegion

__version__ = "0.1.0"

__all__ = ["InputRegion", "InputSpec", "Layer", "Network", "PrunemipError", "__version__"]
