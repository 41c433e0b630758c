"""The `noisyflow` console script. Subcommands register themselves in COMMANDS.

noisyflow run       run the pipeline as a Prefect flow (DVC stages as tasks)
noisyflow serve     serve the flow as a scheduled Prefect deployment
noisyflow compare   compare pipeline runs recorded in MLflow
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="noisyflow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)
    from pipeline import commands

    for register in commands.REGISTRARS:
        register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from noisyflow.errors import NoisyflowError

    try:
        return int(args.handler(args) or 0)
    except NoisyflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
