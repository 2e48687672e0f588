"""The declarative layer every configuration section is written in.

A section is a frozen dataclass whose fields are declared with :func:`setting` (one key),
:func:`table` (a sub-table, e.g. ``[sync.mqtt]``) or :func:`tables` (an array of tables, e.g.
``[[notify.webhook]]``). :func:`build` turns a TOML table into that dataclass, checking types,
ranges and choices; an unknown key is an error with a "did you mean". :class:`Sources` lays the
environment (``FIELDPOST_<SECTION>_<KEY>``) and, for secrets, files (``…_FILE``, systemd's
``$CREDENTIALS_DIRECTORY/<section>.<key>``) over the file's values. :func:`walk` lists every key
for the generated reference (docs/config.md).

Every refusal is a :class:`SettingError` (a ConfigError) whose message names the key and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edge.errors import ConfigError

T = TypeVar("T")
ENV_PREFIX = "FIELDPOST_"
META = "fieldpost"
DOCS = "docs/config.md"
# FIELDPOST_* variables that are not configuration keys (the CLI's, the tests', the packaging's).
NOT_KEYS = frozenset({"CONFIG", "DB", "DEB", "SCREENSHOTS", "BENCH_TMP"})


class SettingError(ConfigError):
    """A configuration value is wrong: ``key`` is its dotted name, ``why`` what is wrong and the fix."""

    def __init__(self, key: str, why: str):
        self.key = key
        self.why = why
        super().__init__(f"{key}: {why}")


@dataclass(frozen=True)
class Setting:
    doc: str
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple[Any, ...] = ()
    secret: bool = False
    check: Callable[[Any], str | None] | None = None  # returns what is wrong, or None
    example: Any = None
    required: bool = False
    one_or_many: bool = False  # a list key that also takes one value alone (to = "ops@site")


@dataclass(frozen=True)
class Table:
    cls: type
    doc: str
    optional: bool = False  # absent -> None instead of the defaults


@dataclass(frozen=True)
class Tables:
    cls: type
    doc: str


def setting(
    default: Any = None,
    *,
    doc: str,
    unit: str = "",
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[Any, ...] = (),
    secret: bool = False,
    check: Callable[[Any], str | None] | None = None,
    example: Any = None,
    required: bool = False,
    one_or_many: bool = False,
) -> Any:
    """One key: its default and what a value must be (dataclass field metadata)."""
    meta = {META: Setting(doc, unit, lo, hi, tuple(choices), secret, check, example, required, one_or_many)}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta, repr=not secret)


def table(cls: type, *, doc: str, optional: bool = False) -> Any:
    """A sub-table (``[section.name]``) described by its own dataclass."""
    meta = {META: Table(cls, doc, optional)}
    if optional:
        return dataclasses.field(default=None, metadata=meta)
    return dataclasses.field(default_factory=cls, metadata=meta)


def tables(cls: type, *, doc: str) -> Any:
    """An array of tables (``[[section.name]]``), each described by ``cls``."""
    return dataclasses.field(default=(), metadata={META: Tables(cls, doc)})


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Kind:
    """What a field's annotation allows: ``base`` (bool/int/float/str/list/tuple), ``item`` for lists."""

    base: type
    item: type | None = None
    optional: bool = False

    @property
    def name(self) -> str:
        text = self.base.__name__
        if self.item is not None:
            text = f"list of {self.item.__name__}"
        return text + (" (optional)" if self.optional else "")


def _kind(annotation: Any) -> Kind:
    optional = False
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        (annotation,) = rest
        args = typing.get_args(annotation)
        origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return Kind(origin, args[0], optional)
    return Kind(annotation, None, optional)


_HINTS: dict[type, dict[str, Any]] = {}


def hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def fields(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Any]]:
    """The declared fields of a section class with their metadata (Setting, Table or Tables)."""
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(META)
        if meta is not None:
            yield f, meta


