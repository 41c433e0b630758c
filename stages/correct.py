"""DVC stage `correct`: the chosen label correction (Han et al.'s self-learning rounds, a
one-shot prototype vote, or the networks alone), the label-issue table pointing at the user's
rows and files, and the final model."""

from __future__ import annotations

from noisyflow import recipes
from noisyflow.artifacts import load_division, save_history_csv, save_label_issues
from noisyflow.io import atomic_outputs, save_checkpoint, write_json
from stages.common import entrypoint, epoch_logger, parser, stage
from stages.logging import log_model, read_prepared

READS = (
    "seed",
    "model",
    "augment",
    "train",
    "method",
    "correct",
    "correction.${method.correction}",
    "losses.${method.loss}",
    "mixing.${method.mixup}",
)
PATHS = {
    "prepared": "data/prepared",
    "train_model": "models/train.pt",
    "division": "outputs/train/division.npz",
    "model": "models/final.pt",
    "out": "outputs/label_issues.csv",
    "metrics": "metrics/correct.json",
    "plot": "plots/correct.csv",
}


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("correct", PATHS).parse_args(argv)
    with stage("correct", args.params, READS) as ctx:
        prepared = read_prepared(ctx, args.prepared)
        _, config, nets = ctx.load_nets(args.train_model, prepared)
        division = load_division(args.division, len(prepared.labels))
        checkpointer = ctx.checkpointer([args.prepared, args.train_model, args.division])
        result = recipes.correct(
            ctx.params,
            prepared,
            nets,
            division,
            ctx.runtime,
            checkpointer=checkpointer,
            on_epoch_end=epoch_logger(ctx),
        )
        ctx.resumed(result.resumed_from, result.resumed_run_id)
        fix = result.correction
        metrics = {
            "num_label_issues": int(fix.is_label_issue.sum()),
            "label_issue_fraction": float(fix.is_label_issue.mean()),
            "num_corrected": int((fix.corrected_label != prepared.labels).sum()),
        }
        history = result.history or [{"epoch": 0}]
        final = recipes.nets_payload(
            config, result.nets, prepared, history=result.history, tta=ctx.params.model.tta
        )
        outs = (args.model, args.out, args.metrics, args.plot)
        with atomic_outputs(*outs) as (model, out, metrics_path, plot):
            save_checkpoint(model, final)
            save_label_issues(out, prepared, fix)
            write_json(metrics_path, metrics)
            save_history_csv(plot, history)
        ctx.outputs_written = True
        checkpointer.clear()
        ctx.log("log_metrics", metrics)
        ctx.log("log_outputs", list(outs))
        log_model(ctx, result.nets, prepared, args.model)
        print(
            f"correct: {metrics['num_label_issues']} label issues, "
            f"{metrics['num_corrected']} corrected -> {args.out}"
        )


if __name__ == "__main__":
    main()
