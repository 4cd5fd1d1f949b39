"""One Dagster partition per Oslo night, shared by the nightly expiry and the reconciliation.

The partition key is the run date D (YYYY-MM-DD, Europe/Oslo): the night whose 00:00 is the
cut-off for "expired". Each night has its own status in the UI, a missed night is a backfill,
and a run reads its date from the partition key, never from the clock or the run record.
"""

from __future__ import annotations

import os
from datetime import date, datetime
import dagster as dg

from mentor_pipeline import settings as environment
from mentor_pipeline.timezone import OSLO, OSLO_TZ


def first_night(environ=os.environ) -> str:
    """The first night the UI offers: the go-live date. Nights before it would show as missing
    and invite a backfill, and a backfilled night sends that night's reminders (for certifications
    still valid today), so only nights the pipeline really missed belong there. No default could
    know that date (and one that moved with the clock would move the partitions under every
    process), so an unset or invalid value stops the code location with one line saying what to
    set; the demo sets it a few days back, the tests set theirs."""
    variable = environment.FIRST_NIGHT
    raw = environ.get(variable.name, "").strip()
    if not raw:
        raise ValueError(f"{variable.name} is not set: set it to the date the pipeline goes live, e.g. "
                         f"{date.today().isoformat()}, in the Dagster processes' environment (docs/operations.md)")
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise ValueError(f"{variable.name} must be a date like 2026-12-01, the night the pipeline went live "
                         f"(got {raw!r}): fix it in the Dagster processes' environment") from None


FIRST_NIGHT = first_night()

# end_offset=1: tonight's partition exists from 00:00, so the 02:00 run can be for today's date;
# tomorrow's does not, so nobody can run a night that has not begun.
NIGHTS = dg.DailyPartitionsDefinition(start_date=FIRST_NIGHT, timezone=OSLO_TZ, end_offset=1)


def night_of(context: dg.AssetExecutionContext) -> date:
    """The run date of this partition's run."""
    return date.fromisoformat(context.partition_key)


def night_at(moment: datetime) -> date:
    """The night (Oslo date) a moment belongs to, e.g. a schedule's tick."""
    return moment.astimezone(OSLO).date()
