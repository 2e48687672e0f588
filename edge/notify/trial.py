"""What the panel and ``fieldpost notify`` need: the configured targets (without secrets), and a
test notification sent to them now, straight through their transports (not through the queue, so
the answer is immediate and nothing is left to retry)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.errors import DeliveryError
from edge.notify.config import NotifyConfig, Target
from edge.notify.transports import Transport, transports_for, trial_message


@dataclass(frozen=True)
class TrialOutcome:
    channel: str
    target: str
    ok: bool
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def describe_targets(config: NotifyConfig) -> list[dict[str, Any]]:
    """Every target as plain data for a listing; an apprise target shows its name and service only
    (its URL carries the service's token)."""
    out = []
    for target in config.targets:
        entry = {
            "channel": target.channel,
            "target": target.target,
            "min_severity": target.min_severity,
            "states": list(target.states),
            "rules": list(target.rules),
        }
        url = config.apprise_url(target.target) if target.channel == "apprise" else None
        if url is not None:
            entry["service"] = url.split("://", 1)[0]
        out.append(entry)
    return out


def send_trial(
    config: NotifyConfig,
    *,
    only: str | None = None,
    clock: Callable[[], float] = time.time,
    transports: dict[str, Transport] | None = None,
) -> list[TrialOutcome]:
    """Send a test notification to every target (or the one whose target/name is ``only``)."""
    chosen: list[Target] = [t for t in config.targets if only is None or t.target == only]
    if only is not None and not chosen:
        raise DeliveryError(only, "no such notification target in [notify]", permanent=True)
    transports = transports_for(config) if transports is None else transports
    message = trial_message(clock())
    outcomes = []
    seen = set()
    for target in chosen:
        if (target.channel, target.target) in seen:
            continue
        seen.add((target.channel, target.target))
        try:
            transports[target.channel].send(target.target, message)
        except DeliveryError as exc:
            outcomes.append(TrialOutcome(target.channel, target.target, False, str(exc)))
            continue
        outcomes.append(TrialOutcome(target.channel, target.target, True))
    return outcomes
