"""Assembling a self-contained HTML page: figures as base64 PNG, inline CSS, no outside assets."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:24px auto;padding:0 16px;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:0.2em}
h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:0.9em}
.note{background:#f6f6f6;border-left:4px solid #bbb;padding:8px 12px;color:#555}
.caption{color:#444;font-size:0.92em}
img{max-width:100%;height:auto;display:block;margin:8px 0}
table{border-collapse:collapse;font-size:0.9em;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 10px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
"""


@dataclass
class Section:
    """One part of the page: a figure (``image`` as PNG bytes), a table, or a note."""

    id: str
    title: str
    caption: str = ""
    image: bytes | None = None
    table: tuple[list[str], list[list[str]]] | None = None
    note: str = ""


def fig_to_png(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _esc(s: object) -> str:
    return html.escape(str(s), quote=True)


def render_page(title: str, meta: str, sections: list[Section]) -> str:
    """The whole page as one HTML string."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_esc(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="meta">{_esc(meta)}</p>',
    ]
    for s in sections:
        parts.append(f'<section id="{_esc(s.id)}">')
        parts.append(f"<h2>{_esc(s.title)}</h2>")
        if s.caption:
            parts.append(f'<p class="caption">{_esc(s.caption)}</p>')
        if s.table is not None:
            head, rows = s.table
            parts.append("<table>")
            parts.append("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr>")
            for row in rows:
                parts.append("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        if s.image is not None:
            b64 = base64.b64encode(s.image).decode("ascii")
            parts.append(
                f'<img id="fig-{_esc(s.id)}" alt="{_esc(s.title)}" '
                f'src="data:image/png;base64,{b64}">'
            )
        if s.note:
            parts.append(f'<p class="note">{_esc(s.note)}</p>')
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
