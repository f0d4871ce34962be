"""One progress-bar helper for both packages (tqdm on stderr, only where someone watches).

A bar is shown only when asked for *and* stderr is a terminal *and* the
``CI`` environment variable is unset, so logs and test output stay clean.
"""

from __future__ import annotations

import os
import sys

__all__ = ["progress_enabled", "progress_bar"]


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to draw a bar.

    ``True``/``False`` ask for one only when stderr is a terminal and ``CI``
    is unset (``False`` never draws); ``None`` means "if someone watches".
    """
    if progress is False:
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)()) and not os.environ.get("CI")


def progress_bar(total: float, desc: str, progress: bool | None = None, unit: str = "it", **kwargs):
    """A ``tqdm`` bar on stderr, or ``None`` when disabled (or tqdm is missing).

    Callers guard their ``update``/``close`` calls with ``if bar is not None``.
    """
    if not progress_enabled(progress):
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency; a stripped install still runs
        return None
    kwargs.setdefault("leave", False)
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, **kwargs)
