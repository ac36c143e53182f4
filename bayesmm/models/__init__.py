"""Offline NumPyro state-space models of a session (OU drift, stochastic volatility, toxicity, regime HMM)."""
