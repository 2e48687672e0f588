"""The configuration schema: every key through every source, the generated reference, bad configs."""

import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

from edge import cli, config
from edge.config import reference, render, root
from edge.config.schema import KeyInfo
from edge.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

# Keys that only make sense with another one set: what each needs besides itself.
NEEDS = {
    "sync.mqtt.password": {"sync": {"mqtt": {"username": "u"}}},
    "sync.mqtt.tls.key_file": {"sync": {"mqtt": {"tls": {"cert_file": "PEM"}}}},
    "sync.https.key_file": {"sync": {"https": {"cert_file": "PEM"}}},
    "sync.sink": {"sync": {"https": {"url": "https://ingest.example.org/v1"}}},
    "sources.chirpstack.ca_file": {"sources": {"chirpstack": {"tls": True}}},
    "sources.chirpstack.cert_file": {"sources": {"chirpstack": {"tls": True, "key_file": "PEM"}}},
    "sources.chirpstack.key_file": {"sources": {"chirpstack": {"tls": True, "cert_file": "PEM"}}},
}
EMAIL = {"notify": {"email": {"host": "smtp.example.org", "to": ["ops@example.org"]}}}


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _nest(info: KeyInfo, value) -> dict:
    node: dict = {}
    doc = {info.section: node}
    parts = info.key.split(".")
    for part in parts[:-1]:
        node[part] = node = {}
    node[parts[-1]] = value
    return doc


def _get(cfg, info: KeyInfo):
    node = getattr(cfg, info.section)
    for part in info.key.split("."):
        node = getattr(node, part)
    return list(node) if isinstance(node, tuple) else node  # list keys may be kept as tuples


def _base(info: KeyInfo, pem: Path) -> dict:
    base = json.loads(json.dumps(NEEDS.get(info.dotted, {})).replace('"PEM"', json.dumps(str(pem))))
    if info.dotted.startswith("notify.email."):
        base = _merge(EMAIL, base)
    return base


def _candidates(info: KeyInfo, pem: Path) -> list:
    kind, meta = info.kind, info.meta
    if meta.choices:
        return list(meta.choices)
    if meta.example is not None:  # a key with a format of its own (an EUI) says what a value looks like
        return [meta.example]
    if kind.base is bool:
        return [not info.default]
    if kind.base in (int, float):
        lo = meta.lo if meta.lo is not None else 0
        hi = meta.hi if meta.hi is not None else lo + 1000
        raw = [lo + 1, (lo + hi) / 2, hi, lo, 7]
        return [int(v) if kind.base is int else float(v) for v in raw]
    if kind.item is not None:
        return [["/dev/ttyUSB7"], ["0403:6001"], ["raised"], ["ops@example.org"]]
    return [
        "farm-north",
        str(pem),
        str(REPO / "hardware" / "pi" / "gpio.json"),
        "https://ingest.example.org/v2",
        "30 per minute",
        "DEBUG",
        "a@b.example",
        "critical",
        "raw",
        "127.0.0.1",
    ]


def _value_for(info: KeyInfo, pem: Path):
    """A valid value other than the default for this key alone (with what it needs)."""
    for value in _candidates(info, pem):
        if value == info.default:
            continue
        try:
            got = _get(config.from_dict(_merge(_base(info, pem), _nest(info, value)), env={}), info)
        except ConfigError:
            continue
        if got == value:
            return value
    pytest.fail(f"{info.dotted}: found no valid non-default value to try")


def _env_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


ROUND_TRIP_KEYS = [i for i in root.keys() if i.env is not None]


