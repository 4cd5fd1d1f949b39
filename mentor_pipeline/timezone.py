"""HLF's time zone: the nights, run dates and reminders are Oslo calendar days (one constant)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

OSLO_TZ = "Europe/Oslo"
OSLO = ZoneInfo(OSLO_TZ)
