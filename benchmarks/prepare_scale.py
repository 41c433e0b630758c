"""Prepare at scale: time and peak memory of `prepare_dataset` on the 60,000-image CIFAR-10 pack
and on a generated image folder of >= 20,000 files, cold (decoding) and warm (cache hit).

    python benchmarks/prepare_scale.py make-folder /tmp/bench/folder --count 20000
    /usr/bin/time -v python benchmarks/prepare_scale.py cifar10 --workers 2 --phase cold
    /usr/bin/time -v python benchmarks/prepare_scale.py cifar10 --workers 2 --phase warm
    /usr/bin/time -v python benchmarks/prepare_scale.py folder /tmp/bench/folder --workers 2 --phase cold
    /usr/bin/time -v python benchmarks/prepare_scale.py folder /tmp/bench/folder --workers 2 --phase warm
    /usr/bin/time -v python benchmarks/prepare_scale.py naive-cifar10   # holds every image

`--phase both` runs cold then warm in one process. The cache and outputs live under --work
(default /tmp/noisyflow-bench); `cold` empties that cache first. Each run prints its wall time,
this process's peak resident memory and a sampled peak of this process plus its decode workers
(their unique memory).
`/usr/bin/time -v` reports "Maximum resident set size" of the largest single process (Linux
charges a spawned worker the parent's resident size at fork, so it cannot be lower than the
parent's). The baseline printed after the imports is what importing noisyflow (and with it
torch) costs before any data is touched.
"""

from __future__ import annotations

import argparse
import io
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from packs import CIFAR_PACK as PACK
from packs import REPO
from PIL import Image

sys.path.insert(0, str(REPO))

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def rss_mib() -> float:
    """Current resident memory of this process (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class TreeMemory:
    """Samples, every 20 ms, the resident memory of this process plus the unique memory (USS)
    of its children, the decode workers: the total a machine must provide, which ru_maxrss does
    not report. USS, because a child between fork and exec shows the parent's pages as its own
    RSS while sharing them."""

    def __init__(self) -> None:
        self.peak_total = self.peak_workers = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.02):
            try:
                kids = sum(c.memory_full_info().uss for c in me.children(recursive=True))
                total = me.memory_info().rss + kids
            except psutil.Error:
                continue
            self.peak_total = max(self.peak_total, total / 2**20)
            self.peak_workers = max(self.peak_workers, kids / 2**20)


def peaks(tree: TreeMemory | None = None) -> str:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = f"peak RSS of this process (ru_maxrss) {me:.0f} MiB"
    if tree is not None:
        text += (
            f"; sampled peak of this process (RSS) + decode workers (USS) "
            f"{tree.peak_total:.0f} MiB (workers together {tree.peak_workers:.0f} MiB)"
        )
    return text


def make_folder(root: Path, count: int, seed: int = 0) -> None:
    """`count` small images in 10 class folders: mostly JPEG, some RGBA / grey / palette PNGs,
    sizes between 24 and 64 pixels a side (so every image is resized and centre-cropped)."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for i in range(count):
        cls = CLASSES[i % 10]
        w, h = (int(v) for v in rng.integers(24, 65, 2))
        base = rng.integers(0, 256, 3)
        arr = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr)
        kind = i % 20
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        if kind == 0:
            im.convert("RGBA").save(folder / f"{i:06d}.png")
        elif kind == 1:
            im.convert("L").save(folder / f"{i:06d}.png")
        elif kind == 2:
            im.convert("P").save(folder / f"{i:06d}.png")
        else:
            im.save(folder / f"{i:06d}.jpg", quality=90)
    print(f"made {count} images in {root} in {time.perf_counter() - t0:.1f} s")


def run_prepare(data, work: Path, workers: int, phase: str) -> None:
    from noisyflow.data.prepare import prepare_dataset

    cache = work / "cache"
    if phase in ("cold", "both"):
        shutil.rmtree(cache, ignore_errors=True)
    for label in ("cold", "warm") if phase == "both" else (phase,):
        out = work / f"prepared-{label}"
        t0 = time.perf_counter()
        with TreeMemory() as tree:
            prepared = prepare_dataset(data, out, cache_dir=cache, workers=workers)
        seconds = time.perf_counter() - t0
        run = prepared.meta["decode_run"]
        hits = {k: v["cache_hit"] for k, v in run.items()}
        decode_s = {k: v["seconds"] for k, v in run.items()}
        print(
            f"{label}: prepare {seconds:.2f} s (decode {decode_s}, cache hit {hits}); "
            f"train {prepared.train.x.shape}, test {prepared.test.x.shape}; "
            f"modes {prepared.meta['decode']['train']['modes']}; RSS now {rss_mib():.0f} MiB"
        )
        print(f"{label}: {peaks(tree)}")
        del prepared
        shutil.rmtree(out)


def naive_cifar10() -> None:
    """The version that holds everything: decode all 60,000 images in this process, stack, save."""
    from noisyflow.io import load_npz

    t0 = time.perf_counter()
    arrays = load_npz(PACK)
    out = {}
    for part in ("train", "test"):
        blobs, offsets = arrays[f"{part}_jpeg"], arrays[f"{part}_offsets"]
        images = [
            np.asarray(Image.open(io.BytesIO(blobs[a:b].tobytes())).convert("RGB"))
            for a, b in zip(offsets[:-1], offsets[1:], strict=True)
        ]
        out[part] = np.stack(images)
        del images
    print(f"naive: decoded {[v.shape for v in out.values()]} in {time.perf_counter() - t0:.2f} s")
    print(peaks())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=("cifar10", "folder", "make-folder", "naive-cifar10"))
    parser.add_argument("folder", nargs="?", type=Path, help="the image folder (folder cases)")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--phase", choices=("cold", "warm", "both"), default="both")
    parser.add_argument("--work", type=Path, default=Path("/tmp/noisyflow-bench"))
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()

    if args.case == "make-folder":
        make_folder(args.folder, args.count)
        return
    from noisyflow.config import DataParams, NoiseParams

    print(f"baseline after imports: RSS {rss_mib():.0f} MiB")
    if args.case == "naive-cifar10":
        naive_cifar10()
        return
    no_noise = NoiseParams(type="none")
    if args.case == "cifar10":
        data = DataParams(source="cifar10", path=str(PACK), noise=no_noise)
        work = args.work / "cifar10"
    else:
        if args.folder is None:
            parser.error("folder: give the image folder (make one with make-folder)")
        data = DataParams(
            source="imagefolder",
            path=str(args.folder),
            image_size=args.image_size,
            test_size=1000,
            noise=no_noise,
        )
        work = args.work / "folder-run"
    work.mkdir(parents=True, exist_ok=True)
    run_prepare(data, work, args.workers, args.phase)


if __name__ == "__main__":
    main()
