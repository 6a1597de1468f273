"""One self-contained HTML file: key numbers, tables and inline SVG plots; no server, no
scripts, no files beside it."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222 }
h1 { font-size: 1.5em } h2 { font-size: 1.15em; margin-top: 1.8em }
table { border-collapse: collapse; margin: .6em 0 }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right }
th:first-child, td:first-child { text-align: left }
thead th { background: #f3f3f3 }
figure { margin: 1em 0 } figcaption { color: #555; font-size: .9em }
svg { max-width: 100%; height: auto }
.note { color: #555 }
"""


@dataclass
class Table:
    caption: str
    header: Sequence[str]
    rows: Sequence[Sequence[object]]


@dataclass
class Report:
    title: str
    notes: list[str] = field(default_factory=list)
    sections: list[tuple[str, Table | str]] = field(default_factory=list)  # str: inline SVG

    def table(self, caption: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.sections.append((caption, Table(caption, header, rows)))

    def figure(self, caption: str, svg: str) -> None:
        self.sections.append((caption, svg))

    def render(self) -> str:
        parts = [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
            *(f'<p class="note">{html.escape(n)}</p>' for n in self.notes),
        ]
        for caption, body in self.sections:
            parts.append(f"<h2>{html.escape(caption)}</h2>")
            if isinstance(body, Table):
                parts.append(_table(body))
            else:
                parts.append(f"<figure>{body}</figure>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def _table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in table.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
