"""Where the benchmarks find the shared CIFAR-10 JPEG pack: `$NOISYFLOW_CIFAR`, else
`../shared/data/cifar10-jpeg.npz` beside the repository (the layout of this project's machines).
Each script still takes the path as an option."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CIFAR_PACK = Path(
    os.environ.get("NOISYFLOW_CIFAR", REPO.parent / "shared" / "data" / "cifar10-jpeg.npz")
)
