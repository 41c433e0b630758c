"""DVC stage `evaluate`: test accuracy (ensemble and each network), per-class accuracy, the
confusion matrix, detection / correction scores where the true labels are known, and the run
report: figures, DVC plot tables, outputs/data_issues.csv and outputs/report.html (see
docs/report.md), the report logged to MLflow as the artifact report/report.html."""

from __future__ import annotations

from pathlib import Path

from noisyflow import recipes, tracking
from noisyflow.artifacts import (
    load_label_issues,
    metrics_payload,
    save_confusion_csv,
    save_per_class,
)
from noisyflow.config import flatten, to_dict
from noisyflow.io import atomic_outputs, write_json
from noisyflow.lineage import dvc_hash, group_key
from noisyflow.plots import save_confusion_png
from noisyflow.report.build import (
    ReportInputs,
    ReportPaths,
    mlflow_links,
    read_division,
    write_report,
)
from noisyflow.report.curves import read_history_csv
from noisyflow.report.features import net_view
from stages.common import StageContext, entrypoint, parser, stage
from stages.logging import read_prepared

# Everything the report shows (data, method, parameters) is declared, so DVC reruns the stage
# (and redraws the report) whenever one of them changes.
READS = (
    "seed",
    "data",
    "model",
    "augment",
    "warmup",
    "train",
    "method",
    "correct",
    "losses.${method.loss}",
    "selection.${method.selection}",
    "ssl.${method.ssl}",
    "mixing.${method.mixup}",
    "correction.${method.correction}",
)
PATHS = {
    "prepared": "data/prepared",
    "model": "models/final.pt",
    "issues": "outputs/label_issues.csv",
    "warmup_division": "outputs/codivide/division.npz",
    "train_division": "outputs/train/division.npz",
    "warmup_history": "plots/warmup.csv",
    "train_history": "plots/train.csv",
    "correct_history": "plots/correct.csv",
    "metrics": "metrics.json",
    "confusion": "plots/confusion.csv",
    "confusion_png": "plots/confusion.png",
    "per_class": "outputs/per_class_accuracy.csv",
    # the report (ReportPaths, in its field order)
    "report": "outputs/report.html",
    "data_issues": "outputs/data_issues.csv",
    "curves": "plots/curves.csv",
    "curves_png": "plots/curves.png",
    "gmm_warmup": "plots/gmm_warmup.csv",
    "gmm_train": "plots/gmm_train.csv",
    "gmm_png": "plots/gmm.png",
    "transition_png": "plots/transition.png",
    "gallery": "plots/label_issues_gallery.png",
    "duplicates_png": "plots/near_duplicates.png",
    "outliers_png": "plots/outliers.png",
}
REPORT_KEYS = tuple(ReportPaths.__dataclass_fields__)
REPORT_ARTIFACT = "report"  # MLflow artifact folder of the evaluate run: report/report.html


def _mlflow(ctx: StageContext) -> dict | None:
    run_id = getattr(ctx.run, "run_id", None)
    if not run_id:
        return None
    experiment = ctx.params.tracking.experiment
    experiment_id = None
    try:  # only for the link: a store that does not answer costs the report its link
        found = tracking.find_group_run(group_key(), experiment=experiment)
        experiment_id = found["experiment_id"] if found else None
    except Exception as exc:
        ctx.warnings.append(f"MLflow link not resolved: {exc}")
    return mlflow_links(
        run_id=run_id,
        parent_id=ctx.run.parent_id,
        tracking_uri=tracking.tracking_uri(),
        experiment_name=experiment,
        experiment_id=experiment_id,
    )


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("evaluate", PATHS).parse_args(argv)
    with stage("evaluate", args.params, READS) as ctx:
        prepared = read_prepared(ctx, args.prepared)
        _, _, nets = ctx.load_nets(args.model, prepared)
        issues = load_label_issues(args.issues, prepared)
        result = recipes.evaluate(prepared, nets, issues, ctx.runtime, tta=ctx.params.model.tta)
        metrics_out = metrics_payload(result.metrics)
        n, notes = len(prepared.labels), []
        tree = flatten(to_dict(ctx.params.params))
        inputs = ReportInputs(
            prepared=prepared,
            correction=issues,
            metrics=metrics_out,
            per_class=result.per_class,
            view=net_view(nets, prepared.train.x, prepared.labels, ctx.runtime),
            params={k: v for k, v in tree.items() if _declared(k, ctx.reads)},
            divisions={
                "warmup": read_division(args.warmup_division, n, "end-of-warm-up", notes),
                "train": read_division(args.train_division, n, "end-of-training", notes),
            },
            histories={
                "warmup": read_history_csv(args.warmup_history),
                "train": read_history_csv(args.train_history),
                "correct": read_history_csv(args.correct_history),
            },
            mlflow=_mlflow(ctx),
            files={k: str(getattr(args, k)) for k in ("metrics", "issues", *REPORT_KEYS)},
            notes=notes,
        )
        for note in notes:
            print(f"evaluate: warning: {note}")
        base = (args.metrics, args.confusion, args.confusion_png, args.per_class)
        report = tuple(getattr(args, k) for k in REPORT_KEYS)
        with atomic_outputs(*base, *report) as written:
            metrics, confusion, confusion_png, per_class, *report_tmp = written
            write_json(metrics, metrics_out)
            save_confusion_csv(confusion, prepared.y_test, result.predictions)
            save_confusion_png(confusion_png, result.confusion, prepared.classes)
            save_per_class(per_class, prepared.classes, result.per_class)
            inputs.confusion_png = confusion_png
            summary = write_report(inputs, ReportPaths(*report_tmp))
        ctx.outputs_written = True
        ctx.log("log_metrics", result.metrics)
        ctx.log("log_outputs", [*base, *report], hash_only=[args.report])
        ctx.log("log_artifact", args.report, artifact_path=REPORT_ARTIFACT)
        ctx.log("set_tags", {"noisyflow.report": f"{REPORT_ARTIFACT}/{Path(args.report).name}"})
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
        print(
            f"evaluate: report {args.report} ({summary.flagged} label issues, "
            f"{summary.near_duplicates} near-duplicate pairs, {summary.outliers} outliers)"
        )


def _declared(key: str, reads: tuple[str, ...]) -> bool:
    return any(key == r or key.startswith(f"{r}.") for r in reads)


if __name__ == "__main__":
    main()
