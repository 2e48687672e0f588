"""The whole configuration: every section, read from embedded defaults < the file < the environment.

The file is /etc/fieldpost/fieldpost.toml unless ``--config`` (or FIELDPOST_CONFIG) names
another; a missing default file just means "all defaults". ``FIELDPOST_<SECTION>_<KEY>`` sets
one key (``FIELDPOST_INGEST_HIGH_WATER=50000``, ``FIELDPOST_LINK_PORTS=/dev/ttyUSB0,/dev/ttyUSB1``);
secrets may also come from files (edge.config.schema.Sources). Each area declares its own section
where it lives; :data:`SECTIONS` lists them all. An unknown section or key is an error.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.backup.config import BackupConfig
from edge.config.core import EdgeSection, GpioSection, HttpSection, IngestSection, LinkSection, LogSection
from edge.config.schema import DOCS, KeyInfo, SettingError, Sources, build, suggest, walk_class
from edge.errors import ConfigError, ValidationError
from edge.fuota.config import UpdatesSection
from edge.homeassistant.config import HomeAssistantConfig
from edge.lorawan.settings import LoRaWANSettings
from edge.notify.config import NotifySection
from edge.rules.model import Rule, parse_rules
from edge.sources.config import SourcesConfig
from edge.store.retention import RetentionSection
from edge.sync.config import SyncConfig
from webui.config import WebuiSection


@dataclass(frozen=True)
class Custom:
    """A section with its own validator instead of a dataclass (``[[rules]]``: edge.rules.model)."""

    parse: Callable[[Any], Any]
    to_raw: Callable[[Any], Any]
    doc: str
    default: Any = ()


def _parse_rules(tables: Any) -> tuple[Rule, ...]:
    try:
        return tuple(parse_rules(tables))
    except ValidationError as exc:
        raise SettingError(exc.field, f"{exc.message}; fix: see docs/rules.md") from None


RULES = Custom(
    _parse_rules,
    lambda rules: [r.to_definition() for r in rules],
    "Local alarm rules, an array of tables ([[rules]]); every field is described in docs/rules.md",
)

# Every section: its name in the file -> the dataclass (edge.config.schema) or Custom that checks it.
SECTIONS: dict[str, Any] = {
    "edge": EdgeSection,
    "link": LinkSection,
    "ingest": IngestSection,
    "http": HttpSection,
    "log": LogSection,
    "gpio": GpioSection,
    "sync": SyncConfig,
    "retention": RetentionSection,
    "notify": NotifySection,
    "webui": WebuiSection,
    "sources": SourcesConfig,
    "backup": BackupConfig,
    "homeassistant": HomeAssistantConfig,
    "lorawan": LoRaWANSettings,
    "updates": UpdatesSection,
    "rules": RULES,
}


@dataclass(frozen=True)
class Config:
    edge: EdgeSection = field(default_factory=EdgeSection)
    link: LinkSection = field(default_factory=LinkSection)
    ingest: IngestSection = field(default_factory=IngestSection)
    http: HttpSection = field(default_factory=HttpSection)
    log: LogSection = field(default_factory=LogSection)
    gpio: GpioSection = field(default_factory=GpioSection)
    sync: SyncConfig = field(default_factory=SyncConfig)
    retention: RetentionSection = field(default_factory=RetentionSection)
    notify: NotifySection = field(default_factory=NotifySection)
    webui: WebuiSection = field(default_factory=WebuiSection)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    lorawan: LoRaWANSettings = field(default_factory=LoRaWANSettings)
    updates: UpdatesSection = field(default_factory=UpdatesSection)
    rules: tuple[Rule, ...] = ()
    path: Path | None = None  # the file it came from, if any
    given: frozenset[str] = frozenset()  # sections present in the file or the environment
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the tables as given

    def section(self, name: str) -> dict[str, Any]:
        """A section's table as given (empty when absent); the checked values are the attributes."""
        value = self.raw.get(name, {})
        return dict(value) if isinstance(value, Mapping) else {}

    @property
    def extra(self) -> Mapping[str, Any]:
        """Every table as given (file and environment), by section name: for an area that still
        validates its own section; the checked values are the attributes."""
        return self.raw


def keys() -> list[KeyInfo]:
    """Every key of every section (for the environment, the reference and the example)."""
    out: list[KeyInfo] = []
    for name, spec in SECTIONS.items():
        if isinstance(spec, type):
            out.extend(walk_class(spec, name))
    return out


def walk() -> Iterator[KeyInfo]:
    yield from keys()


def load(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Read the configuration. ``path`` None: FIELDPOST_CONFIG, else the default file if present."""
    import edge.config as package  # DEFAULT_PATH lives there (tests point it elsewhere)

    env = os.environ if env is None else env
    explicit = path is not None or "FIELDPOST_CONFIG" in env
    file = Path(path if path is not None else env.get("FIELDPOST_CONFIG", package.DEFAULT_PATH))
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{file}: no such configuration file") from None
        return from_dict({}, env=env, path=None)  # no default file: every key at its default
    except PermissionError as exc:
        # e.g. a config readable by root only, or a folder the user may not enter: never fall back to
        # the defaults then, and say how the service's user gets to read it
        raise ConfigError(
            f"{file}: cannot read: {exc.strerror}; fix: make it readable by the user running fieldpost "
            f"(sudo chgrp fieldpost {file} && sudo chmod 0640 {file}, and its folder 0750 root:fieldpost), "
            "or run `sudo fieldpost init`"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}; fix: correct the syntax there") from None
    return from_dict(data, env=env, path=file)


def from_dict(
    data: Mapping[str, Any], *, env: Mapping[str, str] | None = None, path: Path | None = None
) -> Config:
    """Check ``data`` (the file's tables) with ``env`` laid over it; ConfigError names the first bad key."""
    env = {} if env is None else env
    for name in data:
        if name not in SECTIONS:
            raise SettingError(
                f"[{name}]",
                f"unknown section; {suggest(name, SECTIONS, '[{}]')}fix: correct or remove it"
                f" (every section is listed in {DOCS})",
            )
    every = keys()
    outside = Sources(env)
    outside.check_names(every, SECTIONS)
    merged, origins = outside.overlay(data, every, str(path) if path else "the configuration")
    values: dict[str, Any] = {}
    for name, spec in SECTIONS.items():
        raw = merged.get(name)
        if isinstance(spec, Custom):
            values[name] = spec.parse(raw) if raw is not None else spec.default
            continue
        if name == "sync":  # the site's name is [edge] site unless [sync] names another
            raw = dict(raw) if isinstance(raw, Mapping) else raw
            if isinstance(raw, dict) and "site" not in raw:
                raw["site"] = values["edge"].site
        values[name] = build(spec, raw, name, origins)
    return Config(**values, path=path, given=frozenset(merged), raw=merged)


def replace_db(config: Config, db: str) -> Config:
    """The same configuration with another database file (``fieldpost --db``)."""
    return dataclasses.replace(config, edge=dataclasses.replace(config.edge, db=db))


def check_db_folder(config: Config, *, create: bool = False) -> None:
    """The database's folder must exist (a typo'd path must not start an empty database elsewhere).

    ``create``: make it instead (``fieldpost run --create``; ``fieldpost init`` makes its own).
    """
    folder = Path(config.edge.db).parent
    if folder.is_dir():
        return
    if create:
        folder.mkdir(parents=True, exist_ok=True)
        return
    raise SettingError(
        "edge.db",
        f"{config.edge.db!r}: its folder {folder} does not exist; fix: correct edge.db, or create it with"
        " `sudo fieldpost init` (or `fieldpost run --create`)",
    )
