"""Selection (`method.selection`): per-sample training statistics -> a Division per network.

Each entry turns what the networks say about every training sample (per-sample losses, features,
margins recorded during training) into a clean probability, a labelled set and sample weights, so
the co-divide, train and correct stages and the label-issue table work the same for every method.
"""

from noisyflow.methods.selection.base import SELECTIONS, SelectionInputs, Selector, all_labelled

# Entries register themselves on import.
from noisyflow.methods.selection import gmm as _gmm  # noqa: F401  isort: skip
from noisyflow.methods.selection import coteaching as _coteaching  # noqa: F401  isort: skip
from noisyflow.methods.selection import aum as _aum  # noqa: F401  isort: skip
from noisyflow.methods.selection import curriculum as _curriculum  # noqa: F401  isort: skip

__all__ = ["SELECTIONS", "SelectionInputs", "Selector", "all_labelled"]
