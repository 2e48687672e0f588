"""SQLite storage: one file, WAL, fsync on every commit, named migrations."""

from edge.store.connection import connect, transaction
from edge.store.migrations import MIGRATIONS, applied_migrations, migrate

__all__ = ["MIGRATIONS", "applied_migrations", "connect", "migrate", "transaction"]
