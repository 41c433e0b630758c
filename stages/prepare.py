"""DVC stage `prepare`: decode the source once (cached), split train/val/test, inject benchmark
noise, and write memory-mappable arrays plus meta.json."""

from __future__ import annotations

from noisyflow.data.prepare import prepare_dataset
from noisyflow.io import atomic_outputs
from stages.common import CACHE_DIR, entrypoint, parser, stage
from stages.logging import log_prepared

READS = ("data",)
PATHS = {"sources": "data/sources.json", "out": "data/prepared"}


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("prepare", PATHS).parse_args(argv)
    with stage("prepare", args.params, READS) as ctx:
        p = ctx.params
        with atomic_outputs(args.out) as (out,):
            prepared = prepare_dataset(
                p.data,
                out,
                cache_dir=ctx.root / CACHE_DIR,
                workers=p.runtime.decode_workers,
                base=ctx.root,
            )
        ctx.outputs_written = True
        meta = prepared.meta
        rate = meta.get("noise", {}).get("realised_rate")
        ctx.log("log_metrics", {"num_train": len(prepared.train), "num_test": len(prepared.test)})
        if rate is not None:
            ctx.log("log_metrics", {"realised_noise_rate": rate})
        log_prepared(ctx, args.out, prepared)
        ctx.log("log_outputs", [args.out])
        noise = f"realised noise {rate:.3f}" if rate is not None else "true labels unknown"
        val = f" / {len(prepared.val)} val" if prepared.val is not None else ""
        print(
            f"prepare: {len(prepared.train)} train{val} / {len(prepared.test)} test, "
            f"{prepared.num_classes} classes, {noise} -> {args.out}"
        )


if __name__ == "__main__":
    main()
