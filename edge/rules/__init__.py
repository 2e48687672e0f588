"""Local rules: evaluated at the edge on every reading and on a timer, offline.

Entry points:
- the daemon: ``RuleEngine(conn_factory, clock, status=SiteStatus(...))`` with
  ``on_readings(readings)`` after each ingest commit and ``tick()`` on a timer;
- the config file: ``parse_rules(toml["rules"])`` then ``sync_config_rules``;
- the panel: ``validate_rule``, ``save_rule``, ``set_enabled``, ``delete_rule``, ``list_rules``.
"""

from edge.rules.engine import RuleEngine
from edge.rules.model import KINDS, Action, Rule, parse_rules, validate_rule
from edge.rules.status import CloudStatus, LinkStatus, SiteStatus, Snapshot, StatusProvider
from edge.rules.store import (
    StoredRule,
    delete_rule,
    get_rule,
    list_rules,
    load_enabled,
    save_rule,
    set_enabled,
    sync_config_rules,
)

__all__ = [
    "KINDS",
    "Action",
    "CloudStatus",
    "LinkStatus",
    "Rule",
    "RuleEngine",
    "SiteStatus",
    "Snapshot",
    "StatusProvider",
    "StoredRule",
    "delete_rule",
    "get_rule",
    "list_rules",
    "load_enabled",
    "parse_rules",
    "save_rule",
    "set_enabled",
    "sync_config_rules",
    "validate_rule",
]
