"""The one markdown-table builder: text from outside cannot break the table or inject markup."""

from __future__ import annotations

from mentor_pipeline import markdown


def test_table_with_alignment_and_rows():
    text = markdown.table(["org", "mentors"], [["HLF", 3], ["NHF", None]], right={"mentors"})
    assert text.splitlines() == ["| org | mentors |", "|---|---:|", "| HLF | 3 |", "| NHF |  |"]


def test_a_cell_cannot_end_its_row_or_column():
    row = markdown.table(["note"], [["a | b\nc\r\n| d"]]).splitlines()[2]
    assert row == "| a \\| b c \\| d |"


def test_a_trailing_backslash_cannot_escape_the_column_separator():
    assert markdown.cell("C:\\") == "C:\\\\"
    assert markdown.cell("x\\|y") == "x\\\\\\|y"  # escaped backslash, escaped pipe


def test_terminal_escapes_and_other_control_characters_become_spaces():
    assert markdown.cell("\x1b[31mred\x1b[0m\x07 \u202eevil\u200b") == "[31mred [0m evil".replace("[", "\\[")


def test_links_images_and_html_render_as_text():
    assert markdown.cell("![x](http://t/p.png) <img src=x> &amp;") == "!\\[x\\](http://t/p.png) \\<img src=x\\> \\&amp;"


def test_code_cells_cannot_close_their_code_span():
    assert markdown.cell(markdown.Code("m`1|2")) == "`m'1\\|2`"
    assert markdown.cell(markdown.Code("")) == ""


def test_long_cells_are_cut_before_escaping():
    assert markdown.cell("|" * 200, width=5) == "\\|\\|\\|\\|…"


def test_rows_beyond_the_limit_are_counted_below_the_table():
    text = markdown.table(["n"], [[i] for i in range(5)], limit=2, see="reconciliation_log")
    assert text.splitlines()[2:] == ["| 0 |", "| 1 |", "", "_3 more not shown; see reconciliation_log._"]
    sample = markdown.table(["n"], [[1]], total=10)
    assert sample.endswith("\n_9 more not shown._")


def test_no_rows_shows_the_empty_text_when_given():
    assert markdown.table(["n"], [], empty="_None._") == "_None._"
    assert markdown.table(["n"], []) == "| n |\n|---|"
