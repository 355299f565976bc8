"""Progress bars (tqdm): on when asked, else only for large jobs on an interactive terminal."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from tqdm.auto import tqdm

#: fewest items for a progress bar nobody asked for
PROGRESS_MIN_ITEMS = 500


def show_progress(requested: bool | None, n_items: int) -> bool:
    """Progress bars: on when asked, else only for large jobs on an interactive terminal."""
    if requested is not None:
        return requested
    return n_items >= PROGRESS_MIN_ITEMS and sys.stderr.isatty()


def progress_bar(total: int, desc: str, unit: str, requested: bool | None) -> tqdm[NoReturn] | None:
    """A tqdm bar when :func:`show_progress` says so, else ``None``."""
    if not show_progress(requested, total):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit)
