"""Opening one image safely: inside the data root, within a pixel budget, fully decoded, converted
to one channel count and resized to one size. `prepare` and `noisyflow predict` share it, so new
images get exactly the preprocessing the model was trained with.

Safety, in order: the path must resolve (symlinks included) inside the data root; the size the
file *declares* in its header must not exceed `max_pixels` (checked before any pixel is decoded:
a decompression bomb declares a huge size in a few bytes; Pillow's own `MAX_IMAGE_PIXELS` guard
is lifted while we open so that our limit, not Pillow's, decides and names the file); the file is
then decoded completely, so a truncated file is an error, never a grey-padded image.

Modes: 1 channel = Pillow "L" (ITU-R 601-2 luma), 3 channels = "RGB". Alpha is dropped, as
torchvision's default loader does; palette images with transparency go through RGBA; 16-bit
greys (I;16*, I) are scaled from 0..65535 to 0..255; float greys (F) are clipped to 0..255.

Resizing uses Pillow's bilinear filter, whose kernel widens when shrinking (antialiased, like
torchvision's `Resize(antialias=True)`):
- crop: the centred box with the target's aspect ratio (a square for image_size) is resized to
  the target; the same as scaling the shorter side to image_size and cropping the centre
  (torchvision `Resize(s)` + `CenterCrop(s)`), without the intermediate image.
- stretch: the whole image is resized to the target; the aspect ratio is not kept.
Large JPEGs are first decoded at a reduced DCT scale (Pillow's `draft`) no smaller than needed,
which is deterministic and several times faster on photos.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from noisyflow.errors import InputDataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
RESIZE_MODES = ("crop", "stretch")

# What Pillow raises on broken files varies by format; all of them mean "not a readable image".
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
    Image.DecompressionBombError,
)
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


@dataclass(frozen=True)
class Preprocess:
    """How every image becomes one (H, W, C) uint8 array.

    size:       (height, width) of the output, or None to keep each image's own size (then all
                images of a data set must share it)
    resize:     "crop" | "stretch" (module docstring)
    channels:   1 (L) or 3 (RGB)
    max_pixels: images declaring more pixels (width x height) are refused before decoding
    """

    size: tuple[int, int] | None
    resize: str = "crop"
    channels: int = 3
    max_pixels: int = 89_478_485

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")


def resolve_inside(root: str | Path, path: str | Path, *, what: str = "") -> Path:
    """The real path of `path` (relative to `root`, or absolute), refused unless inside `root`.

    Refuses `..` escapes, absolute paths elsewhere and symlinks resolving outside the root, so a
    label file cannot make prepare read (and a later export link) arbitrary files.
    """
    root_real = Path(os.path.realpath(root))
    candidate = Path(path)
    full = candidate if candidate.is_absolute() else Path(root) / candidate
    real = Path(os.path.realpath(full))
    if real != root_real and root_real not in real.parents:
        where = f"{what}: " if what else ""
        raise InputDataError(
            f"{where}path {str(path)!r} resolves to {real}, outside the data root {root_real}; "
            "expected a file inside data.root (refused: '..', absolute paths elsewhere and "
            "symlinks pointing out are not followed)"
        )
    return real


@contextmanager
def _strict_pillow() -> Iterator[None]:
    """Our own pixel limit decides (Pillow's is lifted); truncated files stay errors."""
    saved_pixels, saved_truncated = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS = None
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved_pixels
        ImageFile.LOAD_TRUNCATED_IMAGES = saved_truncated


def decode_image(
    data: str | Path | bytes, *, name: str, spec: Preprocess
) -> tuple[np.ndarray, str]:
    """Decode one image file (path) or encoded blob (bytes) to (H, W, C) uint8 per `spec`.

    Returns the array and the image's original Pillow mode. Raises InputDataError naming `name`
    for anything that is not a complete, readable image within `spec.max_pixels`.
    """
    fp = io.BytesIO(data) if isinstance(data, bytes) else data
    with _strict_pillow():
        try:
            im = Image.open(fp)
        except FileNotFoundError:
            raise InputDataError(f"{name}: file not found; expected an image file") from None
        except UnidentifiedImageError:
            raise InputDataError(
                f"{name}: not an image Pillow can read; expected one of "
                + ", ".join(IMAGE_EXTENSIONS)
            ) from None
        except _DECODE_ERRORS as exc:
            raise InputDataError(
                f"{name}: not an image Pillow can read ({_reason(exc)}); expected one of "
                + ", ".join(IMAGE_EXTENSIONS)
            ) from None
        with im:
            width, height = im.size
            if width * height > spec.max_pixels:
                raise InputDataError(
                    f"{name}: declares {width}x{height} = {width * height:,} pixels, over "
                    f"data.max_pixels = {spec.max_pixels:,}; refused before decoding (a "
                    "decompression bomb, or raise data.max_pixels if the image is genuine)"
                )
            mode = im.mode
            try:
                if im.format == "JPEG" and spec.size is not None:
                    im.draft(None, _draft_size(im.size, spec.size, spec.resize))
                im.load()
                out = _resize(_to_channels(im, spec.channels), spec.size, spec.resize)
            except _DECODE_ERRORS as exc:
                raise InputDataError(
                    f"{name}: cannot decode the {mode} {im.format or ''} image completely "
                    f"({_reason(exc)}); expected a complete, uncorrupted image file"
                ) from None
    arr = np.asarray(out, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr, mode


def load_images(
    paths: Sequence[str | Path],
    *,
    image_size: int | tuple[int, int] | None,
    resize: str = "crop",
    channels: int = 3,
    max_pixels: int = 89_478_485,
    root: str | Path | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Decode `paths` into one (N, H, W, C) uint8 array; also return images per original mode.

    image_size: side of a square output, (height, width), or None to keep the images' own size
    (they must then all share the first image's size). With `root`, every path must resolve
    inside it. Holds the whole result in memory: for new images to predict, not for data sets
    (`noisyflow.data.decode` streams those into a memory map).
    """
    if isinstance(image_size, int):
        size: tuple[int, int] | None = (image_size, image_size)
    else:
        size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    spec = Preprocess(size, resize, channels, max_pixels)
    if not paths:
        raise InputDataError("no images given; expected at least one image path")
    arrays, modes = [], Counter()
    for path in paths:
        real = resolve_inside(root, path) if root is not None else Path(path)
        arr, mode = decode_image(real, name=str(path), spec=spec)
        if arrays and arr.shape != arrays[0].shape:
            raise InputDataError(
                f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, expected "
                f"{arrays[0].shape[1]}x{arrays[0].shape[0]} like {paths[0]}; set an image "
                "size to resize them all"
            )
        arrays.append(arr)
        modes[mode] += 1
    return np.stack(arrays), dict(sorted(modes.items()))


def preprocess_array(image: np.ndarray, spec: Preprocess) -> np.ndarray:
    """One (H, W, C) uint8 array (C = 1 or 3) converted and resized like a decoded file."""
    im = Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image)
    arr = np.asarray(_resize(_to_channels(im, spec.channels), spec.size, spec.resize), np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def image_size_of(data: str | Path | bytes, *, name: str, max_pixels: int) -> tuple[int, int]:
    """(height, width) the image declares, read from its header only (no decoding)."""
    fp = io.BytesIO(data) if isinstance(data, bytes) else data
    with _strict_pillow():
        try:
            with Image.open(fp) as im:
                width, height = im.size
        except _DECODE_ERRORS as exc:
            raise InputDataError(f"{name}: not an image Pillow can read ({_reason(exc)})") from None
    if width * height > max_pixels:
        raise InputDataError(
            f"{name}: declares {width}x{height} = {width * height:,} pixels, over "
            f"data.max_pixels = {max_pixels:,}; refused before decoding"
        )
    return height, width


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _to_channels(im: Image.Image, channels: int) -> Image.Image:
    mode = im.mode
    if mode in _SIXTEEN_BIT or mode == "F":
        values = np.asarray(im, dtype=np.float64)
        if mode != "F":
            values = values / 257.0  # 65535 -> 255
        im = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    target = "L" if channels == 1 else "RGB"
    return im if im.mode == target else im.convert(target)


def _crop_box(width: int, height: int, out_h: int, out_w: int) -> tuple[float, float, float, float]:
    """The centred box of the output's aspect ratio, as large as the image allows."""
    scale = min(width / out_w, height / out_h)
    box_w, box_h = out_w * scale, out_h * scale
    left, top = (width - box_w) / 2.0, (height - box_h) / 2.0
    return (left, top, left + box_w, top + box_h)


def _draft_size(im_size: tuple[int, int], size: tuple[int, int], resize: str) -> tuple[int, int]:
    """Smallest (width, height) a JPEG may be decoded at and still cover the target."""
    out_h, out_w = size
    width, height = im_size
    if resize == "stretch":
        return (out_w, out_h)
    scale = max(out_w / width, out_h / height)  # the crop box must keep >= out pixels
    return (int(np.ceil(width * scale)), int(np.ceil(height * scale)))


def _resize(im: Image.Image, size: tuple[int, int] | None, resize: str) -> Image.Image:
    if size is None:
        return im
    out_h, out_w = size
    if im.size == (out_w, out_h):
        return im
    if resize == "stretch":
        return im.resize((out_w, out_h), Image.Resampling.BILINEAR)
    box = _crop_box(im.size[0], im.size[1], out_h, out_w)
    return im.resize((out_w, out_h), Image.Resampling.BILINEAR, box=box)
