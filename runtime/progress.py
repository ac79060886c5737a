"""Progress bars that every tool shows the same way: on a terminal, never in pipes and logs.

A bar redrawn with carriage returns turns a log file into thousands of fragments, so bars appear
only when stderr is a terminal; short runs (a few items) get none at all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm

MIN_ITEMS = 4  # fewer items than this finish before a bar would tell anything


def progress_bar(
    total: int | None,
    unit: str,
    desc: str | None = None,
    enabled: bool = True,
    iterable: Iterable[object] | None = None,
) -> tqdm:
    """A tqdm bar on stderr (wrapping `iterable` when given), shown only when `enabled`, stderr is a
    terminal, and there are enough items."""
    shown = enabled and sys.stderr.isatty() and (total is None or total >= MIN_ITEMS)
    return tqdm(
        iterable, total=total, unit=unit, desc=desc, file=sys.stderr, leave=False, disable=not shown, dynamic_ncols=True
    )
