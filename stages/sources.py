"""DVC stage `sources` (always runs, in well under a second): a fingerprint of every input file
params.yaml names (the data file or folder, every image a CSV lists, test_path, labels_path).

`prepare` depends on the fingerprint file, so editing, adding or removing a user's file makes
`dvc repro` rerun `prepare` — DVC cannot template a dependency from a path that may be null.
"""

from __future__ import annotations

from noisyflow.data.fingerprint import fingerprint
from noisyflow.io import atomic_outputs, write_json
from noisyflow.locking import check_stage_may_run
from noisyflow.tracking import project_root
from stages.common import entrypoint, parser

READS = ("data",)
PATHS = {"out": "data/sources.json"}


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("sources", PATHS).parse_args(argv)
    from noisyflow.config import load_params

    check_stage_may_run(project_root(), "sources")
    params = load_params(args.params)
    listing = fingerprint(params.data, project_root())
    with atomic_outputs(args.out) as (out,):
        write_json(out, listing)


if __name__ == "__main__":
    main()
