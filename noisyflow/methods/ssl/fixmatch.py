"""FixMatch pieces: strong augmentation as batched tensor ops, and the unlabelled loss.

Sohn, Berthelot, Li, Zhang, Carlini, Cubuk, Kurakin, Zhang, Raffel, "FixMatch: Simplifying
Semi-Supervised Learning with Consistency and Confidence", NeurIPS 2020. The prediction on a weak
view of an unlabelled image, where it is confident (max probability >= tau), is the hard
pseudo-label that the prediction on a strong view must match.

`strong_augment` is a RandAugment-style policy (the paper's RandAugment variant with a random
magnitude per op, followed by Cutout) computed for the whole batch at once: per round each image
draws one op and a magnitude v ~ U(0, magnitude); every colour op is computed on the batch and
selected per image by a mask; the geometric ops of all rounds are composed into one affine map
per image and applied by a single grid_sample after the colour ops (geometry and the pointwise
colour ops commute except at the fill border, so this reordering is immaterial and saves a
resampling per round). Every op tends to the identity as v -> 0 (the solarize threshold tends to
1, so only saturated pixels are still inverted).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

COLOUR_OPS = (
    "identity",
    "brightness",
    "contrast",
    "saturation",
    "sharpness",
    "posterize",
    "solarize",
    "autocontrast",
)
GEOMETRIC_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
FILL = 0.5  # grey, for pixels moved in from outside the image and for Cutout

MAX_FACTOR = 0.9  # enhance factors 1 +- 0.9 v
MAX_DEGREES = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATE = 0.3  # fraction of the image side
MAX_POSTERIZE = 4  # bits removed at v = 1


def strong_ops(channels: int) -> tuple[str, ...]:
    """The ops drawn from for images with `channels` channels (saturation needs colour)."""
    colour = tuple(op for op in COLOUR_OPS if channels == 3 or op != "saturation")
    return colour + GEOMETRIC_OPS


def _per_image(v: torch.Tensor) -> torch.Tensor:
    return v[:, None, None, None]


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W): ITU-R 601 luma for RGB (as PIL), the mean otherwise."""
    if x.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
        return (x * weights[None, :, None, None]).sum(dim=1, keepdim=True)
    return x.mean(dim=1, keepdim=True)


def blend(image: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance: degenerate + factor (image - degenerate), factor (B,)."""
    return degenerate + _per_image(factor) * (image - degenerate)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with black: x * factor."""
    return blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with each image's mean grey level."""
    return blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's greyscale version (PIL's Color)."""
    return blend(x, grayscale(x), factor)


def smooth(x: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter ([[1,1,1],[1,5,1],[1,1,1]] / 13) inside, border pixels unchanged."""
    if x.shape[-1] < 3 or x.shape[-2] < 3:
        return x
    kernel = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / 13.0).expand(x.shape[1], 1, 3, 3)
    inner = F.conv2d(x, kernel, groups=x.shape[1])
    return F.pad(inner, (1, 1, 1, 1)) + x - F.pad(x[..., 1:-1, 1:-1], (1, 1, 1, 1))


