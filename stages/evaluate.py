"""DVC stage `evaluate`: test accuracy (ensemble and each net), per-class accuracy, confusion
matrix, and label-issue detection / correction scores when the true labels are known."""

from __future__ import annotations

import csv

from noisyflow import recipes
from noisyflow.artifacts import load_label_issues, save_confusion_csv
from noisyflow.io import atomic_outputs, write_json
from noisyflow.plots import save_confusion_png
from stages.common import entrypoint, log_evaluation, parser, read_nets, read_prepared, stage

PATHS = {
    "prepared": "data/prepared",
    "model": "models/train.pt",
    "issues": "outputs/label_issues.csv",
    "metrics": "metrics.json",
    "confusion": "plots/confusion.csv",
    "confusion_png": "plots/confusion.png",
    "per_class": "outputs/per_class_accuracy.csv",
}


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("evaluate", PATHS).parse_args(argv)
    with stage("evaluate", args.params, ("seed",)) as ctx:
        prepared = read_prepared(ctx, args.prepared)
        nets = read_nets(ctx, args.model)
        issues = load_label_issues(args.issues, len(prepared.labels))
        result = recipes.evaluate(prepared, nets, issues, ctx.device)
        outs = (args.metrics, args.confusion, args.confusion_png, args.per_class)
        with atomic_outputs(*outs) as (metrics, confusion, confusion_png, per_class):
            write_json(metrics, {k: round(v, 6) for k, v in result.metrics.items()})
            save_confusion_csv(confusion, prepared.y_test, result.predictions)
            save_confusion_png(confusion_png, result.confusion, prepared.classes)
            with open(per_class, "w", newline="") as fh:
                csv.writer(fh).writerows(
                    [("class", "accuracy"), *zip(prepared.classes, result.per_class, strict=True)]
                )
        ctx.run.log_metrics(result.metrics)
        ctx.run.log_outputs(list(outs))
        log_evaluation(ctx, result.metrics, args.model)
        print("evaluate: " + ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))


if __name__ == "__main__":
    main()
