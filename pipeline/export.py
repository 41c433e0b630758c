"""`noisyflow export`: the corrected labels in the format the data came in (never editing the
user's files): a CSV of the user's columns plus corrected_label, label_quality and
is_label_issue; for an image folder, a CSV of moves and, with --link-copy, a relabelled copy of
the folder made of hard links."""

from __future__ import annotations

import argparse

from noisyflow.data.export import export_labels
from noisyflow.tracking import project_root


def export_cli(args: argparse.Namespace) -> int:
    result = export_labels(
        args.prepared,
        args.issues,
        args.out,
        fmt=args.format,
        only_issues=args.only_issues,
        link_copy=args.link_copy,
        base=project_root(),
    )
    for path in result.files:
        print(path)
    extra = f", {result.linked} linked + {result.copied} copied files" if args.link_copy else ""
    print(f"export: {result.rows} rows, {result.changed} with a new label{extra}")
    return 0
