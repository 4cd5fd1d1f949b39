"""Names and other text from the app or Dynamics, made safe to print or log.

A mentor's name is whatever the app stored: a newline would forge a log line, a terminal escape
(ESC [ ...) would repaint the operator's terminal. `plain` makes every control or invisible
formatting character visible as an escape (\\n, \\x1b, \\u202e), so the operator sees what is
really stored. (Markdown for Dagster metadata: `mentor_pipeline.markdown`.)
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Cc: control characters (C0, DEL, C1); Cf: invisible formatting (bidi overrides, zero-width);
# Zl/Zp: Unicode line and paragraph separators.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}


def _visible(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if unicodedata.category(char) in _UNSAFE_CATEGORIES:
        code = ord(char)
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
    return char


def plain(value: object) -> str:
    """One line of printable text: control and invisible formatting characters escaped."""
    text = "" if value is None else str(value)
    return "".join(_visible(char) for char in text)

