"""edge.sim: the virtual-module launcher and the line-noise proxy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import serial

from edge.sim import CorruptingProxy, SimError, VirtualModule, open_raw_pty

pytestmark = pytest.mark.firmware


def test_missing_entry_is_a_clear_error():
    with pytest.raises(SimError, match="does not exist"):
        VirtualModule("no_such_entry.py")


def test_firmware_output_is_captured(virtual_module, wait_until):
    vm = virtual_module("linktest.py", ["--bogus"])
    assert vm.wait(timeout=10) != 0
    wait_until(lambda: "bad argument --bogus" in vm.output_text(), timeout=5)


def test_kill_keeps_the_port_and_close_unplugs_it(virtual_module, wait_until):
    vm = virtual_module("linktest.py")
    port, first_pid = vm.port, vm.pid
    assert os.path.exists(port)
    vm.kill()
    assert not vm.running and vm.returncode == -9
    assert os.path.exists(port)  # a reset module keeps its USB serial device
    vm.start()
    assert vm.running and vm.pid != first_pid and vm.port == port and vm.boots == 2
    vm.close()
    assert not vm.running
    wait_until(lambda: not os.path.exists(port), timeout=5, what="the pty to disappear")
    vm.close()  # idempotent


def test_cwd_is_private_and_removed(virtual_module):
    vm = virtual_module("linktest.py")
    cwd = vm.cwd
    assert cwd.is_dir() and "fieldpost-vm-" in cwd.name
    vm.close()
    assert not cwd.exists()


def test_repl_mode_is_driven_by_mpremote_through_the_pty(virtual_module):
    vm = virtual_module(None)
    mpremote = os.path.join(os.path.dirname(sys.executable), "mpremote")
    proc = subprocess.run(
        [mpremote, "connect", vm.port, "resume", "exec", "import sys; print(sys.platform, 6 * 7)"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "linux 42"


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_proxy_copies_both_ways_and_corrupts_the_given_fraction(rate, wait_until):
    master, slave, path = open_raw_pty()
    try:
        with CorruptingProxy(path, rate, seed=3) as proxy:
            edge = serial.Serial(proxy.port, 921600, timeout=0.2)
            try:
                data = bytes(range(1, 201))
                os.write(master, data)  # device -> edge
                got = bytearray()

                def read_all() -> bool:
                    got.extend(edge.read(256))
                    return len(got) >= 200

                wait_until(read_all, timeout=5)
                edge.write(data)  # edge -> device
                back = wait_until(lambda: os.read(master, 4096), timeout=5)
            finally:
                edge.close()
            assert proxy.bytes_copied >= 200 + len(back)
            if rate == 0.0:
                assert proxy.corrupted == 0
                assert bytes(got) == data and back == data[: len(back)]
            else:
                assert proxy.corrupted == proxy.bytes_copied
                assert all(a != b for a, b in zip(got, data, strict=True))
                assert all(a != b for a, b in zip(back, data, strict=False))
    finally:
        os.close(master)
        os.close(slave)


def test_proxy_rejects_bad_rate():
    with pytest.raises(ValueError):
        CorruptingProxy("/dev/null", 1.5)