def adjust_sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the smoothed image: factor > 1 sharpens, < 1 blurs (PIL's Sharpness)."""
    return blend(x, smooth(x), factor)


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the top `bits` (B,) bits of each 8-bit value; 8 bits leaves x unchanged."""
    levels = torch.round(x * 255.0)
    step = _per_image(torch.pow(2.0, (8 - bits).to(x.dtype)))
    quantised = torch.floor(levels / step) * step / 255.0
    return torch.where(_per_image(bits >= 8), x, quantised)


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert pixels above `threshold` (B,): x > t -> 1 - x (a threshold of 1 changes nothing)."""
    return torch.where(x > _per_image(threshold), 1.0 - x, x)


def autocontrast(x: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """Stretch each channel to [0, 1], blended with the input by `strength` (B,) in [0, 1]."""
    low = x.amin(dim=(2, 3), keepdim=True)
    high = x.amax(dim=(2, 3), keepdim=True)
    span = high - low
    stretched = torch.where(span > 0, (x - low) / span.clamp_min(1e-12), x)
    return x + _per_image(strength) * (stretched - x)


def affine(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample with per-image 3x3 pixel-space maps (B, 3, 3): output pixel -> input location.

    Pixel coordinates are centred on the image, so rotations and shears keep their angles on
    non-square images. Outside pixels are grey (FILL). One grid_sample for the whole batch.
    """
    b, _, h, w = x.shape
    scale = torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0], dtype=x.dtype, device=x.device))
    unscale = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0], dtype=x.dtype, device=x.device))
    theta = (unscale @ matrix.to(x.dtype) @ scale)[:, :2, :]
    grid = F.affine_grid(theta, [b, x.shape[1], h, w], align_corners=False)
    out = F.grid_sample(x - FILL, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + FILL


def geometric_matrix(op: str, value: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The pixel-space 3x3 map (B, 3, 3) of a geometric op with signed strengths `value` (B,)."""
    m = torch.eye(3, dtype=value.dtype, device=value.device).repeat(len(value), 1, 1)
    if op == "rotate":
        angle = value * (MAX_DEGREES * math.pi / 180.0)
        cos, sin = torch.cos(angle), torch.sin(angle)
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    elif op == "shear_x":
        m[:, 0, 1] = value * MAX_SHEAR
    elif op == "shear_y":
        m[:, 1, 0] = value * MAX_SHEAR
    elif op == "translate_x":
        m[:, 0, 2] = value * MAX_TRANSLATE * width
    elif op == "translate_y":
        m[:, 1, 2] = value * MAX_TRANSLATE * height
    else:
        raise ValueError(f"unknown geometric op {op!r}")
    return m


def cutout(x: torch.Tensor, side: int, corner: torch.Tensor) -> torch.Tensor:
    """Grey out a side x side square per image whose top-left corner is `corner` (B, 2) (row,
    col), clipped at the image border (DeVries & Taylor 2017)."""
    if side <= 0:
        return x
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    top, left = corner[:, :1].to(x.device), corner[:, 1:].to(x.device)
    in_rows = (rows >= top) & (rows < top + side)  # (B, H)
    in_cols = (cols >= left) & (cols < left + side)  # (B, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (B, 1, H, W)
    return torch.where(mask, torch.full_like(x, FILL), x)


def _colour_op(op: str, x: torch.Tensor, v: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    factor = 1.0 + sign * MAX_FACTOR * v
    if op == "identity":
        return x
    if op == "brightness":
        return adjust_brightness(x, factor)
    if op == "contrast":
        return adjust_contrast(x, factor)
    if op == "saturation":
        return adjust_saturation(x, factor)
    if op == "sharpness":
        return adjust_sharpness(x, factor)
    if op == "posterize":
        return posterize(x, 8 - torch.round(MAX_POSTERIZE * v))
    if op == "solarize":
        return solarize(x, 1.0 - v)
    if op == "autocontrast":
        return autocontrast(x, v)
    raise ValueError(f"unknown colour op {op!r}")


def strong_augment(
    x: torch.Tensor, *, ops: int, magnitude: float, generator: torch.Generator
) -> torch.Tensor:
    """RandAugment-style strong view of a batch, then Cutout (see the module docstring).

    Args:
        x: (B, C, H, W) float images in [0, 1], any device.
        ops: operations drawn (with replacement) per image, RandAugment's N.
        magnitude: in (0, 1]; each op's strength is v ~ U(0, magnitude) of its maximum
            (rotate 30 deg, shear 0.3, translate 30%, enhance factor 1 +- 0.9, posterize 4
            bits, solarize threshold 1 - v, autocontrast blend v); Cutout square of side
            round(magnitude * min(H, W) / 2).
        generator: all random draws (ops, strengths, signs, Cutout corners) come from it, on
            its own device, so a seed fixes the result.
    Returns:
        (B, C, H, W) augmented copy, clamped to [0, 1].
    """
    b, c, h, w = x.shape
    names = strong_ops(c)
    gdev = generator.device
    total = torch.eye(3, dtype=torch.float32, device=x.device).repeat(b, 1, 1)
    for _ in range(ops):
        choice = torch.randint(len(names), (b,), generator=generator, device=gdev).to(x.device)
        v = (torch.rand(b, generator=generator, device=gdev) * magnitude).to(x.device, x.dtype)
        sign = torch.randint(2, (b,), generator=generator, device=gdev).to(x.device, x.dtype)
        sign = 2.0 * sign - 1.0
        step = torch.eye(3, dtype=torch.float32, device=x.device).repeat(b, 1, 1)
        for k, name in enumerate(names):
            chosen = choice == k
            if name in GEOMETRIC_OPS:
                m = geometric_matrix(name, (sign * v).float(), h, w)
                step = torch.where(chosen[:, None, None], m, step)
            elif name != "identity":
                x = torch.where(_per_image(chosen), _colour_op(name, x, v, sign), x)
        total = total @ step
    x = affine(x, total)
    side = int(round(magnitude * min(h, w) / 2))
    corner_rows = torch.randint(
        -(side // 2), h - side // 2, (b, 1), generator=generator, device=gdev
    )
    corner_cols = torch.randint(
        -(side // 2), w - side // 2, (b, 1), generator=generator, device=gdev
    )
    x = cutout(x, side, torch.cat([corner_rows, corner_cols], dim=1))
    return x.clamp(0.0, 1.0)


def fixmatch_unlabelled_loss(
    logits_weak: torch.Tensor, logits_strong: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch's unlabelled term -> (loss (0-d), mask (muB,) float 0/1).

    Pseudo-labels are argmax softmax(weak) with a stop-gradient; mask = max prob >= threshold;
    loss = mean over ALL mu*B samples of mask * CE(strong, pseudo-label): masked samples count
    in the denominator (official code), so the term shrinks while few samples are confident.
    """
    probs = F.softmax(logits_weak.detach().float(), dim=1)
    confidence, pseudo = probs.max(dim=1)
    mask = (confidence >= threshold).float()
    ce = F.cross_entropy(logits_strong.float(), pseudo, reduction="none")
    return (ce * mask).mean(), mask
