"""The research workflow: derive filter parameters from fits, sweeps, export, reports, and the `bayesmm` CLI."""
