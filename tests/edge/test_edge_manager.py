import time
from types import SimpleNamespace

from edge_helpers import add
from edge_module_peer import ModulePeer, Node, activate

from edge.ingest import Ingestor
from edge.link.manager import LinkManager, discover
from edge.store import connect
from tests.conftest import wait_until

CP210X = "10c4:ea60"


def port_info(device, vid, pid):
    return SimpleNamespace(device=device, vid=vid, pid=pid)


def test_discover_filters_by_usb_id():
    ports = [
        port_info("/dev/ttyUSB0", 0x10C4, 0xEA60),
        port_info("/dev/ttyACM0", 0x2E8A, 0x0005),
        port_info("/dev/ttyS0", None, None),
        port_info("/dev/ttyUSB1", 0x067B, 0x2303),
    ]
    assert discover([CP210X, "2e8a:0005"], lambda: ports) == ["/dev/ttyACM0", "/dev/ttyUSB0"]
    assert discover([], lambda: ports) == []


def test_discovered_port_is_opened_ingested_and_forgotten_when_gone(db_path, tmp_path, clock):
    conn = connect(db_path)
    key = add(conn, "0000000000000e01")
    peer = ModulePeer("0000000000000e00", activate(conn, [Node("0000000000000e01", key)])).start()
    alias = tmp_path / "by-id-module"
    alias.symlink_to(peer.path)
    visible = [port_info(peer.path, 0x10C4, 0xEA60)]
    ingest = Ingestor(conn, clock=clock)
    ingest.start()
    # the configured alias and the discovered pty are the same device: opened once
    manager = LinkManager(
        ingest=ingest,
        ports=[str(alias)],
        discover_ports=True,
        usb_ids=[CP210X],
        comports=lambda: list(visible),
        scan_interval_s=0.05,
        reconnect_min_s=0.05,
    )
    manager.start()
    try:
        assert wait_until(lambda: manager.links_up() == 1)
        peer.add_reading("0000000000000e01")
        assert wait_until(lambda: len(peer.log.acked) == 1)
        time.sleep(0.2)  # several discovery scans
        assert [f["path"] for f in manager.figures()] == [str(alias)]
        (fig,) = manager.figures()
        assert fig["configured"] and fig["frames_rx"] >= 1 and fig["peer_id"] == "0000000000000e00"
        # a module only seen by discovery goes away for good: unplugged and no longer listed
        visible.clear()
        alias.unlink()
        peer.close()
        assert wait_until(lambda: manager.links_up() == 0)
        (fig,) = manager.figures()
        assert fig["up"] is False and fig["frames_rx"] >= 1  # counters survive the port
    finally:
        manager.stop()
        ingest.stop()
        conn.close()
