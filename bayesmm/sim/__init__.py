"""Synthetic markets with known ground truth, a simulated exchange and closed-loop runs.

Money and prices accumulate here, so importing `sim` turns on JAX's float64.
"""

import jax

jax.config.update("jax_enable_x64", True)
