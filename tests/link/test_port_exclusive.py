"""One reader per serial port: LinkPort takes pyserial's exclusive lock (flock), as mpremote and
provisioning do, so the daemon and a provisioning run can't both read the same module."""

from __future__ import annotations

import os

import pytest
import serial

from edge.errors import LinkError
from edge.link.port import LinkPort
from edge.sim import open_raw_pty

HELLO = {"edge": "0.1.0", "time": 1767225600}


@pytest.fixture
def pty_path():
    master, slave, path = open_raw_pty()
    try:
        yield path
    finally:
        os.close(master)
        os.close(slave)


def test_a_second_link_port_on_the_same_device_is_refused(pty_path):
    first = LinkPort(pty_path, hello=HELLO).open()
    try:
        with pytest.raises(LinkError, match="cannot open"):
            LinkPort(pty_path, hello=HELLO).open()
    finally:
        first.close()
    LinkPort(pty_path, hello=HELLO).open().close()  # the lock goes with the port


def test_provisioning_and_the_daemon_exclude_each_other(pty_path):
    link = LinkPort(pty_path, hello=HELLO).open()
    try:
        # what provisioning/hello.py and mpremote do
        with pytest.raises(serial.SerialException, match="lock"):
            serial.Serial(pty_path, 115200, exclusive=True)
    finally:
        link.close()
    held = serial.Serial(pty_path, 115200, exclusive=True)
    try:
        with pytest.raises(LinkError):
            LinkPort(pty_path, hello=HELLO).open()
    finally:
        held.close()
