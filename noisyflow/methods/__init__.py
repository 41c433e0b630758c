"""Methods on registered seams, one registry per family (see registry.py):

method.loss       -> LOSSES       (losses.<name>.*)
method.selection  -> SELECTIONS   (selection.<name>.*)
method.ssl        -> SSLS         (ssl.<name>.*)
method.mixup      -> MIXINGS      (mixing.<name>.*)
method.correction -> CORRECTIONS  (correction.<name>.*)
"""

from noisyflow.methods.correction import CORRECTIONS
from noisyflow.methods.losses import LOSSES
from noisyflow.methods.mixing import MIXINGS
from noisyflow.methods.selection import SELECTIONS
from noisyflow.methods.ssl import SSLS

FAMILIES = (LOSSES, SELECTIONS, SSLS, MIXINGS, CORRECTIONS)

__all__ = ["CORRECTIONS", "FAMILIES", "LOSSES", "MIXINGS", "SELECTIONS", "SSLS"]
