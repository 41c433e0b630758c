"""The run report page: every section, in reading order, from a `ReportData`.

Numbers come straight from metrics.json (so the page and `dvc metrics show` agree); figures are
the PNGs `evaluate` wrote, embedded; each section says in one box how to read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noisyflow.report.html import esc, how, image, number, page, table

METRIC_HELP = {
    "test_accuracy": "accuracy of the networks' ensemble on the test set",
    "test_accuracy_net1": "network 1 alone on the test set",
    "test_accuracy_net2": "network 2 alone on the test set",
    "val_accuracy": "ensemble accuracy on the validation split, against its (noisy) labels",
    "detection_precision": "of the labels flagged as wrong, the share that really are wrong",
    "detection_recall": "of the really wrong labels, the share that was flagged",
    "detection_f1": "harmonic mean of detection precision and recall",
    "detection_auroc": "how well the label quality ranks wrong labels below right ones "
    "(0.5 = chance, 1 = perfect)",
    "correction_accuracy": "share of training labels that are right after the correction",
    "given_label_accuracy": "share of the given training labels that were right "
    "(1 - the true noise rate)",
    "estimated_noise_rate": "share of training labels flagged as issues",
    "num_label_issues": "training labels flagged as likely wrong",
    "num_corrected": "training labels the correction changed",
    "truth_known_fraction": "share of training images whose true label is known "
    "(detection and correction are scored on those only)",
}
ORDER = tuple(METRIC_HELP)
FILE_LABELS = {
    "report": "this report",
    "metrics": "metrics (JSON)",
    "issues": "every training label with its quality and suggestion (CSV)",
    "data_issues": "near-duplicates and outliers (CSV)",
    "gallery": "label-issue gallery",
    "curves": "per-epoch curves of all phases (CSV, dvc plots)",
    "curves_png": "training curves",
    "gmm_warmup": "loss / clean-probability histograms, end of warm-up (CSV, dvc plots)",
    "gmm_train": "loss / clean-probability histograms, end of training (CSV, dvc plots)",
    "gmm_png": "the mixture picture",
    "transition_png": "noise transition",
    "duplicates_png": "near-duplicate pairs",
    "outliers_png": "outliers",
}
SECTIONS = (
    ("summary", "Summary"),
    ("metrics", "Metrics"),
    ("data", "Data and noise"),
    ("method", "Method and parameters"),
    ("curves", "Training curves"),
    ("gmm", "Clean / noisy split"),
    ("issues", "Label issues"),
    ("transition", "Noise transition"),
    ("confusion", "Test confusion"),
    ("data-issues", "Duplicates and outliers"),
    ("run", "Run and files"),
)


@dataclass
class ReportData:
    """Everything the page shows; built by `report.build` from a finished run."""

    metrics: dict[str, Any]
    meta: dict[str, Any]
    params: dict[str, Any]  # the flattened params `evaluate` declares
    figures: dict[str, Path | None]  # curves, gmm, gallery, transition, confusion, ...
    issues: list[dict[str, Any]]  # top label issues: rank, index, path, given, suggested, ...
    num_flagged: int
    data_issues: list[dict[str, Any]]  # rows of outputs/data_issues.csv (first ones)
    num_duplicates: int
    num_outliers: int
    per_class: list[dict[str, Any]]  # class, train, flagged, test_accuracy
    mlflow: dict[str, Any] | None = None  # run_id, parent_id, experiment_id, tracking_uri, url
    files: dict[str, str] = field(default_factory=dict)
    subtitle: str = ""  # the data set in one line
    notes: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def _noise_text(meta: dict[str, Any]) -> str:
    noise = meta.get("noise") or {}
    kind = noise.get("type") or "none"
    if kind == "none":
        return "the labels as given (no synthetic noise)"
    rate = noise.get("realised_rate", noise.get("rate"))
    return f"{kind} synthetic label noise ({_pct(rate)} of training labels replaced)"


def summary(d: ReportData) -> str:
    m, meta, p = d.metrics, d.meta, d.params
    counts = meta.get("counts", {})
    source = (meta.get("source") or {}).get("type") or (meta.get("source") or {}).get("source")
    nets = p.get("method.networks", "?")
    text = (
        f"This run trained {nets} network(s) (<code>{esc(p.get('model.arch', '?'))}</code>) on "
        f"{counts.get('train', '?')} training images of {len(meta.get('classes', []))} classes "
        f"from <code>{esc(source or 'data')}</code>, with {esc(_noise_text(meta))}. "
        f"It flagged <b>{number(m.get('num_label_issues'))}</b> training labels as likely wrong "
        f"({_pct(m.get('estimated_noise_rate'))}) and changed "
        f"<b>{number(m.get('num_corrected'))}</b> of them; the test accuracy is "
        f"<b>{_pct(m.get('test_accuracy'))}</b>."
    )
    if m.get("given_label_accuracy") is not None:
        text += (
            f" The true labels are known for {_pct(m.get('truth_known_fraction'))} of the training"
            f" images: {_pct(m.get('given_label_accuracy'))} of the given labels were right, "
            f"{_pct(m.get('correction_accuracy'))} are right after the correction, and the "
            f"flags found wrong labels with F1 {number(m.get('detection_f1'), 3)}."
        )
    else:
        text += " No true labels are known, so detection and correction are not scored."
    cards = [
        ("test accuracy", _pct(m.get("test_accuracy"))),
        ("labels flagged", number(m.get("num_label_issues"))),
        ("labels changed", number(m.get("num_corrected"))),
        ("estimated noise", _pct(m.get("estimated_noise_rate"))),
    ]
    if m.get("given_label_accuracy") is not None:
        cards.append(("true noise", _pct(1 - float(m["given_label_accuracy"]))))
    if m.get("detection_f1") is not None:
        cards.append(("detection F1", number(m.get("detection_f1"), 3)))
    cards += [("near-duplicate pairs", str(d.num_duplicates)), ("outliers", str(d.num_outliers))]
    html_cards = "".join(
        f'<div class="card"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>'
        for k, v in cards
    )
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in [*cautions(d), *d.notes])
    return f'<p>{text}</p><div class="cards">{html_cards}</div>{notes}'


def cautions(d: ReportData) -> list[str]:
    """Plain warnings when the numbers say the flags should not be trusted yet."""
    m, k = d.metrics, max(len(d.meta.get("classes", [])), 2)
    out = []
    acc = m.get("test_accuracy")
    if acc is not None and acc < min(0.9, 2.0 / k):
        out.append(
            f"Caution: the test accuracy ({_pct(acc)}) is close to chance ({_pct(1 / k)} for "
            f"{k} classes): the networks have learned little, so the label flags below are not "
            "reliable yet. Train longer (warmup.epochs, train.epochs) or check the data."
        )
    rate = m.get("estimated_noise_rate")
    if rate is not None and rate > 0.5:
        out.append(
            f"Caution: {_pct(rate)} of the labels are flagged. When most labels look wrong, the "
            "networks usually do not fit the data yet, rather than the data being mostly wrong."
        )
    return out


def metric_value(key: str, value: Any) -> str:
    """As metrics.json holds it: counts (num_*) as integers, scores with its 6 decimals."""
    if value is None:
        return "–"
    if key.startswith("num_"):
        return str(int(value))
    return f"{float(value):.6f}"


def metrics_table(metrics: dict[str, Any]) -> str:
    keys = [k for k in ORDER if k in metrics] + sorted(k for k in metrics if k not in ORDER)
    rows = [(k, metric_value(k, metrics[k]), METRIC_HELP.get(k, "")) for k in keys]
    return table(
        ["metric", "value", "meaning"], rows, numeric=[1], cls="metrics", id="metrics-table"
    )


def data_section(meta: dict[str, Any]) -> str:
    source = meta.get("source") or {}
    noise = meta.get("noise") or {}
    prep = meta.get("preprocessing") or {}
    counts = meta.get("counts") or {}
    classes = [str(c) for c in meta.get("classes", [])]
    shown = ", ".join(classes[:20]) + (f", … ({len(classes)} in all)" if len(classes) > 20 else "")
    rows = [
        ("source", source.get("type") or source.get("source") or "–"),
        ("path", source.get("path") or "(built in)"),
        (
            "images (train / val / test)",
            " / ".join(str(counts.get(s, 0)) for s in ("train", "val", "test")),
        ),
        ("classes", shown),
        ("image size", " x ".join(str(s) for s in meta.get("image_shape", [])) or "–"),
        ("preprocessing", ", ".join(f"{k}={v}" for k, v in prep.items()) or "–"),
        ("noise", f"{noise.get('type', 'none')}, rate {noise.get('rate', '–')}"),
        ("realised noise rate", number(noise.get("realised_rate"))),
        ("true labels known", f"{meta.get('truth', '–')}: {meta.get('truth_note', '')}"),
    ]
    return table(None, rows, cls="kv")


def params_section(params: dict[str, Any]) -> str:
    chosen = [(k, params[k]) for k in sorted(params) if k.startswith("method.")]
    rest = [(k, params[k]) for k in sorted(params) if not k.startswith("method.")]
    intro = (
        "<p>The parameters this stage declares in <code>dvc.yaml</code> (so DVC reruns it when "
        "one changes). The chosen methods:</p>" + table(["key", "value"], chosen)
    )
    return (
        intro
        + '<h3>All parameters</h3><div class="scroll">'
        + table(["key", "value"], rest)
        + "</div>"
    )


def issues_table(issues: list[dict[str, Any]], truth: bool, paths: bool) -> str:
    header = ["#", "source row", "given", "suggested", "changed", "label quality"]
    if paths:
        header.insert(2, "file")
    if truth:
        header.append("true")
    rows, classes = [], []
    for r in issues:
        row = [
            r["rank"],
            r["index"],
            r["given"],
            r["suggested"],
            "yes" if r["changed"] else "no",
            f"{r['quality']:.4f}",
        ]
        if paths:
            row.insert(2, r["path"] or "–")
        if truth:
            row.append(r.get("true") or "–")
        rows.append(row)
        classes.append("bad" if truth and r.get("true") not in (None, r["given"]) else "")
    quality = header.index("label quality")
    return (
        '<div class="scroll">'
        + table(header, rows, numeric=[0, 1, quality], row_classes=classes)
        + "</div>"
    )


def duplicates_table(rows: list[dict[str, Any]], paths: bool) -> str:
    header = ["source row", "given", "partner row", "partner given", "cosine distance"]
    if paths:
        header[1:1] = ["file"]
        header[4:4] = ["partner file"]
    body = []
    for r in rows:
        cells = [
            r["index"],
            r["given_class"],
            r["partner_index"],
            r["partner_given_class"],
            r["distance"],
        ]
        if paths:
            cells[1:1] = [r["path"]]
            cells[4:4] = [r["partner_path"]]
        body.append(cells)
    numeric = [header.index(h) for h in ("source row", "partner row", "cosine distance")]
    return '<div class="scroll">' + table(header, body, numeric=numeric) + "</div>"


def outliers_table(rows: list[dict[str, Any]], paths: bool) -> str:
    header = ["source row", "given", "nearest class", "cosine distance to its prototype"]
    if paths:
        header[1:1] = ["file"]
    body = []
    for r in rows:
        cells = [r["index"], r["given_class"], r["nearest_class"], r["distance"]]
        if paths:
            cells[1:1] = [r["path"]]
        body.append(cells)
    return '<div class="scroll">' + table(header, body, numeric=[0, len(header) - 1]) + "</div>"


def per_class_table(rows: list[dict[str, Any]]) -> str:
    body = [
        [
            r["class"],
            r["train"],
            r["flagged"],
            "–" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}",
        ]
        for r in rows
    ]
    return table(
        ["class", "training images given this label", "flagged as issues", "test accuracy"],
        body,
        numeric=[1, 2, 3],
    )


def run_section(d: ReportData) -> str:
    run = d.mlflow
    if not run:
        text = (
            "<p>No MLflow run: tracking was off (<code>tracking.enabled: false</code>) or the "
            "tracking store could not be reached.</p>"
        )
    else:
        rows = [
            ("pipeline (parent) run", f"<code>{esc(run.get('parent_id') or '–')}</code>"),
            ("evaluate run", f"<code>{esc(run.get('run_id') or '–')}</code>"),
            ("experiment", esc(run.get("experiment_name") or run.get("experiment_id") or "–")),
            ("tracking store", f"<code>{esc(run.get('tracking_uri') or '–')}</code>"),
            (
                "this report in MLflow",
                "artifact <code>report/report.html</code> of the evaluate run",
            ),
        ]
        url = run.get("url")
        if url:
            rows.insert(0, ("open in the MLflow UI", f'<a href="{esc(url)}">{esc(url)}</a>'))
        hint = run.get("ui_hint")
        if hint:
            rows.append(("local store", hint))
        text = table(None, rows, raw=[1], cls="kv")
    files = table(
        ["what", "path"],
        [(FILE_LABELS.get(k, k), v) for k, v in sorted(d.files.items(), key=_file_order)],
    )
    return text + "<h3>Files of this run</h3>" + files


def _data_issues(d: ReportData, paths: bool) -> str:
    dups = [r for r in d.data_issues if r["kind"] == "near_duplicate"]
    far = [r for r in d.data_issues if r["kind"] == "outlier"]
    out = f"<h3>Near-duplicates with different labels ({d.num_duplicates})</h3>"
    if d.num_duplicates:
        out += image(d.figures.get("duplicates"), "near-duplicate pairs")
        out += duplicates_table(dups, paths)
    else:
        out += "<p>None found.</p>"
    out += f"<h3>Outliers ({d.num_outliers})</h3>"
    if d.num_outliers:
        out += image(d.figures.get("outliers"), "outliers") + outliers_table(far, paths)
    else:
        out += "<p>None found.</p>"
    return out


def _file_order(item: tuple[str, str]) -> int:
    keys = list(FILE_LABELS)
    return keys.index(item[0]) if item[0] in keys else len(keys)


def render(d: ReportData) -> str:
    """The complete HTML document."""
    truth = any(r.get("true") is not None for r in d.issues) or (
        d.metrics.get("given_label_accuracy") is not None
    )
    paths = bool((d.meta.get("source") or {}).get("has_paths"))
    nav = " ".join(f'<a href="#{k}">{esc(t)}</a>' for k, t in SECTIONS)
    fig = d.figures
    parts = [
        "<header><h1>noisyflow run report</h1>"
        f'<p class="sub">{esc(d.subtitle)}'
        + (f" · MLflow run <code>{esc(d.mlflow['parent_id'])}</code>" if d.mlflow else "")
        + f"</p><nav>{nav}</nav></header>",
        f'<section id="summary"><h2>Summary</h2>{summary(d)}</section>',
        '<section id="metrics"><h2>Metrics</h2>'
        "<p>From <code>metrics.json</code> (<code>dvc metrics show</code> prints the same "
        "numbers).</p>" + metrics_table(d.metrics) + "</section>",
        f'<section id="data"><h2>Data and noise</h2>{data_section(d.meta)}</section>',
        f'<section id="method"><h2>Method and parameters</h2>{params_section(d.params)}</section>',
        '<section id="curves"><h2>Training curves</h2>'
        + how(
            "One x axis for the whole run: the warm-up epochs (orange band), the training "
            "epochs, then the correction rounds (green band). <i>Training loss</i>: each "
            "network's loss (dashed: the labelled part, dotted: the unlabelled part). "
            "<i>Test accuracy</i>: the ensemble per epoch; the markers at the end are the final "
            "networks. <i>Fraction judged clean</i>: the share of training labels each "
            "network's split kept as clean, and the estimated noise rate beside the true one "
            "when known. <i>Detection</i>: how well the split finds the wrong labels, when the "
            "truth is known."
        )
        + image(fig.get("curves"), "training curves")
        + "</section>",
        '<section id="gmm"><h2>Clean / noisy split (the two-component mixture)</h2>'
        + how(
            "Each network's per-sample training loss, at the end of warm-up (the split that "
            "starts training) and at the end of training. Labels that are wrong are hard to "
            "fit, so their loss is high. The green and red curves are the two Gaussian "
            "components the split fitted (the same fit that split the data, not a redrawing); "
            "the dashed line is where a sample's probability of being clean falls to the "
            "threshold: samples to its right are treated as noisy (their labels unused). "
            "Bars are coloured by the truth when it is known: a good split puts the red bars "
            "right of the line."
        )
        + image(fig.get("gmm"), "loss histograms with the fitted mixture")
        + "</section>",
        '<section id="issues"><h2>Label issues</h2>'
        + how(
            "The training images most likely mislabelled, lowest label quality first. "
            "<i>given</i> is the label in your data, <i>suggested</i> the class the model "
            "proposes (* = not applied: the evidence was not strong enough to change the "
            "label), <i>quality</i> the given label's share of the evidence. When the truth is "
            "known a red frame means the given label really is wrong. All rows are in "
            "<code>outputs/label_issues.csv</code>; <code>noisyflow report --class NAME</code> "
            "draws the same gallery for one class."
        )
        + image(fig.get("gallery"), "label-issue gallery")
        + f"<h3>Top {len(d.issues)} of {d.num_flagged} flagged labels</h3>"
        + (
            "<p>Red rows: the given label is wrong according to the true labels.</p>"
            if truth and d.issues
            else ""
        )
        + (issues_table(d.issues, truth, paths) if d.issues else "<p>No label was flagged.</p>")
        + "</section>",
        '<section id="transition"><h2>Noise transition</h2>'
        + how(
            "Rows: a class; columns: the label it was given; each cell the share of that row "
            "(%). A strong diagonal means most labels are right. Off-diagonal mass spread "
            "evenly looks like symmetric noise; one bright cell per row looks like pairwise "
            "(class-to-class) noise. The left matrix is estimated from the suggested labels; "
            "the right one, when known, is how the noise was really made."
        )
        + image(fig.get("transition"), "noise transition matrices")
        + "</section>",
        '<section id="confusion"><h2>Test confusion and per-class accuracy</h2>'
        + how("Rows: the test image's label; columns: the ensemble's prediction.")
        + '<div class="cols">'
        + image(fig.get("confusion"), "test confusion matrix")
        + per_class_table(d.per_class)
        + "</div></section>",
        '<section id="data-issues"><h2>Beyond label errors: near-duplicates and outliers</h2>'
        + how(
            "Found from the final networks' features with a nearest-neighbour index. "
            "<i>Near-duplicates</i>: two training images closer than "
            f"{number(d.thresholds.get('duplicate_factor'), 2)} x the typical nearest-neighbour"
            " distance but with different labels: one label is probably wrong, or the image is "
            "in the data twice. <i>Outliers</i>: images far from every class prototype (robust "
            f"z-score above {number(d.thresholds.get('outlier_z'), 1)}): unusual, ambiguous "
            "or not from any class. Distances are cosine distances. All rows are in "
            "<code>outputs/data_issues.csv</code>."
        )
        + _data_issues(d, paths)
        + "</section>",
        f'<section id="run"><h2>Run and files</h2>{run_section(d)}</section>',
        "<footer>Written by the <code>evaluate</code> stage of noisyflow. Self-contained: the "
        "images are embedded, nothing is loaded from the network.</footer>",
    ]
    meta = {}
    if d.mlflow:
        meta = {
            "noisyflow:mlflow-run-id": d.mlflow.get("run_id") or "",
            "noisyflow:mlflow-parent-run-id": d.mlflow.get("parent_id") or "",
            "noisyflow:mlflow-tracking-uri": d.mlflow.get("tracking_uri") or "",
            "noisyflow:mlflow-url": d.mlflow.get("url") or "",
        }
    meta["noisyflow:data"] = d.subtitle
    return page("noisyflow run report", "".join(parts), meta=meta)