@pytest.mark.parametrize("info", ROUND_TRIP_KEYS, ids=[i.dotted for i in ROUND_TRIP_KEYS])
def test_every_key_round_trips_through_toml_env_files_and_fieldpost_config(tmp_path, info):
    pem = tmp_path / "client.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    value = _value_for(info, pem)
    base = _base(info, pem)
    base = _merge({"edge": {"db": str(tmp_path / "fp.db")}}, base)

    # the file, written by tomli-w and read back
    path = tmp_path / "fp.toml"
    path.write_text(render.dumps(_merge(base, _nest(info, value))))
    from_file = config.load(path, env={})
    assert _get(from_file, info) == value

    # the environment (and, for a secret, a _FILE and a systemd credential), over a file without it
    plain = tmp_path / "plain.toml"
    plain.write_text(render.dumps(base))
    assert _get(config.load(plain, env={info.env: _env_text(value)}), info) == value
    if info.meta.secret:
        secret = tmp_path / "secret.txt"
        secret.write_text(_env_text(value) + "\n")
        assert _get(config.load(plain, env={f"{info.env}_FILE": str(secret)}), info) == value
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / info.dotted).write_text(_env_text(value))
        assert _get(config.load(plain, env={"CREDENTIALS_DIRECTORY": str(creds)}), info) == value
        with pytest.raises(ConfigError, match=rf"{info.dotted}: a secret given twice, in {path}"):
            config.load(path, env={f"{info.env}_FILE": str(secret)})

    # `fieldpost config --json` shows it (a secret only as "set"), and its TOML output loads back
    result = CliRunner().invoke(cli.main, ["--config", str(path), "config", "--json"], env={})
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    if info.meta.secret:
        assert shown["secrets"][info.dotted] == "set"
        assert str(value) not in result.output
    else:
        node = shown["sections"]
        for part in [info.section, *info.key.split(".")]:
            node = node[part]
        assert node == value
        text = CliRunner().invoke(cli.main, ["--config", str(path), "config"], env={}).output
        again = tmp_path / "again.toml"
        again.write_text(text)
        assert _get(config.load(again, env={}), info) == value


def test_documented_keys_are_the_schema(tmp_path):
    """docs/config.md is generated from the schema; a key missing there or extra there fails here."""
    assert reference.main(["--check"]) == 0, "run: python -m edge.config.reference"
    text = (REPO / "docs" / "config.md").read_text()
    for info in root.keys():
        assert f"`{info.key.rsplit('.', 1)[-1]}`" in text and (info.env is None or info.env in text)
    documented = {
        line.split("`")[1]
        for line in text.splitlines()
        if line.startswith("| `") and not line.startswith("| Key")
    }
    assert documented == {i.key.rsplit(".", 1)[-1] for i in root.keys()}
    for page in ("cli.md", "sync.md"):
        assert "config.md" in (REPO / "docs" / page).read_text(), f"docs/{page} should link the reference"


def test_example_is_commented_valid_toml_at_the_defaults(tmp_path):
    text = render.example()
    path = tmp_path / "example.toml"
    path.write_text(text)
    assert config.load(path, env={}) == config.from_dict({}, env={}, path=path)
    # uncommented (but the optional e-mail table, the arrays of tables and keys without a default)
    out, skip = [], False
    for line in text.splitlines():
        body = line[2:].split("  # ")[0]
        if body.startswith("["):
            skip = body.startswith("[[") or body == "[notify.email]"
            if not skip:
                out.append(body)
        elif line.startswith("# ") and " = " in body and not skip and not body.endswith("= ..."):
            out.append(body)
    cfg = config.from_dict(tomllib.loads("\n".join(out)), env={})
    examples = {
        "edge": {"site": "farm-north"},
        "sync": {"site": "site", "https": {"url": "https://ingest.example.org/v1"}},
    }
    assert cfg.ingest == config.from_dict({}).ingest and cfg.sync == config.from_dict(examples).sync
    assert {"edge", "sync", "webui", "notify"} <= cfg.given