def bounds(cls: type, name: str) -> tuple[float | None, float | None]:
    """The range a key allows (for forms that take the same value, e.g. the panel's settings)."""
    for f, meta in fields(cls):
        if f.name == name and isinstance(meta, Setting):
            return meta.lo, meta.hi
    raise KeyError(name)


def default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


# --------------------------------------------------------------------------- build


def _fix(key: str, meta: Setting, kind: Kind) -> str:
    what = _allowed(meta, kind)
    return f"fix: set {key} to {what} (see {DOCS})"


def _allowed(meta: Setting, kind: Kind) -> str:
    if meta.choices:
        return "one of " + ", ".join(repr(c) for c in meta.choices)
    text = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(
        kind.base, f"a list of {kind.item.__name__ if kind.item else 'values'}"
    )
    if meta.lo is not None or meta.hi is not None:
        text += f" in {_num(meta.lo)} .. {_num(meta.hi)}"
    return text


def _num(value: float | None) -> str:
    if value is None:
        return "any"
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else str(value)


def _typed(key: str, value: Any, base: type, meta: Setting, kind: Kind) -> Any:
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, base) and not (base is not bool and isinstance(value, bool))
    if not ok:
        raise SettingError(
            key, f"{value!r} is {type(value).__name__}, expected {kind.name}; {_fix(key, meta, kind)}"
        )
    if base is float and not math.isfinite(value):
        raise SettingError(key, f"{value!r} is not a finite number; {_fix(key, meta, kind)}")
    if base in (int, float):
        if (meta.lo is not None and value < meta.lo) or (meta.hi is not None and value > meta.hi):
            raise SettingError(
                key, f"{value!r} is outside {_num(meta.lo)} .. {_num(meta.hi)}; {_fix(key, meta, kind)}"
            )
    if meta.choices and value not in meta.choices:
        raise SettingError(
            key, f"{value!r} is not one of {', '.join(map(repr, meta.choices))}; {_fix(key, meta, kind)}"
        )
    return value


