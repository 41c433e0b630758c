"""HTML building blocks for self-contained pages: escaped text, tables, images embedded as
base64 data URIs, the page shell with inline CSS. No scripts, no external assets."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 0; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 28px 48px; background: #fff; }
header { border-bottom: 1px solid #ddd; margin-bottom: 8px; }
h1 { font-size: 26px; margin: 12px 0 4px; }
h2 { font-size: 20px; margin: 34px 0 8px; padding-top: 6px; border-top: 1px solid #eee; }
h3 { font-size: 16px; margin: 20px 0 6px; }
p.sub, .muted { color: #666; }
nav { font-size: 14px; margin: 8px 0 12px; }
nav a { margin-right: 12px; white-space: nowrap; }
a { color: #1565c0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: 10px 14px; min-width: 150px;
        background: #fafbfc; }
.card .v { font-size: 24px; font-weight: 600; }
.card .k { font-size: 13px; color: #555; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f0f2f5; }
table.kv td:first-child { white-space: nowrap; color: #444; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { background: #fdecea; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 14px; color: #444; max-width: 900px; }
.how { background: #f3f7fd; border-left: 4px solid #90caf9; padding: 6px 12px; margin: 6px 0 10px;
       font-size: 14px; max-width: 980px; }
.note { background: #fff8e1; border-left: 4px solid #ffca28; padding: 6px 12px; margin: 6px 0;
        font-size: 14px; }
code { background: #f0f2f5; padding: 1px 4px; border-radius: 3px; font-size: 13px; }
.scroll { max-height: 420px; overflow: auto; border: 1px solid #eee; display: inline-block;
          max-width: 100%; }
.scroll table { margin: 0; }
.cols { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
footer { margin-top: 40px; font-size: 13px; color: #777; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 4) -> str:
    """Numbers as a person reads them: integers plain, floats to `digits` places, None as –."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)) and float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(
    header: Sequence[str] | None,
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Sequence[int] = (),
    cls: str = "",
    row_classes: Sequence[str] | None = None,
    raw: Sequence[int] = (),
    id: str = "",  # noqa: A002
) -> str:
    """A table (no header row when `header` is None); cells are escaped except the columns in
    `raw` (already HTML)."""
    head = "" if header is None else "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            text = str(value) if c in raw else esc(value)
            cells.append(f'<td class="num">{text}</td>' if c in numeric else f"<td>{text}</td>")
        klass = row_classes[r] if row_classes and row_classes[r] else ""
        body.append(
            f'<tr class="{klass}">' + "".join(cells) + "</tr>"
            if klass
            else "<tr>" + "".join(cells) + "</tr>"
        )
    attr = f' class="{cls}"' if cls else ""
    if id:
        attr += f' id="{esc(id)}"'
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table{attr}>{thead}<tbody>{''.join(body)}</tbody></table>"


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image(path: str | Path | None, alt: str, caption: str = "") -> str:
    """<figure> with the PNG at `path` embedded; a note instead when there is no such file."""
    if path is None or not Path(path).is_file():
        return f'<p class="note">{esc(alt)}: not available in this run.</p>'
    img = f'<img src="{data_uri(Path(path).read_bytes())}" alt="{esc(alt)}">'
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure>{img}{cap}</figure>"


def how(text: str) -> str:
    """A 'how to read this' box (text is HTML)."""
    return f'<div class="how"><b>How to read this.</b> {text}</div>'


def page(title: str, body: str, *, meta: dict[str, str] | None = None) -> str:
    """The whole document: inline CSS, `meta` as <meta name=... content=...> (machine-readable
    facts such as the MLflow run id), no scripts."""
    tags = "".join(
        f'<meta name="{esc(k)}" content="{esc(v)}">' for k, v in (meta or {}).items() if v
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{tags}'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
