"""The event bus: schema, session files, venue readers and per-event features (spec stage 0)."""

from events.errors import IngestError, SessionError
from events.features import EventArrays, to_arrays
from events.ingest import IngestReport, ingest
from events.kinds import KIND_ID, KINDS
from events.session import Session, SessionMeta, read_session, validate, write_session

__all__ = [
    "KINDS",
    "KIND_ID",
    "EventArrays",
    "IngestError",
    "IngestReport",
    "Session",
    "SessionError",
    "SessionMeta",
    "ingest",
    "read_session",
    "to_arrays",
    "validate",
    "write_session",
]