def check_value(key: str, value: Any, annotation: Any, meta: Setting) -> Any:
    """``value`` as the field wants it (ints widened to float, lists of the item type), or SettingError."""
    kind = _kind(annotation)
    if value is None or (kind.optional and kind.base is str and value == ""):
        if kind.optional:
            return None
        raise SettingError(key, f"required; {_fix(key, meta, kind)}")
    if kind.item is not None:
        if meta.one_or_many and not isinstance(value, (list, tuple)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise SettingError(
                key, f"{value!r} is {type(value).__name__}, expected {kind.name}; {_fix(key, meta, kind)}"
            )
        items = [_typed(f"{key}[{i}]", v, kind.item, meta, kind) for i, v in enumerate(value)]
        value = kind.base(items)
    else:
        value = _typed(key, value, kind.base, meta, kind)
    if meta.check is not None:
        why = meta.check(value)
        if why:
            fix = "" if "fix:" in why else f"; fix: correct it (see {DOCS})"
            shown = "" if why.startswith(repr(value)) else f"{value!r} "
            raise SettingError(key, f"{shown}{why}{fix}")
    return value


def suggest(word: str, known: typing.Iterable[str], shape: str = "{}") -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"did you mean {shape.format(close[0])}? " if close else ""


def build(cls: type[T], raw: Any, where: str, origins: Mapping[str, str] | None = None) -> T:
    """The frozen ``cls`` from the TOML table ``raw``; ``where`` is its dotted name (``sync.mqtt``).

    ``origins`` maps a dotted key to where its value came from (an environment variable...),
    so a bad value names its source.
    """
    origins = origins or {}
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SettingError(where, f"must be a table ([{where}]), not {type(raw).__name__}; fix: see {DOCS}")
    known = {f.name: (f, meta) for f, meta in fields(cls)}
    for name in raw:
        if name not in known:
            raise SettingError(
                f"{where}.{name}",
                f"unknown key; {suggest(name, known)}fix: correct or remove it (every key of [{where}]"
                f" is listed in {DOCS}#{where.split('.')[0]})",
            )
    values: dict[str, Any] = {}
    types_ = hints(cls)
    for name, (_f, meta) in known.items():
        key = f"{where}.{name}"
        if name not in raw:
            if isinstance(meta, Setting) and meta.required:
                raise SettingError(key, f"required; fix: add {name} = ... to [{where}] (see {DOCS})")
            if isinstance(meta, Table) and not meta.optional:
                values[name] = build(meta.cls, {}, key, origins)
            continue
        value = raw[name]
        if isinstance(meta, Table):
            values[name] = build(meta.cls, value, key, origins)
        elif isinstance(meta, Tables):
            if isinstance(value, Mapping):
                value = [value]
            if not isinstance(value, list):
                raise SettingError(key, f"must be an array of tables ([[{key}]]); fix: see {DOCS}")
            values[name] = tuple(
                build(meta.cls, item, f"{key}[{i}]", origins) for i, item in enumerate(value)
            )
        else:
            shown = f"{key} (from {origins[key]})" if key in origins else key
            values[name] = check_value(shown, value, types_[name], meta)
    obj = cls(**values)
    finish = getattr(obj, "validate", None)
    if finish is not None:
        finish()
    return obj


def as_raw(obj: Any, *, secrets: bool = False) -> dict[str, Any]:
    """A section back as a TOML-ready table: None values left out; secrets left out unless asked."""
    out: dict[str, Any] = {}
    for f, meta in fields(type(obj)):
        value = getattr(obj, f.name)
        if value is None or (isinstance(meta, Setting) and meta.secret and not secrets):
            continue
        if isinstance(meta, Table):
            out[f.name] = as_raw(value, secrets=secrets)
        elif isinstance(meta, Tables):
            out[f.name] = [as_raw(v, secrets=secrets) for v in value]
        else:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


# --------------------------------------------------------------------------- walk (docs)


@dataclass(frozen=True)
class KeyInfo:
    section: str
    key: str  # dotted inside the section: "mqtt.tls.ca_file", "webhook[].url"
    kind: Kind
    default: Any
    meta: Setting

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str | None:
        """The environment variable that sets it (None inside an array of tables)."""
        if "[]" in self.key:
            return None
        return (ENV_PREFIX + self.section + "_" + self.key.replace(".", "_")).upper()

    @property
    def range(self) -> str:
        if self.meta.lo is None and self.meta.hi is None:
            return ""
        return f"{_num(self.meta.lo)} .. {_num(self.meta.hi)}"


def walk_class(cls: type, section: str, prefix: str = "") -> Iterator[KeyInfo]:
    types_ = hints(cls)
    for f, meta in fields(cls):
        if isinstance(meta, Table):
            yield from walk_class(meta.cls, section, f"{prefix}{f.name}.")
        elif isinstance(meta, Tables):
            yield from walk_class(meta.cls, section, f"{prefix}{f.name}[].")
        else:
            yield KeyInfo(section, prefix + f.name, _kind(types_[f.name]), default_of(f), meta)


def tables_of(cls: type, prefix: str = "") -> Iterator[tuple[str, Table | Tables]]:
    """The sub-tables of a section class, dotted (for the reference's headings)."""
    for f, meta in fields(cls):
        if isinstance(meta, (Table, Tables)):
            name = prefix + f.name
            yield name, meta
            yield from tables_of(meta.cls, name + ("[]." if isinstance(meta, Tables) else "."))


# --------------------------------------------------------------------------- sources


def parse_text(where: str, text: str, kind: Kind) -> Any:
    """An environment variable's text as the key's type (lists: comma-separated)."""
    try:
        if kind.item is not None:
            return [kind.item(p.strip()) for p in text.split(",") if p.strip()]
        if kind.base is bool:
            if text.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if text.strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind.optional and text == "":
            return None
        return kind.base(text)
    except ValueError:
        raise SettingError(
            where,
            f"{text!r} is not a valid {kind.base.__name__}; fix: set it to {_allowed(Setting(''), kind)}",
        ) from None


class Sources:
    """The environment and credential files, laid over the file's tables.

    ``FIELDPOST_<SECTION>_<KEY>`` sets any key (it wins over the file); a secret may instead come
    from ``FIELDPOST_<SECTION>_<KEY>_FILE`` or ``$CREDENTIALS_DIRECTORY/<section>.<key>`` (systemd's
    LoadCredential=), and a secret given two ways is an error naming both.
    """

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        creds = env.get("CREDENTIALS_DIRECTORY")
        self.credentials = Path(creds) if creds else None

    def overlay(
        self, data: Mapping[str, Any], keys: list[KeyInfo], file_label: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """``data`` with every value the environment gives set in; and where each came from."""
        merged: dict[str, Any] = {k: _copy(v) for k, v in data.items()}
        origins: dict[str, str] = {}
        for info in keys:
            if info.env is None:
                continue
            found = self._found(info, data, file_label)
            if not found:
                continue
            if info.meta.secret and len(found) > 1:
                places = " and ".join(label for label, _ in found)
                raise SettingError(
                    info.dotted,
                    f"a secret given twice, in {places}; fix: keep only one (a credential file is best)",
                )
            label, value = found[-1]
            if label == file_label:
                continue
            origins[info.dotted] = label
            _set(merged, [info.section, *info.key.split(".")], value)
        return merged, origins

    def _found(self, info: KeyInfo, data: Mapping[str, Any], file_label: str) -> list[tuple[str, Any]]:
        found: list[tuple[str, Any]] = []
        if _has(data, [info.section, *info.key.split(".")]):
            found.append((file_label, None))
        env = info.env or ""
        if env in self.env:
            found.append((env, parse_text(f"{info.dotted} (from {env})", self.env[env], info.kind)))
        if info.meta.secret:
            file_var = env + "_FILE"
            if file_var in self.env:
                path = Path(self.env[file_var])
                found.append((f"{file_var} ({path})", _read_secret(info, path, file_var)))
            if self.credentials is not None:
                path = self.credentials / info.dotted
                if path.is_file():
                    found.append(
                        (f"the credential {path}", _read_secret(info, path, "CREDENTIALS_DIRECTORY"))
                    )
        return found

    def check_names(self, keys: list[KeyInfo], sections: typing.Iterable[str]) -> None:
        """A ``FIELDPOST_*`` variable that looks like a key but is none is an error (a typo)."""
        names = {i.env for i in keys if i.env}
        names |= {f"{i.env}_FILE" for i in keys if i.env and i.meta.secret}
        upper = [s.upper() for s in sections]
        for var in sorted(self.env):
            if not var.startswith(ENV_PREFIX) or var in names or var[len(ENV_PREFIX) :] in NOT_KEYS:
                continue
            rest = var[len(ENV_PREFIX) :]
            first = rest.split("_", 1)[0]
            if any(rest.startswith(s + "_") for s in upper) or difflib.get_close_matches(
                first, upper, cutoff=0.7
            ):
                raise SettingError(
                    var,
                    f"no such setting; {suggest(var, names)}fix: correct or unset it"
                    f" (FIELDPOST_<SECTION>_<KEY>, every name is in {DOCS})",
                )


def _read_secret(info: KeyInfo, path: Path, via: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingError(
            info.dotted,
            f"cannot read the secret file {path} (from {via}): {exc.strerror}; fix: check the path",
        ) from None
    return parse_text(f"{info.dotted} (from {path})", text.rstrip("\r\n"), info.kind)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _has(data: Mapping[str, Any], path: list[str]) -> bool:
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _set(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value
