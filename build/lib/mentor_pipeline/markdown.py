"""Markdown tables for Dagster metadata: the one builder, with every cell made safe to render.

Cells carry text from outside (mentor names, Dynamics error messages), so a cell cannot end its
row or column (newlines, `|`), open a link, image or HTML tag, or carry terminal escapes: control
characters become spaces, and the characters Markdown acts on are backslash-escaped (CommonMark
renders an escaped ASCII punctuation character literally).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence

CELL_WIDTH = 120
_SPECIAL = re.compile(r"([\\|`<>\[\]&])")


class Code(str):
    """A cell shown as inline code (ids): it cannot close its own code span."""


def cell(value: object, width: int = CELL_WIDTH) -> str:
    text = _plain(value)
    if len(text) > width:
        text = text[: width - 1] + "…"
    if isinstance(value, Code):
        # Backslash escapes do not work inside a code span; only the table's own `\|` does.
        return "`" + text.replace("`", "'").replace("|", "\\|") + "`" if text else ""
    return _SPECIAL.sub(r"\\\1", text)


def table(columns: Sequence[str], rows: Sequence[Sequence[object]], *, right: Collection[str] = (),
          limit: int | None = None, total: int | None = None, see: str | None = None,
          empty: str | None = None) -> str:
    """A table of the first `limit` rows; `right` names right-aligned (numeric) columns.

    When there are more rows than shown (`total` when `rows` is already a sample), a line below
    says how many, and where to `see` them. No rows: `empty` instead of the table, when given.
    """
    if not rows and empty is not None:
        return empty
    shown = rows if limit is None else rows[:limit]
    lines = [
        "| " + " | ".join(cell(name) for name in columns) + " |",
        "|" + "|".join("---:" if name in right else "---" for name in columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in shown]
    hidden = (len(rows) if total is None else total) - len(shown)
    if hidden > 0:
        lines.append(f"\n_{hidden} more not shown{f'; see {see}' if see else ''}._")
    return "\n".join(lines)


def _plain(value: object) -> str:
    """One line of printable text: control and format characters (ESC, newlines, bidi overrides) become spaces."""
    text = "" if value is None else str(value)
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    return " ".join(text.split())
