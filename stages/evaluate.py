"""DVC stage `evaluate`: test accuracy (ensemble and each network), per-class accuracy, the
confusion matrix, and detection / correction scores where the true labels are known."""

from __future__ import annotations

from noisyflow import recipes
from noisyflow.artifacts import (
    load_label_issues,
    metrics_payload,
    save_confusion_csv,
    save_per_class,
)
from noisyflow.io import atomic_outputs, load_checkpoint, write_json
from noisyflow.lineage import dvc_hash
from noisyflow.plots import save_confusion_png
from stages.common import entrypoint, parser, stage
from stages.logging import read_prepared

READS = ("model", "method.networks")
PATHS = {
    "prepared": "data/prepared",
    "model": "models/final.pt",
    "issues": "outputs/label_issues.csv",
    "metrics": "metrics.json",
    "confusion": "plots/confusion.csv",
    "confusion_png": "plots/confusion.png",
    "per_class": "outputs/per_class_accuracy.csv",
}


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("evaluate", PATHS).parse_args(argv)
    with stage("evaluate", args.params, READS) as ctx:
        prepared = read_prepared(ctx, args.prepared)
        payload = load_checkpoint(args.model)
        _, nets = recipes.load_nets(
            payload, ctx.runtime, origin=str(args.model), expect=ctx.params, prepared=prepared
        )
        issues = load_label_issues(args.issues, prepared)
        result = recipes.evaluate(prepared, nets, issues, ctx.runtime)
        outs = (args.metrics, args.confusion, args.confusion_png, args.per_class)
        with atomic_outputs(*outs) as (metrics, confusion, confusion_png, per_class):
            write_json(metrics, metrics_payload(result.metrics))
            save_confusion_csv(confusion, prepared.y_test, result.predictions)
            save_confusion_png(confusion_png, result.confusion, prepared.classes)
            save_per_class(per_class, prepared.classes, result.per_class)
        ctx.outputs_written = True
        ctx.log("log_metrics", result.metrics)
        ctx.log("log_outputs", list(outs))
        ctx.log("log_summary", result.metrics)
        ctx.log(
            "promote",
            args.model,
            result.metrics,
            registered_model=ctx.params.tracking.registered_model,
            data_key=dvc_hash(args.prepared)[:12],
        )
        shown = ("test_accuracy", "detection_f1", "correction_accuracy", "given_label_accuracy")
        print(
            "evaluate: "
            + ", ".join(f"{k}={result.metrics[k]:.4f}" for k in shown if k in result.metrics)
        )


if __name__ == "__main__":
    main()
