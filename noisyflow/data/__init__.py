"""Data: sources behind one interface, safe image decoding, the prepare step, batched augmentation.

Names are imported lazily (PEP 562) so that decode workers, which import only
`noisyflow.data.images` and `noisyflow.data.decode`, never pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SOURCES": "noisyflow.data.sources",
    "SourceData": "noisyflow.data.sources",
    "load_source": "noisyflow.data.sources",
    "load_images": "noisyflow.data.images",
    "prepare_dataset": "noisyflow.data.prepare",
    "load_prepared": "noisyflow.data.prepare",
    "fingerprint": "noisyflow.data.fingerprint",
    "export_labels": "noisyflow.data.export",
    "stratified_split": "noisyflow.data.split",
    "augment_batch": "noisyflow.data.transforms",
    "to_tensor": "noisyflow.data.transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'noisyflow.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
