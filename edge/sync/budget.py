"""Bandwidth budget for metered links: bytes per UTC day, shared out by priority.

A message of priority p may be sent only while the day's total stays within
``shares[p] * bytes_per_day``. With the default shares (1.0, 0.9, 0.6) bulk history
stops first, ordinary readings at 90 %, and the last 10 % is kept for alarms.
"""

from __future__ import annotations

import datetime as dt

from edge.sync.config import BudgetConfig


def utc_day(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d")


def next_utc_midnight(now: float) -> float:
    day = dt.datetime.fromtimestamp(now, dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def allows(budget: BudgetConfig, used_today: int, size: int, priority: int) -> bool:
    """May ``size`` more bytes of ``priority`` go out today?"""
    if budget.bytes_per_day <= 0:
        return True
    share = budget.shares[min(max(priority, 0), len(budget.shares) - 1)]
    return used_today + size <= budget.bytes_per_day * share
