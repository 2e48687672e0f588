"""TOML out: every file the project writes goes through tomli-w; secrets are named, never shown."""

from __future__ import annotations

from typing import Any

import tomli_w

from edge.config import root
from edge.config.schema import KeyInfo, as_raw


def dumps(data: dict[str, Any]) -> str:
    """``data`` as TOML (valid whatever the strings hold: newlines, quotes...)."""
    return tomli_w.dumps(data)


def toml_value(value: Any) -> str:
    """One value as TOML text on one line, e.g. for a comment."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[4:].strip()


def values(config: root.Config, *, secrets: bool = False) -> dict[str, Any]:
    """Every section's values in effect, as TOML tables (secrets left out unless asked)."""
    out: dict[str, Any] = {}
    for name, spec in root.SECTIONS.items():
        section = getattr(config, name)
        if isinstance(spec, root.Custom):
            raw = spec.to_raw(section)
            if raw:
                out[name] = raw
        else:
            out[name] = as_raw(section, secrets=secrets)
    return out


def secrets_state(config: root.Config) -> dict[str, str]:
    """Each secret key -> 'set' or 'unset' (the value itself is never printed)."""
    out = {}
    for info in root.keys():
        if info.meta.secret and "[]" not in info.key:  # those in arrays of tables: never printed either
            out[info.dotted] = "set" if _get(config, info) is not None else "unset"
    return out


def _get(config: root.Config, info: KeyInfo) -> Any:
    node: Any = getattr(config, info.section)
    for part in info.key.split("."):
        if node is None or "[]" in part:
            return None
        node = getattr(node, part)
    return node


def effective(config: root.Config) -> str:
    """The configuration in effect as a TOML file (secrets as comments saying whether they are set)."""
    head = [f"# from {config.path or 'built-in defaults'}"]
    head += [f"# {key}: secret, {state}" for key, state in secrets_state(config).items()]
    return "\n".join(head) + "\n\n" + dumps(values(config))


def example() -> str:
    """A commented configuration file: every key at its default, with its meaning and range."""
    lines = [
        "# Fieldpost configuration. Every key is optional; the values shown are the defaults.",
        "# Uncomment a table's header with the keys you set: a [sync] or [notify] table switches that on.",
        "# Every key can also be set as FIELDPOST_<SECTION>_<KEY>; see docs/config.md.",
        "",
    ]
    current = None
    for info in root.keys():
        table = info.section + ("." + info.key.rsplit(".", 1)[0] if "." in info.key else "")
        if table != current:
            array = "[]" in table
            # headers commented too: a [sync] or [notify.email] header alone would switch that area on
            lines += ["", f"# [[{table.replace('[]', '')}]]" if array else f"# [{table}]"]
            current = table
        name = info.key.rsplit(".", 1)[-1]
        note = info.meta.doc + (f" ({info.meta.unit})" if info.meta.unit else "")
        if info.range:
            note += f"; {info.range}"
        if info.meta.choices:
            note += "; one of " + ", ".join(toml_value(c) for c in info.meta.choices)
        if info.meta.secret:
            note += "; secret: better in " + (info.env or "") + "_FILE or a systemd credential"
        value = info.meta.example if info.meta.example is not None else info.default
        shown = f"{name} = {toml_value(value)}" if value is not None else f"{name} = ..."
        lines.append(f"# {shown}  # {note}")
    for name, spec in root.SECTIONS.items():
        if isinstance(spec, root.Custom):
            lines += ["", f"# [[{name}]]  # {spec.doc}"]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"
