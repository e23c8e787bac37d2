"""The pieces of gristmill's self-contained HTML reports (a build's, an ablation's): one style sheet,
tables and inline PNG figures."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}h2{margin-top:1.6em}.bad{color:#b00}.yes{color:#070}.no{color:#a60}"""


def table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    """Return an HTML table; cells are escaped, floats shown to 4 significant digits, ints with separators."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def cell(value: object) -> str:
    """Return one table cell's HTML."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def png(fig) -> str:
    """Return a matplotlib figure as an inline <img>."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'
