import pytest

from edge import config
from edge.errors import ConfigError


def test_defaults_without_a_file(tmp_path):
    cfg = config.from_dict({})
    assert cfg.ingest.high_water == 500_000
    assert cfg.link.discover is True
    assert "10c4:ea60" in cfg.link.usb_ids
    assert cfg.http.host == "127.0.0.1"


def test_missing_default_file_means_defaults(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "DEFAULT_PATH", tmp_path / "absent.toml")
    assert config.load(env={}).path is None


def test_file_env_and_precedence(tmp_path):
    path = tmp_path / "fp.toml"
    path.write_text(
        '[edge]\ndb = "/data/fp.db"\n[ingest]\nhigh_water = 10\n[link]\nports = ["/dev/ttyUSB0"]\n'
        '[sync]\nsink = "mqtt"\n'
    )
    cfg = config.load(
        path,
        env={
            "FIELDPOST_INGEST_HIGH_WATER": "20",
            "FIELDPOST_LINK_DISCOVER": "no",
            "FIELDPOST_LINK_PORTS": "/dev/a, /dev/b",
        },
    )
    assert cfg.edge.db == "/data/fp.db"
    assert cfg.ingest.high_water == 20
    assert cfg.link.discover is False
    assert cfg.link.ports == ["/dev/a", "/dev/b"]
    assert cfg.section("sync") == {"sink": "mqtt"}  # other areas' sections pass through
    assert cfg.path == path


def test_config_env_names_the_file(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("[http]\nport = 0\n")
    assert config.load(env={"FIELDPOST_CONFIG": str(path)}).http.port == 0


@pytest.mark.parametrize(
    "text, env, message",
    [
        ("[ingest]\nhigh_water = 'many'\n", {}, "ingest.high_water: 'many' is str, expected int"),
        ("[ingest]\nhigh_water = 0\n", {}, "ingest.high_water: 0 must be >= 1"),
        ("[link]\nbaudrate = true\n", {}, "link.baudrate: True is bool, expected int"),
        ("[link]\nusb_ids = ['zz']\n", {}, "link.usb_ids"),
        ("[link]\nspeed = 9600\n", {}, "link.speed: unknown key"),
        ("[http]\nport = 70000\n", {}, "http.port: 70000 must be 0 .. 65535"),
        ("[log]\nlevel = 'LOUD'\n", {}, "log.level"),
        ("edge = 3\n", {}, "[edge]: must be a table"),
        ("[edge\n", {}, "not valid TOML"),
        ("", {"FIELDPOST_INGEST_BATCH_MAX": "lots"}, "ingest.batch_max (from FIELDPOST_INGEST_BATCH_MAX)"),
        ("", {"FIELDPOST_LINK_DISCOVER": "maybe"}, "FIELDPOST_LINK_DISCOVER"),
        ("[ingest]\nhigh_water = 5\nlow_water = 9\n", {}, "ingest.low_water: must be <= ingest.high_water"),
    ],
)
def test_bad_values_name_key_and_why(tmp_path, text, env, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(path, env=env)
    assert message in str(err.value)


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.load(tmp_path / "nope.toml", env={})


def test_example_file_parses_to_defaults(tmp_path):
    path = tmp_path / "example.toml"
    path.write_text(config.example())
    assert config.load(path, env={}).ingest == config.from_dict({}).ingest