def test_unknown_sections_keys_and_env_names_suggest_the_right_one():
    cases = [
        ({"ingset": {}}, {}, "[ingset]: unknown section; did you mean [ingest]?"),
        ({"lnk": {}}, {}, "did you mean [link]?"),
        ({"ingest": {"batch_mx": 5}}, {}, "ingest.batch_mx: unknown key; did you mean batch_max?"),
        ({"sync": {"mqtt": {"hots": "x"}}}, {}, "sync.mqtt.hots: unknown key; did you mean host?"),
        ({}, {"FIELDPOST_INGEST_HIGHWATER": "5"}, "did you mean FIELDPOST_INGEST_HIGH_WATER?"),
        ({}, {"FIELDPOST_INGSET_BATCH_MAX": "5"}, "FIELDPOST_INGSET_BATCH_MAX: no such setting"),
    ]
    for data, env, message in cases:
        with pytest.raises(ConfigError) as err:
            config.from_dict(data, env=env)
        assert message in str(err.value) and "fix:" in str(err.value)
    # variables that are not keys are left alone
    config.from_dict({}, env={"FIELDPOST_CONFIG": "x", "FIELDPOST_DEB": "y", "FIELDPOST_SOMETHING_ELSE": "z"})


def test_given_records_the_sections_present_and_sync_takes_the_site():
    cfg = config.from_dict({"edge": {"site": "north"}, "sync": {}}, env={"FIELDPOST_WEBUI_PORT": "9"})
    assert cfg.given == {"edge", "sync", "webui"} and cfg.webui.port == 9
    assert cfg.sync.site == "north" and cfg.sync.mqtt.port == 8883
    assert "sync" not in config.from_dict({}).given
    plain = config.from_dict({"sync": {"mqtt": {"host": "127.0.0.1", "tls": {"enabled": False}}}})
    assert plain.sync.mqtt.port == 1883


def test_missing_default_file_means_defaults(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "DEFAULT_PATH", tmp_path / "absent.toml")
    assert config.load(env={}).path is None


