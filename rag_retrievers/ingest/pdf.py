"""The PDF loader: one unit per page, with pypdf.

pypdf is pure Python (no compiled code, no system library), actively maintained, and reads the
text layer of a page in reading order well enough for retrieval. A page's printed lines are joined
into paragraphs (:func:`page_text`), so a chunker cuts at paragraphs and sentences rather than
at the ends of printed lines. A page without a text layer (a scan) yields no unit; a file none of
whose pages has text is reported as such. An encrypted PDF opens only if its password is empty.
"""

from __future__ import annotations

import io
import re

from rag_retrievers.errors import MissingDependencyError
from rag_retrievers.ingest.loaders import Unit, UnreadableFileError

_HYPHENATED = re.compile(r"(?<=[a-z])-\n(?=[a-z])")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
#: a printed line that ends like this ends its paragraph (or is a heading)
_ENDS = (".", "!", "?", ":", ";", '"', "”")
#: a line shorter than this share of the page's longest line ends its paragraph
SHORT_LINE = 0.6


def page_text(raw: str) -> str:
    r"""A page's extracted text with its printed lines joined into paragraphs: a line break
    stays after a line that ends a sentence or clause, or is short (a heading, a paragraph's
    last line); other lines are joined with a space, a word hyphenated across two lines is
    joined whole, a blank line stays a paragraph break.

    >>> print(page_text("Article I\nThe Congress shall have Power To lay and col-\nlect Taxes\n"
    ...                 "and pay the Debts of the United States;\nTo borrow Money."))
    Article I
    The Congress shall have Power To lay and collect Taxes and pay the Debts of the United States;
    To borrow Money.
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    paragraphs = []
    for block in _PARAGRAPH.split(_HYPHENATED.sub("", text)):
        lines = [" ".join(line.split()) for line in block.split("\n")]
        lines = [line for line in lines if line]
        longest = max((len(line) for line in lines), default=0)
        joined = ""
        for line in lines:
            joined += line
            ends = line.endswith(_ENDS) or len(line) < SHORT_LINE * longest
            joined += "\n" if ends else " "
        if joined.strip():
            paragraphs.append(joined.strip())
    return "\n\n".join(paragraphs)


def load_pdf(data: bytes, source: str) -> tuple[str, list[Unit], int]:
    """A PDF: one unit per page that has text, ``page`` counted from 1."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise MissingDependencyError("pypdf", "ingest") from None
    if not data.lstrip()[:5] == b"%PDF-":
        raise UnreadableFileError("not a PDF (no %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFileError("encrypted with a password")
        pages = list(reader.pages)
    except PdfReadError as exc:
        raise UnreadableFileError(f"a corrupt PDF ({exc})") from None
    units = []
    for number, page in enumerate(pages, 1):
        try:
            text = page_text(page.extract_text() or "")
        except PdfReadError as exc:
            raise UnreadableFileError(f"page {number} is corrupt ({exc})") from None
        if text:
            units.append(Unit(text=text, parent_id=f"{source}#page-{number}", page=number))
    return "pdf", units, len(pages)
