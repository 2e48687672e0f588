"""A provisioned bridge under the real edge daemon, with the GPIO indicators attached on a mock Pi."""

from __future__ import annotations

import time

from gpiozero.pins.mock import MockFactory

from edge import config as config_mod
from edge.alarms import raise_alarm
from edge.daemon import Daemon
from edge.gpio.service import attach
from edge.store import connect, transaction
from provisioning.module import ModuleSpec, provision_module


def test_daemon_link_and_alarm_show_on_the_panel(blank_module, edge_db, mpy_cache, wait_until):
    result = provision_module(
        ModuleSpec(port=blank_module.port, board="unix", role="bridge"),
        db_path=edge_db,
        cache_dir=mpy_cache,
        reset=blank_module.reset,
        hello_timeout=10,
    )
    assert result.hello["id"] == result.device_id

    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(edge_db), "services": False},
            "link": {"ports": [blank_module.port], "discover": False},
            "http": {"enabled": False},
            "gpio": {"refresh_s": 0.05},
        }
    )
    factory = MockFactory()
    daemon = Daemon(cfg, attach_points=()).start()
    try:
        service = attach(daemon, pin_factory=factory)
        pins = service.indicators.pin_map
        link_led = factory.pin(pins.leds["link"].pin)
        buzzer = factory.pin(pins.buzzer.pin)
        button = factory.pin(pins.button.pin)

        # The link LED turns steady once the provisioned bridge's HELLO is answered.
        assert wait_until(
            lambda: daemon.manager.links_up() == 1 and service.indicators._shown.get("link").kind == "on",
            timeout=15,
        )
        assert (
            link_led.state is True and service.indicators._shown["cloud"].kind == "off"
        )  # no sink configured

        conn = connect(edge_db)
        try:
            with transaction(conn):
                raise_alarm(
                    conn,
                    rule="tank-level",
                    device_id=result.device_id,
                    severity="critical",
                    message="level high",
                    now=time.time(),
                )
        finally:
            conn.close()
        assert wait_until(lambda: service.indicators._shown["buzzer"].kind == "blink", timeout=15)

        button.drive_low()
        button.drive_high()  # short press: silence, audited as the button
        assert buzzer.state is False

        def audited():
            c = connect(edge_db)
            try:
                return (
                    c.execute(
                        "SELECT count(*) FROM audit_log WHERE actor = 'button' AND action = 'alarm.silence'"
                    ).fetchone()[0]
                    == 1
                )
            finally:
                c.close()

        assert wait_until(audited, timeout=15)
    finally:
        daemon.stop()
        factory.reset()