def test_explicit_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.load(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[edge\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad, env={})


def test_a_newline_in_a_string_is_written_as_valid_toml_but_refused_as_a_site(tmp_path):
    path = tmp_path / "fp.toml"
    path.write_text(render.dumps({"webui": {"tls_cert": 'a"b\nc'}}))
    assert config.load(path, env={}).webui.tls_cert == 'a"b\nc'
    path.write_text(tomli_w.dumps({"edge": {"site": "north\n[sync]"}}))
    with pytest.raises(ConfigError, match=r"edge\.site: .* control characters"):
        config.load(path, env={})


# --------------------------------------------------------------------------- bad configs, real processes

BAD = [
    ("misspelled section", "[ingset]\nbatch_max = 5\n", {}, ["[ingset]", "did you mean [ingest]", "fix:"]),
    ("misspelled section 2", "[lnk]\nports = []\n", {}, ["[lnk]", "did you mean [link]", "fix:"]),
    ("misspelled key", "[ingest]\nbatch_mx = 5\n", {}, ["ingest.batch_mx", "did you mean batch_max", "fix:"]),
    ("wrong type", "[ingest]\nhigh_water = 'many'\n", {}, ["ingest.high_water", "expected int", "fix: set"]),
    ("out of range", "[http]\nport = 70000\n", {}, ["http.port", "0 .. 65535", "fix: set"]),
    ("bad choice", "[sync]\nsink = 'ftp'\n", {}, ["sync.sink", "'mqtt', 'https'", "fix: set"]),
    ("bad level", "[log]\nlevel = 'LOUD'\n", {}, ["log.level", "DEBUG, INFO", "fix:"]),
    ("missing directory", None, {}, ["edge.db", "does not exist", "fix:", "fieldpost init"]),
    (
        "secret given both ways",
        "[sync.mqtt]\nusername = 'u'\npassword = 'p'\n",
        {"FIELDPOST_SYNC_MQTT_PASSWORD_FILE": "SECRET"},
        ["sync.mqtt.password", "given twice", "FIELDPOST_SYNC_MQTT_PASSWORD_FILE", "fix:"],
    ),
    (
        "env typo",
        "",
        {"FIELDPOST_INGEST_HIGHWATER": "5"},
        ["FIELDPOST_INGEST_HIGHWATER", "HIGH_WATER", "fix:"],
    ),
    (
        "env wrong type",
        "",
        {"FIELDPOST_LINK_WINDOW": "lots"},
        ["link.window (from FIELDPOST_LINK_WINDOW)", "fix:"],
    ),
    ("webui", "[webui]\nthreads = 1\n", {}, ["webui.threads", "2 .. 256", "fix:"]),
    ("rules", "[[rules]]\nname = 'x'\nkind = 'eval'\n", {}, ["rules[0].kind", "fix:", "docs/rules.md"]),
    ("notify", "[notify.email]\nhost = 'h'\nto = ['nobody']\n", {}, ["notify.email.to", "e-mail", "fix:"]),
    ("retention", "[retention]\nmax_db_bytes = 1\n", {}, ["retention.max_db_bytes", "fix:"]),
    (
        "missing file",
        "[sync.mqtt.tls]\nca_file = '/nonexistent/ca.pem'\n",
        {},
        ["sync.mqtt.tls.ca_file", "fix:"],
    ),
    ("control character", '[edge]\nsite = "a\\nb"\n', {}, ["edge.site", "control characters", "fix:"]),
]


def _bad_setup(tmp_path: Path, text: str | None, env: dict) -> tuple[Path, dict]:
    db = tmp_path / "fp.db" if text is not None else tmp_path / "typo" / "fp.db"
    head = f'[edge]\ndb = "{db}"\n' if "[edge]" not in (text or "") else ""
    path = tmp_path / "fp.toml"
    text = text or ""
    if "[edge]" in text:
        text = text.replace("[edge]\n", f'[edge]\ndb = "{db}"\n')
    tail = "[link]\ndiscover = false\n" + ("" if "[http]" in text else "[http]\nport = 0\n")
    path.write_text(head + text + tail)
    secret = tmp_path / "secret"
    secret.write_text("p")
    full = {k: v for k, v in os.environ.items() if not k.startswith("FIELDPOST_")}
    full.update({k: str(secret) if v == "SECRET" else v for k, v in env.items()})
    return path, full


def test_bad_configs_are_refused_by_config_and_run_naming_key_and_fix(tmp_path):
    procs = []
    for i, (name, text, env, needles) in enumerate(BAD):
        folder = tmp_path / str(i)
        folder.mkdir()
        path, full = _bad_setup(folder, text, env)
        for command in (["config"], ["run"]):
            argv = [sys.executable, "-m", "edge", "--config", str(path), *command]
            proc = subprocess.Popen(
                argv, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            procs.append((name, command[0], needles, proc))
    failures = []
    for name, command, needles, proc in procs:
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            failures.append(f"{name}: `{command}` did not stop (it accepted the config)")
            continue
        if proc.returncode == 0 or not all(n in out for n in needles):
            failures.append(f"{name}: `{command}` exit {proc.returncode}, output {out!r}")
    assert not failures, "\n".join(failures)


def test_run_create_makes_the_db_folder_and_config_checks_it(tmp_path):
    db = tmp_path / "new" / "fp.db"
    cfg = config.from_dict({"edge": {"db": str(db)}}, env={})
    with pytest.raises(ConfigError, match=r"edge\.db: .* does not exist; fix: "):
        config.check_db_folder(cfg)
    config.check_db_folder(cfg, create=True)
    assert db.parent.is_dir()
    config.check_db_folder(cfg)


def test_float_keys_take_integers_and_refuse_nan():
    assert config.from_dict({"ingest": {"batch_wait_ms": 3}}).ingest.batch_wait_ms == 3.0
    with pytest.raises(ConfigError, match="ingest.batch_wait_ms"):
        config.from_dict({"ingest": {"batch_wait_ms": math.nan}})


def test_gpio_pin_map_is_checked_when_the_config_is(tmp_path):
    bad = tmp_path / "gpio.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match=r"gpio\.map: .*fix: "):
        config.from_dict({"gpio": {"map": str(bad)}})
    good = REPO / "hardware" / "pi" / "gpio.json"
    assert config.from_dict({"gpio": {"map": str(good)}}).gpio.map == str(good)
