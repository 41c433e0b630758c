"""DVC stage `train`: the chosen SSL / supervised method on the selection's division
(DivideMix: co-refinement, co-guessing, MixMatch, re-divided every epoch)."""

from __future__ import annotations

from noisyflow import recipes
from noisyflow.artifacts import load_division, save_division, save_history_csv
from noisyflow.io import atomic_outputs, save_checkpoint, write_json
from noisyflow.plots import save_training_curves
from stages.common import entrypoint, epoch_logger, parser, stage
from stages.logging import read_prepared

READS = (
    "seed",
    "model",
    "augment",
    "train",
    "method",
    "losses.${method.loss}",
    "selection.${method.selection}",
    "ssl.${method.ssl}",
    "mixing.${method.mixup}",
)
PATHS = {
    "prepared": "data/prepared",
    "warmup_model": "models/warmup.pt",
    "division": "outputs/codivide/division.npz",
    "model": "models/train.pt",
    "out": "outputs/train/division.npz",
    "metrics": "metrics/train.json",
    "plot": "plots/train.csv",
    "curves": "plots/train_curves.png",
}
CURVES = ["test_accuracy", "loss_net1", "loss_net2", "estimated_noise_rate", "detection_f1"]


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("train", PATHS).parse_args(argv)
    with stage("train", args.params, READS) as ctx:
        prepared = read_prepared(ctx, args.prepared)
        _, config, nets = ctx.load_nets(args.warmup_model, prepared)
        first = load_division(args.division, len(prepared.labels))
        checkpointer = ctx.checkpointer([args.prepared, args.warmup_model, args.division])
        result = recipes.train(
            ctx.params,
            prepared,
            nets,
            first,
            ctx.runtime,
            checkpointer=checkpointer,
            on_epoch_end=epoch_logger(ctx),
        )
        ctx.resumed(result.resumed_from, result.resumed_run_id)
        history = result.history
        last = {k: v for k, v in history[-1].items() if k != "epoch"}
        outs = (args.model, args.out, args.metrics, args.plot, args.curves)
        with atomic_outputs(*outs) as (model, out, metrics, plot, curves):
            save_checkpoint(model, recipes.nets_payload(config, nets, prepared, history=history))
            save_division(out, result.division)
            write_json(metrics, last)
            save_history_csv(plot, history)
            save_training_curves(curves, history, CURVES)
        ctx.outputs_written = True
        checkpointer.clear()
        ctx.log("log_outputs", list(outs))
        print(f"train: {len(history)} epochs, test accuracy {last['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
