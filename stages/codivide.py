"""DVC stage `codivide`: the selection method's first division of the training set by the
warmed-up networks (DivideMix: per-network GMM on per-sample losses)."""

from __future__ import annotations

from noisyflow import recipes
from noisyflow.artifacts import save_division
from noisyflow.io import atomic_outputs, write_json
from noisyflow.plots import save_clean_prob_histogram
from stages.common import entrypoint, parser, stage
from stages.logging import read_prepared

READS = ("seed", "model", "method.networks", "method.selection", "selection.${method.selection}")
PATHS = {
    "prepared": "data/prepared",
    "model": "models/warmup.pt",
    "out": "outputs/codivide/division.npz",
    "metrics": "metrics/codivide.json",
    "plot": "plots/codivide_gmm.png",
}


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("codivide", PATHS).parse_args(argv)
    with stage("codivide", args.params, READS) as ctx:
        prepared = read_prepared(ctx, args.prepared)
        payload, _, nets = ctx.load_nets(args.model, prepared)
        stats = {k: v.to(ctx.runtime.device) for k, v in payload.get("stats", {}).items()}
        division = recipes.divide(ctx.params, prepared, nets, ctx.runtime, stats=stats)
        known = prepared.train.truth_known
        metrics = recipes.division_metrics(division, prepared.noise_mask, known)
        with atomic_outputs(args.out, args.metrics, args.plot) as (out, metrics_path, plot):
            save_division(out, division)
            write_json(metrics_path, metrics)
            save_clean_prob_histogram(plot, division, prepared.noise_mask, known)
        ctx.outputs_written = True
        ctx.log("log_metrics", metrics)
        ctx.log("log_outputs", [args.out, args.metrics, args.plot])
        print(f"codivide: estimated noise rate {metrics['estimated_noise_rate']:.3f} -> {args.out}")


if __name__ == "__main__":
    main()
