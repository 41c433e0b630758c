"""DVC stage `prepare`: load the source, split train/test, inject label noise."""

from __future__ import annotations

from noisyflow import recipes
from noisyflow.artifacts import save_prepared
from noisyflow.io import atomic_outputs
from stages.common import entrypoint, log_prepared_input, parser, stage


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("prepare", {"out": "data/prepared"}).parse_args(argv)
    with stage("prepare", args.params, ("data",)) as ctx:
        prepared = recipes.prepare(ctx.params.data)
        with atomic_outputs(args.out) as (out,):
            save_prepared(out, prepared)
        meta = prepared.meta
        ctx.run.log_metrics(
            {
                "realised_noise_rate": meta["realised_noise_rate"],
                "num_train": meta["num_train"],
                "num_test": meta["num_test"],
            }
        )
        log_prepared_input(ctx, args.out, prepared)
        ctx.run.log_outputs([args.out])
        rate = meta["realised_noise_rate"]
        noise = f"realised noise {rate:.3f}" if rate is not None else "true labels unknown"
        print(
            f"prepare: {meta['num_train']} train / {meta['num_test']} test, {noise} -> {args.out}"
        )


if __name__ == "__main__":
    main()
