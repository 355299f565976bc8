"""Markdown and HTML loaders: one unit per section, named by its heading path.

A section runs from a heading to the next heading of any level; its ``heading`` is the path of
headings above it joined with ``" > "`` (``"Article I > Section 8"``). Text before the first
heading is a section of its own (for HTML, headed by the page's ``<title>``). A section that holds
only its heading line is left out: its heading shows in the paths of the sections below it.

- **Markdown** is parsed with markdown-it-py (CommonMark: ATX and setext headings, a ``#`` inside
  a fenced code block is no heading); a section's text is its lines as written.
- **HTML** is parsed with BeautifulSoup (Python's own ``html.parser``: no compiled dependency),
  the text of block elements separated by blank lines, whitespace collapsed as a browser does
  (but in ``<pre>``); scripts, styles, navigation and forms are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rag_retrievers.errors import MissingDependencyError
from rag_retrievers.ingest.loaders import Unit, decode_text

HEADING_SEPARATOR = " > "


@dataclass
class _Sections:
    """Sections as they are found: a heading stack and the text under the current heading."""

    source: str
    preamble_heading: str | None = None
    units: list[Unit] = field(default_factory=list)
    stack: list[tuple[int, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    has_body: bool = False

    def heading(self) -> str | None:
        if not self.stack:
            return self.preamble_heading
        return HEADING_SEPARATOR.join(title for _, title in self.stack)

    def open(self, level: int, title: str, line: str) -> None:
        self.close()
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, title))
        self.lines = [line]

    def add(self, text: str) -> None:
        self.lines.append(text)
        if text.strip():
            self.has_body = True

    def close(self) -> None:
        text = self.join(self.lines).strip("\n")
        if self.has_body and text.strip():
            number = len(self.units)
            self.units.append(
                Unit(text=text, parent_id=f"{self.source}#section-{number}", heading=self.heading())
            )
        self.lines, self.has_body = [], False

    join = staticmethod("\n".join)


# -- Markdown ----------------------------------------------------------------------------------


def load_markdown(data: bytes, source: str) -> tuple[str, list[Unit], int]:
    """A Markdown file: one unit per section (see the module docstring)."""
    try:
        from markdown_it import MarkdownIt
    except ImportError:
        raise MissingDependencyError("markdown-it-py", "ingest") from None
    text = decode_text(data)
    lines = text.split("\n")
    tokens = MarkdownIt("commonmark").parse(text)
    headings: list[tuple[int, int, int, str]] = []  # (first line, end line, level, title)
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.map is not None:
            inline = tokens[i + 1]
            title = _inline_text(inline.children or []) or inline.content
            headings.append((token.map[0], token.map[1], int(token.tag[1]), title.strip()))
    sections = _Sections(source)
    position = 0
    for first, end, level, title in headings:
        for line in lines[position:first]:
            sections.add(line)
        sections.open(level, title, "\n".join(lines[first:end]))
        position = end
    for line in lines[position:]:
        sections.add(line)
    sections.close()
    return "markdown", sections.units, 0


def _inline_text(children: list[Any]) -> str:
    parts = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.children:
            parts.append(_inline_text(child.children))
    return "".join(parts)


# -- HTML --------------------------------------------------------------------------------------

_HEADINGS = {f"h{n}": n for n in range(1, 7)}
#: elements whose content is never text a reader sees
_DROPPED = frozenset(
    "script style noscript template svg math head iframe object embed canvas nav form button "
    "select textarea input".split()
)
#: elements that start and end a block of text (a blank line between blocks)
_BLOCKS = frozenset(
    "p div section article main header footer aside address blockquote pre ul ol li dl dt dd "
    "table thead tbody tfoot tr td th caption figure figcaption hr br details summary".split()
)
_SPACES = re.compile(r"[ \t\r\f\v\n\u00a0]+")


class _HtmlSections(_Sections):
    """HTML text arrives in pieces: runs of inline text are joined into one paragraph, its
    whitespace collapsed (but in ``<pre>``)."""

    preformatted: bool = False

    def add_inline(self, text: str, *, preformatted: bool = False) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines[-1] += text
        else:
            self.lines.append(text)
        self.preformatted = self.preformatted or preformatted
        if text.strip():
            self.has_body = True

    def paragraph_break(self) -> None:
        if self.lines and self.lines[-1] != "":
            last = self.lines[-1]
            self.lines[-1] = (
                last.strip("\n") if self.preformatted else _SPACES.sub(" ", last).strip()
            )
            self.lines.append("")
        self.preformatted = False

    def open(self, level: int, title: str, line: str) -> None:
        self.paragraph_break()
        super().open(level, title, line)
        self.lines.append("")

    join = staticmethod(lambda lines: "\n\n".join(line for line in lines if line.strip()))


def load_html(data: bytes, source: str) -> tuple[str, list[Unit], int]:
    """An HTML file: one unit per section (see the module docstring)."""
    try:
        from bs4 import BeautifulSoup
    except ImportError:
        raise MissingDependencyError("beautifulsoup4", "ingest") from None
    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    sections = _HtmlSections(source, preamble_heading=title or None)
    _visit(soup.body or soup, sections, preformatted=False)
    sections.paragraph_break()
    sections.close()
    return "html", sections.units, 0


def _visit(node: Any, sections: _HtmlSections, *, preformatted: bool) -> None:
    from bs4.element import (
        Comment,
        Declaration,
        Doctype,
        NavigableString,
        ProcessingInstruction,
        Tag,
    )

    for child in node.children:
        if isinstance(child, Comment | Doctype | Declaration | ProcessingInstruction):
            continue
        if isinstance(child, NavigableString):
            text = str(child)
            if preformatted:
                sections.add_inline(text, preformatted=True)
            else:
                sections.add_inline(_SPACES.sub(" ", text))
            continue
        if not isinstance(child, Tag) or child.name in _DROPPED:
            continue
        if child.name in _HEADINGS:
            heading = _SPACES.sub(" ", child.get_text(" ", strip=True)).strip()
            if heading:
                sections.open(_HEADINGS[child.name], heading, heading)
            continue
        block = child.name in _BLOCKS
        if block:
            sections.paragraph_break()
        _visit(child, sections, preformatted=preformatted or child.name == "pre")
        if block:
            sections.paragraph_break()
