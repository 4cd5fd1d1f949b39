"""The run date: one Oslo calendar date per run, given or defaulting to today in Oslo."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RunDateError(ValueError):
    """The run date given is not usable; the message is one line for the operator."""


def today_in_oslo(now: datetime | None = None) -> date:
    return (now or datetime.now(OSLO)).astimezone(OSLO).date()


def parse_run_date(value: str | None, *, today: date | None = None) -> date:
    """`YYYY-MM-DD` (or None for today in Oslo); a future date is refused.

    A future run date would expire certifications that have not expired yet, so it is an
    error, not a what-if.
    """
    today = today or today_in_oslo()
    if value is None or not value.strip():
        return today
    text = value.strip()
    try:
        if not _ISO_DATE.match(text):
            raise ValueError
        run_date = date.fromisoformat(text)
    except ValueError:
        raise RunDateError(
            f"invalid run date {text!r}: expected a calendar date as YYYY-MM-DD, e.g. {today.isoformat()}"
        ) from None
    if run_date > today:
        raise RunDateError(
            f"run date {run_date.isoformat()} is in the future (today in Europe/Oslo is {today.isoformat()}):"
            " expiry runs only for today or a past night"
        )
    return run_date
