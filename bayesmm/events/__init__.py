"""The event bus: schema, session files, venue readers and per-event features (spec stage 0).

Names are loaded lazily (PEP 562), so `import bayesmm.events.kinds` (pure constants, used by `bayesmm/online/`)
does not pull in pyarrow or the readers.
"""

from importlib import import_module

_EXPORTS = {
    "IngestError": "bayesmm.events.errors", "SessionError": "bayesmm.events.errors",
    "EventArrays": "bayesmm.events.features", "to_arrays": "bayesmm.events.features",
    "IngestReport": "bayesmm.events.lines", "ingest": "bayesmm.events.ingestion",
    "KINDS": "bayesmm.events.kinds", "KIND_ID": "bayesmm.events.kinds",
    "Session": "bayesmm.events.session", "SessionMeta": "bayesmm.events.session",
    "read_session": "bayesmm.events.session",
    "check_session": "bayesmm.events.session", "write_session": "bayesmm.events.session",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'events' has no attribute {name!r}")
