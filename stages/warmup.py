"""DVC stage `warmup`: two networks, CE + negative-entropy penalty, a few epochs."""

from __future__ import annotations

from noisyflow import recipes
from noisyflow.artifacts import save_history_csv
from noisyflow.io import atomic_outputs, save_checkpoint, write_json
from stages.common import entrypoint, parser, read_prepared, stage

PATHS = {
    "prepared": "data/prepared",
    "model": "models/warmup.pt",
    "metrics": "metrics/warmup.json",
    "plot": "plots/warmup.csv",
}


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("warmup", PATHS).parse_args(argv)
    with stage("warmup", args.params, ("seed", "model", "augment", "warmup")) as ctx:
        prepared = read_prepared(ctx, args.prepared)
        config, nets, history = recipes.warmup(
            ctx.params,
            prepared,
            ctx.device,
            on_epoch_end=lambda e, s: ctx.run.log_metrics(s, step=e),
        )
        final = {k: v for k, v in history[-1].items() if k != "epoch"} if history else {}
        with atomic_outputs(args.model, args.metrics, args.plot) as (model, metrics, plot):
            save_checkpoint(model, recipes.nets_state(config, nets, history=history))
            write_json(metrics, final)
            save_history_csv(plot, history)
        ctx.run.log_outputs([args.model, args.metrics, args.plot])
        print(f"warmup: {len(history)} epochs -> {args.model}")


if __name__ == "__main__":
    main()
