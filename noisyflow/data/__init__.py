"""Data: sources behind one interface, stratified splits, batched tensor augmentation."""

from noisyflow.data.sources import SOURCES, LabeledImages, load_source, validate_images
from noisyflow.data.split import stratified_split
from noisyflow.data.transforms import augment_batch, to_tensor

__all__ = [
    "SOURCES",
    "LabeledImages",
    "augment_batch",
    "load_source",
    "stratified_split",
    "to_tensor",
    "validate_images",
]
