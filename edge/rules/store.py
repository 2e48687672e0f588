"""Rules in the ``rules`` table: from the config file (source 'config') or the panel ('panel').

The config file is the truth for its rules: :func:`sync_config_rules` makes the
table match it at start-up. Panel rules are created, changed and deleted by an
admin through :func:`save_rule`, :func:`set_enabled` and :func:`delete_rule`,
each validated by :func:`edge.rules.model.validate_rule` and written to the audit
log. The panel cannot change a config rule (the next start would undo it).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from edge.alarms import joined_transaction
from edge.errors import ValidationError
from edge.rules.model import Rule, validate_rule

log = logging.getLogger("fieldpost.rules")


@dataclass(frozen=True)
class StoredRule:
    id: int
    name: str
    source: str
    enabled: bool
    definition: dict[str, Any]
    created_at: float
    updated_at: float


def list_rules(conn: sqlite3.Connection) -> list[StoredRule]:
    rows = conn.execute(
        "SELECT id, name, source, enabled, definition, created_at, updated_at FROM rules ORDER BY name"
    ).fetchall()
    return [StoredRule(r[0], r[1], r[2], bool(r[3]), json.loads(r[4]), r[5], r[6]) for r in rows]


def get_rule(conn: sqlite3.Connection, rule_id: int) -> StoredRule:
    for rule in list_rules(conn):
        if rule.id == rule_id:
            return rule
    raise ValidationError("rule_id", f"no rule with id {rule_id}")


def load_enabled(conn: sqlite3.Connection) -> list[Rule]:
    """The rules the engine runs. A stored definition that no longer validates is skipped, loudly."""
    rules = []
    for row in conn.execute("SELECT name, definition FROM rules WHERE enabled = 1 ORDER BY id"):
        try:
            rules.append(validate_rule(json.loads(row[1])))
        except (ValidationError, ValueError) as exc:
            log.error("rule_invalid rule=%s error=%s", row[0], exc)
    return rules


def save_rule(
    conn: sqlite3.Connection, definition: Any, *, actor: str, now: float, rule_id: int | None = None
) -> int:
    """Create (rule_id None) or replace a panel rule; return its id. Raises ValidationError(field, ...)."""
    rule = validate_rule(definition)
    text = json.dumps(rule.to_definition(), sort_keys=True)
    with joined_transaction(conn):
        clash = conn.execute("SELECT id, source FROM rules WHERE name = ?", (rule.name,)).fetchone()
        if clash is not None and clash[0] != rule_id:
            where = "the config file" if clash[1] == "config" else "another rule"
            raise ValidationError("name", f"{rule.name!r} is already used by {where}")
        if rule_id is None:
            cur = conn.execute(
                "INSERT INTO rules (name, definition, enabled, source, created_at, updated_at)"
                " VALUES (?, ?, ?, 'panel', ?, ?)",
                (rule.name, text, int(rule.enabled), now, now),
            )
            assert cur.lastrowid is not None  # sqlite3 sets it after every INSERT
            rule_id = cur.lastrowid
            action = "rule.create"
        else:
            _panel_rule(conn, rule_id)
            conn.execute(
                "UPDATE rules SET name = ?, definition = ?, enabled = ?, updated_at = ? WHERE id = ?",
                (rule.name, text, int(rule.enabled), now, rule_id),
            )
            action = "rule.update"
        _audit(conn, actor, action, rule.name, rule.to_definition(), now)
    return rule_id


def set_enabled(conn: sqlite3.Connection, rule_id: int, enabled: bool, *, actor: str, now: float) -> None:
    with joined_transaction(conn):
        name = _panel_rule(conn, rule_id)
        conn.execute(
            "UPDATE rules SET enabled = ?, updated_at = ? WHERE id = ?", (int(enabled), now, rule_id)
        )
        _audit(conn, actor, "rule.enable" if enabled else "rule.disable", name, None, now)


def delete_rule(conn: sqlite3.Connection, rule_id: int, *, actor: str, now: float) -> None:
    """Remove a panel rule. Its open alarms are cleared by the engine's next tick."""
    with joined_transaction(conn):
        name = _panel_rule(conn, rule_id)
        conn.execute("DELETE FROM rules WHERE id = ?", (rule_id,))
        _audit(conn, actor, "rule.delete", name, None, now)


def sync_config_rules(conn: sqlite3.Connection, rules: list[Rule], *, now: float) -> None:
    """Make the table's config rules exactly ``rules`` (from :func:`edge.rules.model.parse_rules`).

    A panel rule with the same name as a config rule is refused: rename one of them.
    """
    with joined_transaction(conn):
        existing = {
            row[0]: (row[1], row[2]) for row in conn.execute("SELECT name, source, definition FROM rules")
        }
        wanted = {rule.name for rule in rules}
        for i, rule in enumerate(rules):
            text = json.dumps(rule.to_definition(), sort_keys=True)
            if rule.name not in existing:
                conn.execute(
                    "INSERT INTO rules (name, definition, enabled, source, created_at, updated_at)"
                    " VALUES (?, ?, ?, 'config', ?, ?)",
                    (rule.name, text, int(rule.enabled), now, now),
                )
            elif existing[rule.name][0] != "config":
                raise ValidationError(
                    f"rules[{i}].name", f"{rule.name!r} is already a rule made in the panel"
                )
            elif existing[rule.name][1] != text:
                conn.execute(
                    "UPDATE rules SET definition = ?, enabled = ?, updated_at = ? WHERE name = ?",
                    (text, int(rule.enabled), now, rule.name),
                )
        for name, (source, _) in existing.items():
            if source == "config" and name not in wanted:
                conn.execute("DELETE FROM rules WHERE name = ?", (name,))


def _panel_rule(conn: sqlite3.Connection, rule_id: int) -> str:
    row = conn.execute("SELECT name, source FROM rules WHERE id = ?", (rule_id,)).fetchone()
    if row is None:
        raise ValidationError("rule_id", f"no rule with id {rule_id}")
    if row[1] == "config":
        raise ValidationError("name", f"{row[0]!r} comes from the config file; change it there")
    return row[0]


def _audit(conn: sqlite3.Connection, actor: str, action: str, target: str, detail: Any, now: float) -> None:
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (now, actor, action, target, None if detail is None else json.dumps(detail, sort_keys=True)),
    )
