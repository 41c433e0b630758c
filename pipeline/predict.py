"""`noisyflow predict`: class and probability for new images, preprocessed exactly as the
training images were (image size, resize rule and channels are stored with the model).

    noisyflow predict photo1.jpg photo2.png              # the latest run's models/final.pt
    noisyflow predict --folder new_photos --out preds.csv
    noisyflow predict img.jpg --model models:/noisyflow-ensemble@champion
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np

from noisyflow.errors import InputDataError

DEFAULT_MODEL = "models/final.pt"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def load_predictor(model: str) -> tuple[Any, list[str], dict[str, Any]]:
    """(callable uint8 (B, H, W, C) -> probabilities (B, K), class names, preprocessing)."""
    if "://" in model or model.startswith(("models:/", "runs:/")):
        return _from_mlflow(model)
    return _from_checkpoint(Path(model))


def _from_checkpoint(path: Path):
    import torch

    from noisyflow import recipes
    from noisyflow.io import load_checkpoint
    from noisyflow.models import ImageClassifier
    from noisyflow.train.runtime import Runtime

    payload = load_checkpoint(path)
    _, nets = recipes.load_nets(payload, Runtime.cpu(), origin=str(path))
    model = ImageClassifier(nets, tta=payload.get("tta", "none")).eval()

    def predict(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(images))).numpy()

    return predict, list(payload.get("classes", [])), dict(payload.get("preprocessing", {}))


def _from_mlflow(uri: str):
    import mlflow.pytorch
    import torch
    from mlflow.models import get_model_info

    from noisyflow.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    try:
        info = get_model_info(uri)
        model = mlflow.pytorch.load_model(uri, map_location="cpu")
    except Exception as exc:
        raise InputDataError(f"{uri}: cannot load the model from MLflow ({exc})") from None
    meta = info.metadata or {}

    def predict(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(images))).numpy()

    return predict, list(meta.get("classes", [])), dict(meta.get("preprocessing", {}))


def collect_paths(paths: list[str], folder: str | None) -> list[Path]:
    files = [Path(p) for p in paths]
    if folder:
        root = Path(folder)
        if not root.is_dir():
            raise InputDataError(f"{root}: not a folder")
        files += sorted(
            p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
    if not files:
        raise InputDataError("no images given (pass paths or --folder DIR)")
    for f in files:
        if not f.is_file():
            raise InputDataError(f"{f}: file not found")
    return files


def predict_cli(args: argparse.Namespace) -> int:
    from noisyflow.data.images import load_images

    files = collect_paths(args.paths, args.folder)
    predict, classes, pre = load_predictor(args.model)
    rows = []
    for start in range(0, len(files), args.batch_size):
        chunk = files[start : start + args.batch_size]
        size = pre.get("size")
        images, _ = load_images(
            [str(f) for f in chunk],
            image_size=tuple(size) if size else None,
            resize=pre.get("resize", "crop"),
            channels=pre.get("channels", 3),
            max_pixels=pre.get("max_pixels", 89_478_485),
        )
        probs = predict(images)
        for f, p in zip(chunk, probs, strict=True):
            k = int(p.argmax())
            name = classes[k] if k < len(classes) else str(k)
            rows.append((str(f), name, k, f"{float(p[k]):.6f}"))
    out = open(args.out, "w", newline="") if args.out else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(out)
        writer.writerow(("path", "class", "label", "probability"))
        writer.writerows(rows)
    finally:
        if args.out:
            out.close()
            print(f"predict: {len(rows)} images -> {args.out}", file=sys.stderr)
    return 0
