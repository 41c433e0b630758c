"""DVC stage `codivide`: per-sample loss of each warmed-up network, a 2-component GMM each,
clean probabilities and the split (each network's split later trains the other)."""

from __future__ import annotations

from noisyflow import recipes
from noisyflow.artifacts import save_division
from noisyflow.io import atomic_outputs, write_json
from noisyflow.plots import save_clean_prob_histogram
from stages.common import entrypoint, parser, read_nets, read_prepared, stage

PATHS = {
    "prepared": "data/prepared",
    "model": "models/warmup.pt",
    "out": "outputs/codivide/clean_probs.npz",
    "metrics": "metrics/codivide.json",
    "plot": "plots/clean_prob_hist.png",
}


@entrypoint
def main(argv: list[str] | None = None) -> None:
    args = parser("codivide", PATHS).parse_args(argv)
    with stage("codivide", args.params, ("seed", "codivide")) as ctx:
        prepared = read_prepared(ctx, args.prepared)
        nets = read_nets(ctx, args.model)
        cd = ctx.params.codivide
        division = recipes.divide(nets, prepared, cd, ctx.params.seed, ctx.device)
        metrics = recipes.division_metrics(division, cd.p_threshold, prepared.noise_mask)
        with atomic_outputs(args.out, args.metrics, args.plot) as (out, metrics_path, plot):
            save_division(out, division)
            write_json(metrics_path, metrics)
            save_clean_prob_histogram(plot, division, prepared.noise_mask, cd)
        ctx.run.log_metrics(metrics)
        ctx.run.log_outputs([args.out, args.metrics, args.plot])
        print(f"codivide: estimated noise rate {metrics['estimated_noise_rate']:.3f} -> {args.out}")


if __name__ == "__main__":
    main()
