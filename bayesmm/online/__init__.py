"""Closed-form online filters and the quoter: pure JAX, one O(1) update per event, no I/O."""
