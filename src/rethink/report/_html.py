"""report.html: one self-contained page (figures inlined as base64 PNG, no external links)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from rethink.report._tables import Table, display_frame

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0;font-size:0.85em}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} img{max-width:100%;border:1px solid #eee}
.caption{font-size:0.85em;color:#555;max-width:1000px}
details{margin:2px 0} pre{background:#f8f8f8;padding:6px;font-size:0.8em}
.failed{color:#a00}
"""


def _img(png: Path, alt: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _table(t: Table) -> str:
    d = display_frame(t.frame)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in d.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>"
        for _, r in d.iterrows()
    )
    return (
        f'<h3>{html.escape(t.title)}</h3><table class="data" data-name="{t.name}">'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        f'<p class="caption">{html.escape(t.caption)}</p>'
    )


def _runs(runs: pd.DataFrame) -> str:
    items = []
    for _, r in runs.iterrows():
        tr, te = r.get("r.train_acc"), r.get("r.test_acc")
        acc = (
            f"train {tr * 100:.2f}% / test {te * 100:.2f}%"
            if pd.notna(tr) and pd.notna(te)
            else "no result"
        )
        err = f' <span class="failed">{html.escape(str(r["error"]))}</span>' if r["error"] else ""
        items.append(
            f'<details class="run" data-run-id="{r["run_id"]}"><summary><code>{r["run_id"]}'
            f"</code> {html.escape(str(r['label']))}: {r['status']}, {acc}{err}</summary>"
            f"<pre>{html.escape(r['spec_json'])}</pre></details>"
        )
    return "<h3>Runs (click for the spec)</h3>" + "".join(items)


def write_html(
    path: Path,
    title: str,
    sections: list[dict],
    intro: str = "",
) -> Path:
    """sections: dicts with 'sweep', 'notes', 'tables' (Table), 'figures' ((png, alt)),
    'runs' (frame)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(intro)}</p>" if intro else "",
    ]
    for s in sections:
        parts.append(f'<section data-sweep="{html.escape(s["sweep"])}">')
        parts.append(f"<h2>{html.escape(s['sweep'])}</h2>")
        if s.get("notes"):
            parts.append(f"<p class='caption'>{html.escape(s['notes'])}</p>")
        for png, alt in s["figures"]:
            parts.append(_img(png, alt))
        for t in s["tables"]:
            parts.append(_table(t))
        parts.append(_runs(s["runs"]))
        parts.append("</section>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts))
    return path
