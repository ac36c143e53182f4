"""Synthetic markets with known ground truth, a simulated exchange and closed-loop runs."""
