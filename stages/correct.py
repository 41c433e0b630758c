"""DVC stage `correct`: prototype-based label correction combined with the networks'
prediction and clean probability; writes label_issues.csv (cleanlab's columns)."""

from __future__ import annotations

from noisyflow import recipes
from noisyflow.artifacts import load_division, save_label_issues
from noisyflow.io import atomic_outputs, write_json
from stages.common import entrypoint, parser, read_nets, read_prepared, stage

PATHS = {
    "prepared": "data/prepared",
    "model": "models/train.pt",
    "division": "outputs/train/clean_probs.npz",
    "out": "outputs/label_issues.csv",
    "metrics": "metrics/correct.json",
}


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("correct", PATHS).parse_args(argv)
    with stage("correct", args.params, ("seed", "method", "codivide", "correct")) as ctx:
        prepared = read_prepared(ctx, args.prepared)
        nets = read_nets(ctx, args.model)
        division = load_division(args.division, len(prepared.labels))
        result = recipes.correct(
            ctx.params.correct,
            prepared,
            nets,
            division,
            ctx.params.codivide.p_threshold,
            use_prototypes=ctx.params.method.correction == "prototype",
            seed=ctx.params.seed,
            device=ctx.device,
        )
        metrics = {
            "num_label_issues": int(result.is_label_issue.sum()),
            "label_issue_fraction": float(result.is_label_issue.mean()),
        }
        with atomic_outputs(args.out, args.metrics) as (out, metrics_path):
            save_label_issues(out, prepared.labels, result)
            write_json(metrics_path, metrics)
        ctx.run.log_metrics(metrics)
        ctx.run.log_outputs([args.out, args.metrics])
        print(f"correct: {metrics['num_label_issues']} label issues -> {args.out}")


if __name__ == "__main__":
    main()
