"""Where a benchmark's report goes: the ``--json``/``--quiet`` options and the JSON they write.

Two spellings, kept as the commands document them. ``bench bm25`` and ``bench encoders`` always
print their tables and also write the figures to ``--json PATH``; their ``--quiet`` silences the
progress lines on stderr. ``bench colbert`` and ``eval faithfulness`` print either their report
or, with ``--json``, the same report as JSON; their ``-q/--quiet`` hides the progress bars.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_json_file_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json PATH`` (as ``args.json_path``) and ``--quiet`` (no progress lines on stderr)."""
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        default=None,
        dest="json_path",
        help="also write the results as JSON to this file",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def add_json_print_arguments(parser: argparse.ArgumentParser, *, what: str = "results") -> None:
    """``--json`` (print ``what`` as JSON instead of the table) and ``-q/--quiet`` (no bars)."""
    parser.add_argument("--json", action="store_true", help=f"print the {what} as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def report_json(report: dict[str, Any]) -> str:
    """The one JSON form of a report, printed or written: indented, non-ASCII kept as is."""
    return json.dumps(report, indent=2, ensure_ascii=False)


def write_json_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` to ``path`` (``--json PATH``), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_json(report) + "\n", encoding="utf-8")


def show_report(
    report: dict[str, Any], *, as_json: bool, table: Callable[[dict[str, Any]], None]
) -> None:
    """Print ``report`` as JSON (``--json``) or through ``table``, the command's own layout."""
    if as_json:
        print(report_json(report))
    else:
        table(report)


def stderr_logger(quiet: bool) -> Callable[[str], None]:
    """A progress line printer to stderr, silent with ``--quiet``."""

    def log(message: str) -> None:
        if not quiet:
            print(f"[bench] {message}", file=sys.stderr, flush=True)

    return log
