"""The event bus: schema, session files, venue readers and per-event features (spec stage 0).

Names are loaded lazily (PEP 562), so `import events.kinds` (pure constants, used by `online/`)
does not pull in pyarrow or the readers.
"""

from importlib import import_module

_EXPORTS = {
    "IngestError": "events.errors", "SessionError": "events.errors",
    "EventArrays": "events.features", "to_arrays": "events.features",
    "IngestReport": "events.lines", "ingest": "events.ingestion",
    "KINDS": "events.kinds", "KIND_ID": "events.kinds",
    "Session": "events.session", "SessionMeta": "events.session", "read_session": "events.session",
    "validate": "events.session", "write_session": "events.session",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'events' has no attribute {name!r}")
