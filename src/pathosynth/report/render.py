"""The building blocks of a report and their two renderings, Markdown and self-contained HTML.

A report is a list of blocks (heading, paragraph, table, image, checklist). Markdown files written
by other verbs (`table.md`, `image-metrics.md`) are read back into blocks by `markdown_blocks`, a
parser for the small subset those verbs write (headings, pipe tables, paragraphs, `code`, **bold**),
so that the HTML shows real tables rather than pasted text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    path: str  # relative to the report folder
    caption: str


@dataclass
class Checklist:
    items: list[tuple[str, bool | None, str]] = field(default_factory=list)  # (item, done?, detail)


Block = Heading | Paragraph | Table | Image | Checklist

_MARK = {True: "yes", False: "NO", None: "n/a"}


def markdown_blocks(text: str, demote: int = 2) -> list[Block]:
    """Blocks from the Markdown subset our verbs write; headings are pushed down `demote` levels
    so that an included file nests under the report's own section heading."""
    blocks: list[Block] = []
    paragraph: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if paragraph:
            blocks.append(Paragraph(" ".join(paragraph)))
            paragraph.clear()
        if table:
            blocks.append(Table(table[0], table[1:]))
            table.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            if paragraph:
                flush()
            cells = [cell.strip() for cell in stripped.strip("|").split("|")]
            if not all(re.fullmatch(r":?-{3,}:?", cell) for cell in cells):  # the separator row
                table.append(cells)
            continue
        if table:
            flush()
        if stripped.startswith("#"):
            flush()
            hashes = len(stripped) - len(stripped.lstrip("#"))
            blocks.append(Heading(stripped[hashes:].strip(), min(6, hashes + demote)))
        elif stripped:
            paragraph.append(stripped)
        else:
            flush()
    flush()
    return blocks


def to_markdown(title: str, blocks: list[Block]) -> str:
    out = [f"# {title}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            out += [block.text, ""]
        elif isinstance(block, Table):
            out.append("| " + " | ".join(block.header) + " |")
            out.append("| " + " | ".join("---" for _ in block.header) + " |")
            out += ["| " + " | ".join(row) + " |" for row in block.rows]
            out.append("")
        elif isinstance(block, Image):
            out += [f"![{block.caption}]({block.path})", "", f"*{block.caption}*", ""]
        elif isinstance(block, Checklist):
            out += [f"- [{'x' if done else ' '}] {item}: {_MARK[done]}" + (f" ({detail})" if detail else "")
                    for item, done, detail in block.items]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def _inline(text: str) -> str:
    """Escape, then the two inline marks our Markdown uses."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85rem; color: #555; }
.yes { color: #1a7f37; } .no { color: #b00020; font-weight: bold; } .na { color: #777; }
code { background: #f5f5f5; padding: 0 0.2rem; }
"""


def to_html(title: str, blocks: list[Block]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Table):
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in block.header)
                       + "</tr></thead><tbody>")
            out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in block.rows]
            out.append("</tbody></table>")
        elif isinstance(block, Image):
            out.append(f'<figure><img src="{html.escape(block.path)}" alt="{html.escape(block.caption)}">'
                       f"<figcaption>{_inline(block.caption)}</figcaption></figure>")
        elif isinstance(block, Checklist):
            out.append("<ul>")
            for item, done, detail in block.items:
                css = {True: "yes", False: "no", None: "na"}[done]
                out.append(f'<li>{_inline(item)}: <span class="{css}">{_MARK[done]}</span>'
                           + (f" ({_inline(detail)})" if detail else "") + "</li>")
            out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
