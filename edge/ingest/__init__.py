"""Durable ingest of uplinks: verify, dedupe, store, and only then ACK (group commit)."""

from edge.ingest.backpressure import Backpressure
from edge.ingest.process import CommittedReading, Outcome, handle_uplink
from edge.ingest.writer import Ingestor, IngestStats

__all__ = ["Backpressure", "CommittedReading", "IngestStats", "Ingestor", "Outcome", "handle_uplink"]
