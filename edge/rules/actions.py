"""A rule's action: queue a downlink when its alarm is raised (or cleared), once per cooldown.

The cooldown is per rule and target device and lives in rule_state (subject
``action/<device>``), so a restart does not reset it. A refused downlink (an
unknown device, a node that has gone) is logged and recorded as an event; it never
stops the rule from raising its alarm.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import replace

from edge import downlinks
from edge.errors import ValidationError
from edge.rules import state as rule_state
from edge.rules.model import Rule

log = logging.getLogger("fieldpost.rules")


def run_action(
    conn: sqlite3.Connection, rule: Rule, *, transition: str, alarm_device: str | None, now: float
) -> int | None:
    """Queue the rule's downlink for ``transition`` ('raised' or 'cleared'); return its id or None."""
    action = rule.action
    if action is None or action.on != transition:
        return None
    target = action.device or alarm_device
    if target is None:  # validation requires action.device for kinds without a device
        return None
    subject = f"action/{target}"
    state = rule_state.load(conn, rule.name, subject)
    if state.last_action_at is not None and now - state.last_action_at < action.cooldown_s:
        log.info(
            "rule_action_cooldown rule=%s device=%s left_s=%.0f",
            rule.name,
            target,
            action.cooldown_s - (now - state.last_action_at),
        )
        return None
    try:
        dl_id = downlinks.queue(
            conn, target, action.command, dict(action.args), source="rule", ttl_s=action.ttl_s, now=now
        )
    except ValidationError as exc:
        log.warning("rule_action_refused rule=%s device=%s error=%s", rule.name, target, exc)
        conn.execute(
            "INSERT INTO events (at, kind, device_id, message, detail) VALUES (?, 'rule_action_failed', ?, ?, ?)",
            (
                now,
                target,
                f"rule {rule.name}: downlink refused: {exc}",
                json.dumps({"rule": rule.name, "command": action.command, "field": exc.field}),
            ),
        )
        return None
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, 'downlink.queue', ?, ?)",
        (
            now,
            f"rule:{rule.name}",
            target,
            json.dumps({"downlink": dl_id, "command": action.command, "args": action.args}, sort_keys=True),
        ),
    )
    rule_state.save(conn, rule.name, subject, replace(state, last_action_at=now), device_id=target, now=now)
    log.info("rule_action rule=%s device=%s command=%s downlink=%d", rule.name, target, action.command, dl_id)
    return dl_id
