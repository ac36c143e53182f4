"""Performance benchmarks (`make bench`). Numbers are reported, never asserted in tests."""
