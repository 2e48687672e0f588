"""Pure rule logic: turn one observation into 'raise', 'clear' or nothing.

No database, no clock: the engine loads a :class:`State`, builds a :class:`Sample`
from a reading or a status snapshot, calls :func:`step`, and stores what comes
back. Every kind of rule reduces to the same small machine:

- while no alarm is open, a condition that holds starts (or continues) a pending
  period; once it has held for ``for_s`` the alarm is raised, once;
- while an alarm is open, only a *recovered* sample (back past the hysteresis
  band) clears it, so a value hovering at the limit cannot make it flap.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, replace

from edge.rules.model import Rule

RAISE = "raise"
CLEAR = "clear"


@dataclass(frozen=True)
class State:
    """What a rule remembers about one subject (a device channel, a device, a port, a sink)."""

    pending_since: float | None = None
    pending_reading_id: int | None = None
    pending_value: float | None = None
    alarm_id: int | None = None
    last_value: float | None = None  # previous sample, for rates of change
    last_at: float | None = None
    last_action_at: float | None = None


@dataclass(frozen=True)
class Sample:
    at: float
    value: float | None
    holds: bool  # the alarm condition is true now
    recovered: bool  # far enough back from the limit to clear an open alarm
    reading_id: int | None = None
    since: float | None = None  # when the condition began, if the source knows better than us


def step(state: State, sample: Sample, for_s: float) -> tuple[str | None, State]:
    if state.alarm_id is not None:
        if sample.recovered:
            return CLEAR, replace(state, pending_since=None, pending_reading_id=None, pending_value=None)
        return None, state
    if not sample.holds:
        return None, replace(state, pending_since=None, pending_reading_id=None, pending_value=None)
    since = state.pending_since
    if since is None:
        since = sample.since if sample.since is not None else sample.at
    state = replace(
        state, pending_since=since, pending_reading_id=sample.reading_id, pending_value=sample.value
    )
    if sample.at - since >= for_s:
        return RAISE, state
    return None, state


def due(state: State, now: float, for_s: float) -> bool:
    """A pending condition whose duration ran out between samples (checked on the timer)."""
    return state.alarm_id is None and state.pending_since is not None and now - state.pending_since >= for_s


# --------------------------------------------------------------------------- samples per kind


def level_sample(rule: Rule, value: float, at: float, reading_id: int | None = None) -> Sample:
    """threshold, battery and buffer: a value against a limit, with hysteresis on the way back."""
    if rule.above is not None:
        holds = value > rule.above
        recovered = value <= rule.above - rule.hysteresis
    else:
        assert rule.below is not None
        holds = value < rule.below
        recovered = value >= rule.below + rule.hysteresis
    return Sample(at=at, value=value, holds=holds, recovered=recovered, reading_id=reading_id)


def rate_sample(rule: Rule, state: State, value: float, at: float, reading_id: int | None) -> Sample | None:
    """Change since the previous sample, scaled to ``per_s``; None for the first sample."""
    if state.last_at is None or state.last_value is None or at <= state.last_at:
        return None
    rate = (value - state.last_value) / (at - state.last_at) * rule.per_s
    if rule.direction == "rise":
        holds = rate > rule.max_rate
    elif rule.direction == "fall":
        holds = rate < -rule.max_rate
    else:
        holds = abs(rate) > rule.max_rate
    return Sample(at=at, value=rate, holds=holds, recovered=not holds, reading_id=reading_id)


def silent_sample(rule: Rule, last_seen: float, interval_s: float, now: float) -> Sample:
    limit = rule.intervals * interval_s
    quiet = now - last_seen
    holds = quiet > limit
    return Sample(at=now, value=quiet, holds=holds, recovered=not holds, since=last_seen + limit)


def down_sample(up: bool, now: float, down_since: float | None) -> Sample:
    """link_down and cloud_down: ``down_since`` when the source knows when it went down."""
    return Sample(at=now, value=None, holds=not up, recovered=up, since=None if up else down_since)


# --------------------------------------------------------------------------- messages

DEFAULT_MESSAGES = {
    "threshold": "$metric $value $limit on $device",
    "rate": "$metric changing by $value per $per (limit $limit) on $device",
    "silent": "no reading from $device for ${value}s (limit ${limit}s)",
    "battery": "battery $value below $limit on $device",
    "link_down": "serial link $device down for more than ${limit}s",
    "cloud_down": "cloud sink $device unreachable for more than ${limit}s",
    "buffer": "buffer $value% full (limit $limit%)",
}


def limit_of(rule: Rule) -> float | None:
    if rule.kind == "rate":
        return rule.max_rate
    if rule.kind == "silent":
        return None
    if rule.kind in ("link_down", "cloud_down"):
        return rule.for_s
    return rule.above if rule.above is not None else rule.below


def render_message(
    rule: Rule, subject: str | None, value: float | None, *, limit: float | None = None
) -> str:
    """The alarm text: the rule's own template or the kind's default, $placeholders only."""
    if limit is None:
        limit = limit_of(rule)
    fields = {
        "rule": rule.name,
        "device": subject or "",
        "value": _fmt(value),
        "metric": rule.metric,
        "limit": _fmt(limit),
        "per": f"{_fmt(rule.per_s)}s",
    }
    if rule.kind == "threshold" and not rule.message:
        fields["limit"] = ("above " if rule.above is not None else "below ") + _fmt(limit)
    template = rule.message or DEFAULT_MESSAGES[rule.kind]
    text = string.Template(template).safe_substitute(fields)
    return f"{rule.name}: {text}" if not rule.message else text


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"
