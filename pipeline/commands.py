"""Subcommand registrars for the CLI. Each adds one subparser and sets `handler`.

Keep each command's logic in its own module (pipeline/flows.py, pipeline/compare.py, ...);
this file only wires names to functions, with imports inside the handlers so that
`noisyflow --help` stays fast.
"""

from __future__ import annotations

import argparse


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

    def handler(args: argparse.Namespace) -> int:
        from pipeline.flows import run_pipeline_cli

        return run_pipeline_cli(args)

    p.set_defaults(handler=handler)


REGISTRARS = [register_run]
