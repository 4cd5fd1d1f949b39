"""One Dagster partition per Oslo night, shared by the nightly expiry and the reconciliation.

The partition key is the run date D (YYYY-MM-DD, Europe/Oslo): the night whose 00:00 is the
cut-off for "expired". Each night has its own status in the UI, a missed night is a backfill,
and a run reads its date from the partition key, never from the clock or the run record.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import dagster as dg

OSLO_TZ = "Europe/Oslo"
OSLO = ZoneInfo(OSLO_TZ)
# The first night the UI offers. Nights before the pipeline went live show as missing there:
# backfill only nights that were really missed (a backfilled night sends that night's reminders,
# for certifications still valid today).
FIRST_NIGHT = "2026-01-01"

# end_offset=1: tonight's partition exists from 00:00, so the 02:00 run can be for today's date;
# tomorrow's does not, so nobody can run a night that has not begun.
NIGHTS = dg.DailyPartitionsDefinition(start_date=FIRST_NIGHT, timezone=OSLO_TZ, end_offset=1)


def night_of(context: dg.AssetExecutionContext) -> date:
    """The run date of this partition's run."""
    return date.fromisoformat(context.partition_key)


def night_at(moment: datetime) -> date:
    """The night (Oslo date) a moment belongs to, e.g. a schedule's tick."""
    return moment.astimezone(OSLO).date()
