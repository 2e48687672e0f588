"""``attach(daemon)``: start the sources the ``[sources]`` section enables, on the daemon's writer."""

from __future__ import annotations

import logging
from typing import Any

from edge.sources.config import SourcesConfig, parse
from edge.sources.counters import Counters

log = logging.getLogger("fieldpost.sources")

PRUNE_S = 3600.0  # how often the records of readings retention deleted are dropped


class SourcesService:
    def __init__(self, config: SourcesConfig):
        self.config = config
        self.counters = Counters()
        self.chirpstack: Any = None
        self.udp: Any = None
        self.coap: Any = None

    @property
    def parts(self) -> list[Any]:
        return [p for p in (self.chirpstack, self.udp, self.coap) if p is not None]

    @property
    def alive(self) -> bool:
        return all(p.alive for p in self.parts)

    def stop(self) -> None:
        for part in self.parts:
            try:
                part.stop()
            except Exception:  # one source's failure must not keep the others open
                log.exception("source stop failed")


def attach(daemon) -> SourcesService | None:
    config = parse(daemon.config.section("sources"))
    if not (config.chirpstack.enabled or config.udp.enabled or config.coap.enabled):
        return None
    service = SourcesService(config)
    daemon.add_closer(service.stop)  # first: a source that fails to start stops the ones before it
    ingest = daemon.ingest
    if config.chirpstack.enabled:
        from edge.sources.chirpstack import ChirpstackSource

        source = ChirpstackSource(
            config.chirpstack,
            ingest,
            db_path=str(daemon.db_path),
            counters=service.counters,
            site=daemon.config.edge.site,
            clock=daemon.clock,
            busy=daemon.busy,
        )
        service.chirpstack = source.start()
        daemon.add_periodic(config.chirpstack.downlink_poll_s, source.publish_downlinks)
        daemon.add_periodic(2.0, source.check_stuck)
        daemon.add_periodic(PRUNE_S, source.prune)
    if config.udp.enabled:
        from edge.sources.udp import UdpListener

        service.udp = UdpListener(config.udp, ingest, counters=service.counters, busy=daemon.busy).start()
    if config.coap.enabled:
        from edge.sources.coap import CoapServer

        service.coap = CoapServer(config.coap, ingest, counters=service.counters, busy=daemon.busy).start()
    daemon.metrics_sources.extra.append(service.counters.families)
    return service
