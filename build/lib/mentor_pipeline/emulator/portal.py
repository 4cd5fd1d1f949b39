"""The public chapter page: what a visitor of HLF's website sees (Power Pages, with its lag)."""

from __future__ import annotations

from html import escape


def render(chapters: dict[str, list[dict]], delay: float) -> str:
    sections = []
    for chapter, mentors in chapters.items():
        items = "\n".join(
            f'<li data-mentor-id="{escape(str(m["mentor_id"]))}">{escape(str(m["name"]))}</li>' for m in mentors
        )
        sections.append(
            f'<section data-chapter="{escape(chapter)}"><h2>{escape(chapter)} '
            f'<small>({len(mentors)} peer mentors)</small></h2><ul>{items}</ul></section>'
        )
    body = "\n".join(sections) or "<p>No peer mentors are listed at the moment.</p>"
    lag = (f"Changes made in Dynamics 365 show here after {delay:g} seconds (the portal's cache)."
           if delay else "Changes made in Dynamics 365 show here at once (no portal delay set).")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>HLF peer mentors by chapter</title>
<style>body{{font-family:sans-serif;max-width:48rem;margin:2rem auto}}small{{color:#666}}</style>
</head><body>
<h1>Find a peer mentor</h1>
<p><small>{escape(lag)} This page is served by the Dataverse emulator and refreshes every 5 seconds.</small></p>
{body}
</body></html>
"""
