"""Subcommand registrars for the CLI. Each adds one subparser and sets `handler`.

Keep each command's logic in its own module (pipeline/flows.py, pipeline/compare.py, ...);
this file only wires names to functions, with imports inside the handlers so that
`noisyflow --help` stays fast.
"""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (so `--last 0` is refused, exit 2, with the reason)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def register_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the pipeline as a Prefect flow (each DVC stage a task)")
    p.add_argument(
        "--set-param",
        "-S",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params.yaml key for this run (like dvc exp run -S)",
    )
    p.add_argument("--experiment", "-n", default=None, help="name of the DVC experiment to save")
    p.add_argument("--project-dir", default=".", help="the DVC workspace to run in")
    p.add_argument(
        "--retries",
        type=int,
        default=None,
        help="retries of a stage that failed for a passing reason (default 2)",
    )
    p.add_argument("--retry-delay", type=float, default=None, help="seconds between retries")

    def handler(args: argparse.Namespace) -> int:
        from pipeline.flows import run_pipeline_cli

        return run_pipeline_cli(args)

    p.set_defaults(handler=handler)


def register_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the pipeline flow as a scheduled Prefect deployment")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help='cron schedule, e.g. "0 2 * * *"')
    when.add_argument("--interval", type=float, help="seconds between runs")
    p.add_argument("--name", default="noisyflow", help="deployment name")
    p.add_argument("--project-dir", default=".", help="the DVC workspace the runs use")
    p.add_argument(
        "--set-param", "-S", action="append", default=[], metavar="KEY=VALUE", help="override"
    )

    def handler(args: argparse.Namespace) -> int:
        from pipeline.flows import serve_cli

        return serve_cli(args)

    p.set_defaults(handler=handler)


def register_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="one DVC experiment per parameter combination, compared")
    p.add_argument(
        "--set",
        action="append",
        required=True,
        metavar="KEY=V1,V2",
        help="values to sweep for one key; several --set give their cartesian product",
    )
    p.add_argument("--project-dir", default=".", help="the DVC workspace the sweep uses")

    def handler(args: argparse.Namespace) -> int:
        from pipeline.flows import sweep_cli

        return sweep_cli(args)

    p.set_defaults(handler=handler)


def register_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare pipeline runs recorded in MLflow (one row each)")
    p.add_argument("--experiment", default="noisyflow", help="MLflow experiment name")
    p.add_argument(
        "--last", type=positive_int, default=10, metavar="N", help="newest N pipeline runs"
    )
    p.add_argument(
        "--html",
        metavar="PATH",
        default=None,
        help="also write a self-contained page of the runs side by side (metrics and curves)",
    )

    def handler(args: argparse.Namespace) -> int:
        from pipeline.compare import compare_cli

        return compare_cli(args)

    p.set_defaults(handler=handler)


def register_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classes and probabilities for new images")
    p.add_argument("paths", nargs="*", help="image files")
    p.add_argument("--folder", help="every image under this folder (recursively)")
    p.add_argument(
        "--model",
        default="models/final.pt",
        help="a checkpoint (default: the latest run's models/final.pt) or an MLflow model URI "
        "such as models:/noisyflow-ensemble@champion",
    )
    p.add_argument("--out", help="CSV to write (default: standard output)")
    p.add_argument("--batch-size", type=int, default=256)

    def handler(args: argparse.Namespace) -> int:
        from pipeline.predict import predict_cli

        return predict_cli(args)

    p.set_defaults(handler=handler)


def register_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write the corrected labels in the format your data came in")
    p.add_argument(
        "--format",
        choices=("csv", "imagefolder"),
        default=None,
        help="default: csv for CSV/array sources, imagefolder for image folders",
    )
    p.add_argument("--out", default="outputs/export", help="output folder")
    p.add_argument("--only-issues", action="store_true", help="only rows flagged as label issues")
    p.add_argument(
        "--link-copy",
        action="store_true",
        help="imagefolder: also build a relabelled copy of the folder from hard links",
    )
    p.add_argument("--prepared", default="data/prepared", help="the prepared data folder")
    p.add_argument("--issues", default="outputs/label_issues.csv", help="the label-issue table")

    def handler(args: argparse.Namespace) -> int:
        from pipeline.export import export_cli

        return export_cli(args)

    p.set_defaults(handler=handler)


