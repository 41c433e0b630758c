"""DVC stage `warmup`: each network trained on every sample with the supervised loss (a
selection that learns from training statistics, such as AUM, records them here)."""

from __future__ import annotations

from noisyflow import recipes
from noisyflow.artifacts import save_history_csv
from noisyflow.io import atomic_outputs, save_checkpoint, write_json
from stages.common import entrypoint, epoch_logger, parser, stage
from stages.logging import read_prepared

READS = (
    "seed",
    "model",
    "augment",
    "warmup",
    "method.networks",
    "method.loss",
    "method.selection",
    "method.mixup",
    "losses.${method.loss}",
    "mixing.${method.mixup}",
)
PATHS = {
    "prepared": "data/prepared",
    "model": "models/warmup.pt",
    "metrics": "metrics/warmup.json",
    "plot": "plots/warmup.csv",
}


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("warmup", PATHS).parse_args(argv)
    with stage("warmup", args.params, READS) as ctx:
        prepared = read_prepared(ctx, args.prepared)
        checkpointer = ctx.checkpointer([args.prepared])
        result = recipes.warmup(
            ctx.params,
            prepared,
            ctx.runtime,
            checkpointer=checkpointer,
            on_epoch_end=epoch_logger(ctx),
        )
        ctx.resumed(result.resumed_from, result.resumed_run_id)
        last = {k: v for k, v in result.history[-1].items() if k != "epoch"}
        payload = recipes.nets_payload(
            result.config,
            result.nets,
            prepared,
            history=result.history,
            stats={k: v.cpu() for k, v in result.stats.items()},
        )
        with atomic_outputs(args.model, args.metrics, args.plot) as (model, metrics, plot):
            save_checkpoint(model, payload)
            write_json(metrics, last)
            save_history_csv(plot, result.history)
        ctx.outputs_written = True
        checkpointer.clear()
        ctx.log("log_outputs", [args.model, args.metrics, args.plot])
        print(f"warmup: {len(result.history)} epochs -> {args.model}")


if __name__ == "__main__":
    main()
