"""The run date: one Oslo calendar date per run, given or defaulting to today in Oslo."""

from __future__ import annotations

import re
from datetime import date, datetime

from mentor_pipeline.timezone import OSLO, OSLO_TZ

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RunDateError(ValueError):
    """The run date given is not usable; the message is one line for the operator."""


def today_in_oslo(now: datetime | None = None) -> date:
    return (now or datetime.now(OSLO)).astimezone(OSLO).date()


# A night missed over a long weekend runs without ceremony; older nights are a backfill the
# operator asks for. Nothing older than a year is a night this pipeline could still act on.
RECENT_DAYS = 3
BACKFILL_LIMIT_DAYS = 366


def parse_run_date(value: str | None, *, today: date | None = None, backfill: bool = False,
                   backfill_hint: str = "--backfill") -> date:
    """`YYYY-MM-DD` (or None for today in Oslo) for a night that can run now.

    A future run date would expire certifications that have not expired yet, so it is an
    error, not a what-if. A night more than RECENT_DAYS back runs only when the operator says
    backfill (`backfill_hint` names how), and never more than BACKFILL_LIMIT_DAYS back.
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
            f"run date {run_date.isoformat()} is in the future (today in {OSLO_TZ} is {today.isoformat()}):"
            " expiry runs only for today or a past night"
        )
    age = (today - run_date).days
    if age > BACKFILL_LIMIT_DAYS:
        raise RunDateError(
            f"run date {run_date.isoformat()} is {age} days ago (today in {OSLO_TZ} is {today.isoformat()}):"
            f" a backfill reaches back at most {BACKFILL_LIMIT_DAYS} days; check the date"
        )
    if age > RECENT_DAYS and not backfill:
        raise RunDateError(
            f"run date {run_date.isoformat()} is {age} days ago (today in {OSLO_TZ} is {today.isoformat()}):"
            f" nights more than {RECENT_DAYS} days back run only as a backfill ({backfill_hint});"
            " reminders then go out only for certifications still valid today"
        )
    return run_date
