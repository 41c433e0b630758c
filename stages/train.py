"""DVC stage `train`: DivideMix co-training (co-refinement, co-guessing, MixMatch), with a
fresh co-divide at the start of every epoch after the first."""

from __future__ import annotations

from noisyflow import recipes
from noisyflow.artifacts import load_division, save_division, save_history_csv
from noisyflow.io import atomic_outputs, load_checkpoint, save_checkpoint, write_json
from noisyflow.plots import save_training_curves
from stages.common import entrypoint, log_ensemble, parser, read_prepared, stage

PATHS = {
    "prepared": "data/prepared",
    "warmup_model": "models/warmup.pt",
    "division": "outputs/codivide/clean_probs.npz",
    "model": "models/train.pt",
    "out": "outputs/train/clean_probs.npz",
    "metrics": "metrics/train.json",
    "plot": "plots/train.csv",
    "curves": "plots/train_curves.png",
}
CURVES = ["test_accuracy", "loss_net1", "loss_net2", "estimated_noise_rate", "detection_f1"]


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("train", PATHS).parse_args(argv)
    with stage("train", args.params, ("seed", "model", "augment", "codivide", "train")) as ctx:
        prepared = read_prepared(ctx, args.prepared)
        config, nets = recipes.load_nets(load_checkpoint(args.warmup_model), ctx.device)
        first = load_division(args.division, len(prepared.labels))
        nets, final, history = recipes.train(
            ctx.params,
            prepared,
            nets,
            first,
            ctx.device,
            on_epoch_end=lambda e, s: ctx.run.log_metrics(s, step=e),
        )
        last = {k: v for k, v in history[-1].items() if k != "epoch"} if history else {}
        outs = (args.model, args.out, args.metrics, args.plot, args.curves)
        with atomic_outputs(*outs) as (model, out, metrics, plot, curves):
            save_checkpoint(model, recipes.nets_state(config, nets, history=history))
            save_division(out, final)
            write_json(metrics, last)
            save_history_csv(plot, history)
            save_training_curves(curves, history, CURVES)
        ctx.run.log_outputs(list(outs))
        log_ensemble(ctx, nets, prepared, args.model)
        print(
            f"train: {len(history)} epochs, test accuracy {last.get('test_accuracy', float('nan')):.4f}"
        )


if __name__ == "__main__":
    main()
