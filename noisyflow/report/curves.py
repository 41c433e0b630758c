"""Per-epoch curves of the whole run on one axis: warm-up, then training, then the correction
rounds, with the final evaluation as the last point.

`plots/curves.csv` always has the same columns (empty cells where a value does not exist: a
one-network run, unknown truth, a phase that does not measure it), so the plots dvc.yaml
declares on it render for every configuration; the PNG is the report's version.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from noisyflow.report.figure import CLEAN, NOISY, pyplot, save

PHASES = ("warmup", "train", "correct")
COLUMNS = (
    "step",
    "phase",
    "epoch",
    "loss_net1",
    "loss_net2",
    "loss_x_net1",
    "loss_x_net2",
    "loss_u_net1",
    "loss_u_net2",
    "test_accuracy",
    "test_accuracy_net1",
    "test_accuracy_net2",
    "val_accuracy",
    "labelled_frac_net1",
    "labelled_frac_net2",
    "estimated_noise_rate",
    "detection_precision",
    "detection_recall",
    "detection_f1",
    "detection_auroc",
)
FINAL = ("test_accuracy", "test_accuracy_net1", "test_accuracy_net2", "val_accuracy")
PHASE_SHADE = {"warmup": "#fff3e0", "train": "#ffffff", "correct": "#e8f5e9"}


def read_history_csv(path: str | Path) -> list[dict[str, float]]:
    """A stage's per-epoch CSV (plots/<stage>.csv) as rows of floats (empty and non-numeric
    cells left out); [] when absent."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            rows.append({k: x for k, v in row.items() if (x := _number(v)) is not None})
    return rows


def _number(text: str | None) -> float | None:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None  # empty cells, and text columns such as `phase`


def combine(
    histories: dict[str, list[dict[str, float]]], final: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """Rows with COLUMNS: `step` counts epochs over all phases (1 = the first warm-up epoch);
    `final` (metrics.json) adds a row phase=final at the last step with the test accuracies of
    the final networks."""
    rows: list[dict[str, Any]] = []
    step = 0
    for phase in PHASES:
        for hist in histories.get(phase, []):
            step += 1
            row = {c: "" for c in COLUMNS}
            row.update({k: v for k, v in hist.items() if k in COLUMNS})
            row.update(step=step, phase=phase, epoch=int(hist.get("epoch", 0)))
            rows.append(row)
    if final:
        row = {c: "" for c in COLUMNS}
        row.update({k: final[k] for k in FINAL if final.get(k) is not None})
        row.update(step=step, phase="final", epoch="")
        rows.append(row)
    return rows


def save_curves_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _series(rows: list[dict[str, Any]], key: str, phases=None) -> tuple[list, list]:
    pts = [
        (r["step"], float(r[key]))
        for r in rows
        if r.get(key) not in ("", None) and (phases is None or r["phase"] in phases)
    ]
    return [p[0] for p in pts], [p[1] for p in pts]


def _phases(ax, rows: list[dict[str, Any]]) -> None:
    """Shade each phase and name it at the top of the panel."""
    for phase in PHASES:
        steps = [r["step"] for r in rows if r["phase"] == phase]
        if steps:
            lo, hi = min(steps) - 0.5, max(steps) + 0.5
            ax.axvspan(lo, hi, color=PHASE_SHADE[phase], zorder=0)
            ax.text(
                (lo + hi) / 2,
                1.01,
                phase,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7,
                color="#777",
            )


def save_curves_figure(
    path: str | Path, rows: list[dict[str, Any]], true_noise_rate: float | None = None
) -> None:
    """2 x 2 panels: losses, test accuracy, fraction judged clean / noise rate, detection."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    (a_loss, a_acc), (a_clean, a_det) = axes
    for ax in axes.flat:
        _phases(ax, rows)
        ax.set_xlabel("epoch (all phases)")
        ax.grid(alpha=0.25)
    colours = {"net1": "#1565c0", "net2": "#ef6c00"}
    for net, colour in colours.items():
        x, y = _series(rows, f"loss_{net}")
        if x:
            a_loss.plot(x, y, marker=".", color=colour, label=f"network {net[-1]}: total")
        x, y = _series(rows, f"loss_x_{net}")
        if x:
            a_loss.plot(x, y, ls="--", color=colour, lw=1, label=f"network {net[-1]}: labelled")
        x, y = _series(rows, f"loss_u_{net}")
        if x:
            a_loss.plot(x, y, ls=":", color=colour, lw=1, label=f"network {net[-1]}: unlabelled")
    a_loss.set(title="Training loss", ylabel="loss")
    x, y = _series(rows, "test_accuracy", PHASES)
    if x:
        a_acc.plot(x, y, marker=".", color="k", label="ensemble (per epoch)")
    for key, label, marker in (
        ("test_accuracy", "ensemble, final", "*"),
        ("test_accuracy_net1", "network 1, final", "o"),
        ("test_accuracy_net2", "network 2, final", "s"),
    ):
        x, y = _series(rows, key, ("final",))
        if x:
            a_acc.scatter(x, y, marker=marker, s=60 if marker == "*" else 30, label=label, zorder=3)
    for net, colour in colours.items():
        x, y = _series(rows, f"test_accuracy_{net}", PHASES)
        if x:
            a_acc.plot(x, y, color=colour, lw=1, label=f"network {net[-1]} (per epoch)")
    x, y = _series(rows, "val_accuracy", ("train", "correct", "final"))
    if x:
        a_acc.plot(x, y, color="#6a1b9a", lw=1, marker=".", label="validation (noisy labels)")
    a_acc.set(title="Test accuracy", ylabel="accuracy")
    for net, colour in colours.items():
        x, y = _series(rows, f"labelled_frac_{net}")
        if x:
            a_clean.plot(x, y, marker=".", color=colour, label=f"judged clean, network {net[-1]}")
    x, y = _series(rows, "estimated_noise_rate")
    if x:
        a_clean.plot(x, y, marker=".", color=NOISY, label="estimated noise rate")
    if true_noise_rate is not None:
        a_clean.axhline(true_noise_rate, color=NOISY, ls=":", label="true noise rate")
    a_clean.set(title="Fraction judged clean, estimated noise rate", ylabel="fraction")
    a_clean.set_ylim(-0.02, 1.02)
    drew = False
    for key, colour in (("detection_f1", CLEAN), ("detection_auroc", "#455a64")):
        x, y = _series(rows, key)
        if x:
            drew = True
            a_det.plot(
                x, y, marker=".", color=colour, label=key.replace("detection_", "detection ")
            )
    a_det.set(title="Noisy-label detection vs the truth", ylabel="score")
    if not drew:
        a_det.text(
            0.5,
            0.5,
            "true labels unknown:\nnothing to score against",
            ha="center",
            va="center",
            transform=a_det.transAxes,
            color="#666",
        )
    for ax in axes.flat:
        ax.set_title(ax.get_title(), pad=12)  # room for the phase names above the panel
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    save(fig, path)