def register_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="AutoML: search methods and hyperparameters (Optuna; noisy validation accuracy)",
        description="Search the method toolbox with Optuna (TPE + pruning), scored by accuracy "
        "on a held-out noisy validation split; resumable, tracked in MLflow, parallel workers. "
        "See docs/search.md.",
    )
    a = p.add_argument
    a(
        "--trials",
        type=int,
        default=None,
        metavar="N",
        help="the study's target number of finished trials",
    )
    a(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="start no trial after S seconds (running ones finish)",
    )
    a(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="parallel worker processes (a Prefect flow when N > 1)",
    )
    a(
        "--storage",
        default=None,
        metavar="URL",
        help="Optuna storage: sqlite:///file.db, postgresql://..., or a journal file path (default: sqlite:///<workdir>/search.db)",
    )
    a(
        "--space",
        default="params/search_space.yaml",
        metavar="FILE",
        help="search space YAML (default params/search_space.yaml)",
    )
    a(
        "--study",
        default=None,
        metavar="NAME",
        help="study name (default: noisyflow-<hash of params and space>)",
    )
    a("--params", default="params.yaml", metavar="FILE", help="base params (default params.yaml)")
    a(
        "--set-param",
        "-S",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a fixed override for every trial (like dvc exp run -S)",
    )
    a(
        "--pruner",
        choices=("median", "hyperband", "none"),
        default="median",
        help="stop unpromising trials early on the per-epoch objective",
    )
    a(
        "--truth",
        choices=("auto", "off"),
        default="auto",
        help="auto: log the true test accuracy when the test split's truth is known",
    )
    a("--seed", type=int, default=None, help="sampler seed (reproducible sampling with one worker)")
    a(
        "--startup-trials",
        type=int,
        default=None,
        metavar="N",
        help="random trials before TPE (default: trials/3, within 3..10)",
    )
    a("--workdir", default=None, help="state folder (default <project>/.noisyflow/search)")
    a(
        "--out",
        default=None,
        metavar="DIR",
        help="where best_overrides.yaml / best_params.yaml go (default outputs/search/<study>)",
    )
    a(
        "--apply",
        action="store_true",
        help="write the study's best trial into params.yaml (comments kept) and exit",
    )

    def handler(args: argparse.Namespace) -> int:
        from pipeline.search import search_cli

        return search_cli(args)

    p.set_defaults(handler=handler)


def register_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="where the latest run report is (--open: open it); --class NAME: one class's "
        "label-issue gallery",
    )
    p.add_argument("--open", action="store_true", help="open it in a web browser")
    p.add_argument(
        "--class",
        dest="class_name",
        metavar="NAME",
        default=None,
        help="draw the label-issue gallery of the training images labelled NAME",
    )
    p.add_argument("--top", type=int, default=24, metavar="K", help="images in a --class gallery")
    p.add_argument(
        "--out",
        default=None,
        help="--class: the PNG to write (default plots/label_issues_gallery_<NAME>.png)",
    )
    p.add_argument("--project-dir", default=".", help="the DVC workspace of the run")

    def handler(args: argparse.Namespace) -> int:
        from pipeline.report import report_cli

        return report_cli(args)

    p.set_defaults(handler=handler)


def register_preset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preset", help="show or apply a params preset (params/<name>.yaml)")
    p.add_argument("name", help="fast | reference")
    p.add_argument("--apply", action="store_true", help="write it into params.yaml")
    p.add_argument("--params", default="params.yaml", help="the params file to apply it to")

    def handler(args: argparse.Namespace) -> int:
        from pathlib import Path

        from noisyflow.config import load_params
        from noisyflow.config.presets import preset_overrides, with_preset
        from pipeline.workspace import apply_overrides

        overrides = preset_overrides(args.name)
        with_preset(load_params(args.params), args.name)  # validate before writing anything
        if not args.apply:
            print("\n".join(f"{k}={v}" for k, v in overrides.items()))
            return 0
        apply_overrides(Path(args.params).resolve().parent, overrides)
        print(f"preset {args.name}: {len(overrides)} keys written to {args.params}")
        return 0

    p.set_defaults(handler=handler)


REGISTRARS = [
    register_run,
    register_serve,
    register_sweep,
    register_compare,
    register_predict,
    register_export,
    register_search,
    register_report,
    register_preset,
]
