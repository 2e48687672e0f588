"""Pure parts of provisioning: identity, config.json, manifests, command wiring."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edge.errors import ValidationError
from provisioning.manifest import read_manifest
from provisioning.module import ModuleSpec, check_spec, choose_identity, config_bytes, module_config
from provisioning.schema import REPO_ROOT

PROFILE = {"name": "heltec_v2", "region": "EU868"}


def spec(**kw):
    return ModuleSpec(**{"port": "/dev/ttyUSB0", "board": "heltec_v2", "role": "node", **kw})


def test_blank_module_gets_a_new_identity():
    device_id, key, new = choose_identity(spec(), {})
    assert len(device_id) == 16 and len(key) == 16 and new


def test_module_keeps_its_identity_unless_rotated():
    old = {"id": "0123456789abcdef", "key": "00" * 16}
    assert choose_identity(spec(), old) == ("0123456789abcdef", bytes(16), False)
    device_id, key, new = choose_identity(spec(rotate_key=True), old)
    assert device_id == "0123456789abcdef" and key != bytes(16) and new


def test_a_new_id_never_reuses_the_old_key():
    old = {"id": "0123456789abcdef", "key": "00" * 16}
    device_id, key, new = choose_identity(spec(device_id="fedcba9876543210"), old)
    assert device_id == "fedcba9876543210" and key != bytes(16) and new


def test_config_keeps_module_settings_and_is_stable():
    old = {"id": "0123456789abcdef", "key": "00" * 16, "interval": 60, "air": {"port": 7000}}
    cfg = module_config(spec(), PROFILE, old, "0123456789abcdef", bytes(16))
    assert cfg == {
        "id": "0123456789abcdef",
        "join_eui": "0000000000000000",  # LoRaWAN: DevEUI (id), JoinEUI, AppKey (key)
        "key": "00" * 16,
        "role": "node",
        "board": "heltec_v2",
        "region": "EU868",
        "interval": 60,
        "air": {"port": 7000},
    }
    assert config_bytes(cfg) == config_bytes(dict(reversed(list(cfg.items()))))  # order-independent bytes


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"role": "gateway"}, "role"),
        ({"device_id": "XYZ"}, "id"),
        ({"interval": 5}, "interval"),
        ({"dr": 16}, "dr"),
        ({"settings": {"key": "00"}}, "set.key"),
    ],
)
def test_bad_options_name_the_field(kw, field):
    with pytest.raises(ValidationError) as err:
        check_spec(spec(**kw))
    assert err.value.field == field


def test_manifest_rows(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        'port,board,role,id,interval,set\n/dev/ttyUSB0,heltec_v2,node,,600,"{""dr"": 5}"\n\n'
        "/dev/ttyUSB1,unix,bridge,0123456789abcdef,,\n"
    )
    rows = read_manifest(path)
    assert [(line, s.port, s.device_id, s.interval, s.settings) for line, s in rows] == [
        (2, "/dev/ttyUSB0", None, 600, {"dr": 5}),
        (4, "/dev/ttyUSB1", "0123456789abcdef", None, {}),
    ]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("port,board\nx,y\n", "manifest"),
        ("port,board,role,colour\nx,y,node,red\n", "manifest"),
        ("port,board,role\nx,,node\n", "row 2.board"),
        ("port,board,role,interval\nx,y,node,often\n", "row 2.interval"),
    ],
)
def test_manifest_problems_name_row_and_column(tmp_path, text, field):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(ValidationError) as err:
        read_manifest(path)
    assert err.value.field == field


def test_fieldpost_group_passes_its_db_to_provision(tmp_path):
    from edge.cli import main

    missing = tmp_path / "none.db"
    result = CliRunner().invoke(
        main,
        [
            "--db",
            str(missing),
            "provision",
            "module",
            "--port",
            "/dev/null",
            "--board",
            "unix",
            "--role",
            "node",
        ],
    )
    assert result.exit_code != 0 and f"no edge database at {missing}" in result.output


def test_every_command_is_documented():
    from provisioning.cli import init_command, provision_group

    commands = [init_command, *provision_group.commands.values()]
    assert {c.name for c in commands} == {"init", "module", "batch"}
    for command in commands:
        assert command.help and all(p.help for p in command.params if p.param_type_name == "option")
    docs = (REPO_ROOT / "docs" / "provisioning.md").read_text()
    for name in (
        "fieldpost init",
        "fieldpost provision module",
        "fieldpost provision batch",
        "fieldpost gpio",
    ):
        assert name in docs
