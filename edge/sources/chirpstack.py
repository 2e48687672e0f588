"""The ChirpStack source: a paho subscriber to ChirpStack v4's MQTT integration, and its downlinks.

QoS 1 on a persistent session (clean_session false, a fixed client id): what ChirpStack publishes
while the edge is down waits in the broker. Each message is acknowledged to the broker (PUBACK,
paho's manual ack) only after the ingest writer committed what it carries: a kill at any moment
loses nothing the broker let go of; what was committed but not yet PUBACKed comes again and is
known by its deduplicationId. A PUBACK is only sent on the connection the message came on: after
a reconnect the broker sends the unacknowledged messages again and may reuse their packet ids, so
an ack from before would acknowledge a message that nobody stored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.ingest import Ingestor
from edge.logs import kv
from edge.radio import encode_command
from edge.sources import chirpstack_events as events
from edge.sources import chirpstack_store as store
from edge.sources.config import ChirpstackConfig
from edge.sources.counters import Counters
from edge.sources.errors import SourceInputError
from edge.store import connect

log = logging.getLogger("fieldpost.sources.chirpstack")

SOURCE = "chirpstack"
STUCK_S = 60.0  # a message handed to the writer and not committed by then: reconnect, the broker resends
_QUEUE_NS = uuid.UUID("6f1d2b52-3f7e-4d8c-9a55-2c1f0c7d1e10")


def queue_id_for(site: str, downlink_id: int, created_at: float) -> str:
    """The id ChirpStack enqueues a downlink under: the same on every try, so a publish repeated
    after a crash (before its record was committed) is not queued twice."""
    return str(uuid.uuid5(_QUEUE_NS, f"{site}:{downlink_id}:{created_at!r}"))


class ChirpstackSource:
    def __init__(
        self,
        config: ChirpstackConfig,
        ingest: Ingestor,
        *,
        db_path: str,
        counters: Counters,
        site: str = "site",
        clock: Callable[[], float] = time.time,
        busy: Callable[[], str | None] | None = None,
        stuck_s: float = STUCK_S,
    ):
        self.config = config
        self.ingest = ingest
        self.counters = counters
        self._db_path = db_path
        self._site = site
        self._clock = clock
        self._busy = busy  # the daemon's: stopping, disk full, backlog over the high-water mark
        self._stuck_s = stuck_s
        self._held = False  # a message was left unacknowledged because the edge was busy
        self._policy = store.Policy(config.adopt_applications, config.codec)
        self._lock = threading.Lock()
        self._generation = 0  # counts connections: a PUBACK goes only on the one its message came on
        self._pending: dict[tuple[int, int], float] = {}  # (generation, mid) -> handed to the writer at
        self._publishing: dict[int, tuple[int, str]] = {}  # publish mid -> (downlink id, queue id)
        self._in_flight: set[int] = set()  # downlink ids published, not yet recorded
        self._acked_early: set[int] = set()  # publish mids the broker acknowledged before we noted them
        self.connected = threading.Event()
        self._reader = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if config.username is not None:
            self.client.username_pw_set(config.username, config.password)
        if config.tls:  # verified, never a fallback to plaintext
            self.client.tls_set(ca_certs=config.ca_file, certfile=config.cert_file, keyfile=config.key_file)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ChirpstackSource:
        self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def alive(self) -> bool:
        thread = getattr(self.client, "_thread", None)
        return thread is not None and thread.is_alive()

    # --- uplinks and events --------------------------------------------------------------------

    def _on_connect(self, client, _userdata, flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.warning("chirpstack broker refused %s", kv(reason=reason_code))
            return
        with self._lock:
            self._generation += 1
            self._pending.clear()  # the broker sends them again on this connection
        client.subscribe([(topic, 1) for topic in events.subscriptions(self.config.topic_prefix)])
        self.connected.set()
        log.info(
            "chirpstack connected %s",
            kv(broker=f"{self.config.host}:{self.config.port}", session=flags.session_present),
        )

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        log.info("chirpstack disconnected %s", kv(reason=reason_code))

    def _on_message(self, client, _userdata, msg) -> None:
        mid, qos = msg.mid, msg.qos
        try:
            event = events.parse_event(msg.topic, msg.payload, prefix=self.config.topic_prefix)
        except SourceInputError as exc:
            # Refused for good: acknowledged at once, or the broker would send it again forever.
            self.counters.add(SOURCE, exc.reason)
            log.warning(
                "chirpstack message refused %s", kv(topic=msg.topic, field=exc.field, why=exc.message)
            )
            client.ack(mid, qos)
            return
        with self._lock:
            generation = self._generation
            self._pending[(generation, mid)] = time.monotonic()
        why = self._busy() if self._busy is not None else None
        if why:
            # Left unacknowledged: the broker keeps it (and, its window full, sends no more);
            # check_stuck reconnects later and the broker sends it again.
            self.counters.add(SOURCE, "busy")
            self._held = True
            log.warning("chirpstack message held %s", kv(topic=msg.topic, why=why))
            return
        box: list[store.Applied] = []

        def apply(conn, now) -> None:
            box.append(store.apply(conn, event, numbers=self.ingest.numbers, policy=self._policy, now=now))

        def committed() -> None:
            with self._lock:
                current = (
                    self._pending.pop((generation, mid), None) is not None and generation == self._generation
                )
            if box:
                self._count(box[0], msg.topic)
                if box[0].reading is not None:
                    self.ingest.committed_elsewhere([box[0].reading])
            if current:
                client.ack(mid, qos)  # only now: what it carried is on disk

        self.ingest.submit_call(apply, reply=committed)

    def _count(self, applied: store.Applied, topic: str) -> None:
        self.counters.add(SOURCE, applied.result)
        if applied.result in ("unknown_device", "refused", "ignored"):
            log.warning("chirpstack event %s", kv(result=applied.result, topic=topic, why=applied.detail))

    def check_stuck(self) -> None:
        """A message the writer never answered (a failed commit drops its calls), or one held while the
        edge was busy: reconnect, so the broker sends it again. Called from the daemon's timer."""
        limit = time.monotonic() - self._stuck_s
        with self._lock:
            stuck = any(at < limit for at in self._pending.values())
        if self._held and not (self._busy is not None and self._busy()):
            stuck, self._held = True, False  # not busy any more: what was held comes again now
        if stuck and self.connected.is_set():
            log.warning("chirpstack messages not committed in time; reconnecting for a resend")
            self.client.reconnect()

    def prune(self) -> None:
        """What retention deleted goes from ``source_uplinks`` too (the daemon's timer, hourly)."""
        pruned = self.ingest.run(lambda conn: store.prune(conn, self.ingest.numbers))
        if pruned:
            log.info("chirpstack uplink records pruned %s", kv(rows=pruned))

    # --- downlinks -------------------------------------------------------------------------------

    def publish_downlinks(self) -> int:
        """Hand queued downlinks of ChirpStack devices to ChirpStack (``command/down``); return how many.

        The downlink stays 'queued' until ChirpStack's txack ('sent') and ack ('acked' / 'failed').
        """
        if not self.connected.is_set():
            return 0
        if self._reader is None:
            self._reader = connect(self._db_path)
        now = self._clock()
        rows = store.queued_downlinks(self._reader, now)
        self._reader.rollback()  # end the read transaction: the WAL must not be pinned
        count = 0
        for dl_id, dev_eui, application, command, args, created_at in rows:
            with self._lock:
                if dl_id in self._in_flight:
                    continue
                self._in_flight.add(dl_id)
            queue_id = queue_id_for(self._site, dl_id, created_at)
            data = encode_command(dl_id, command, json.loads(args))
            payload = events.build_command(
                queue_id=queue_id,
                dev_eui=dev_eui,
                fport=self.config.downlink_port,
                data=data,
                encoding="json" if self.config.json else "protobuf",
            )
            info = self.client.publish(
                events.command_topic(self.config.topic_prefix, application, dev_eui), payload, qos=1
            )
            with self._lock:
                early = info.mid in self._acked_early
                self._acked_early.discard(info.mid)
                if not early:
                    self._publishing[info.mid] = (dl_id, queue_id)
            if early:  # the broker's PUBACK came before publish() returned
                self._record_published(dl_id, queue_id)
            count += 1
        return count

    def _on_publish(self, _client, _userdata, mid, _reason_code, _properties) -> None:
        with self._lock:
            entry = self._publishing.pop(mid, None)
            if entry is None:
                self._acked_early.add(mid)
                return
        self._record_published(*entry)

    def _record_published(self, dl_id: int, queue_id: str) -> None:
        def record(conn, now) -> None:
            store.published(conn, dl_id, queue_id, now)

        def done() -> None:
            with self._lock:
                self._in_flight.discard(dl_id)
            self.counters.add(SOURCE, "downlink_published")

        self.ingest.submit_call(record, reply=done)
