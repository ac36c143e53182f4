"""Kernels per loop iteration, read from a compiled program's optimised HLO: the figure that bounds a
scan's speed on a CPU, where XLA runs each fusion, copy or library call of a loop's body as a
separately dispatched kernel (~0.05-0.1 us each, whatever its size), and that does not depend on the
machine's load the way a wall time does."""

from __future__ import annotations

import re

_FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast"}  # no kernel of their own
_INSTR = re.compile(r"^\s*(?:ROOT )?%\S+ = .*? ([a-z][\w-]*)\(", re.M)


def _trips(line: str) -> int | None:
    """A while instruction's known trip count, None when XLA does not know it."""
    m = re.search(r'"known_trip_count":\{"n":"(\d+)"\}', line)
    return int(m.group(1)) if m else None


def _computations(hlo: str) -> dict[str, str]:
    """{name: body text} of every computation of an HLO module's text."""
    out = {}
    for m in re.finditer(r"^(?:ENTRY )?(%[\w.\-]+) .*?\{\n(.*?)\n\}", hlo, re.M | re.S):
        out[m.group(1)] = m.group(2)
    return out


def kernels(text: str, comps: dict[str, str]) -> float:
    """Kernels one run of a computation's body dispatches: its instructions that are not free, a
    while loop counted as its body's kernels times its trip count (1 when unknown) plus one, a
    conditional as one plus the mean of its branches' (which branch runs depends on the data)."""
    n = 0.0
    for line in text.splitlines():
        m = _INSTR.match(line)
        if not m or m.group(1) in _FREE:
            continue
        w = re.search(r"body=(%[\w.\-]+)", line) if m.group(1) == "while" else None
        if w:
            n += 1 + kernels(comps[w.group(1)], comps) * (_trips(line) or 1)
        elif m.group(1) == "conditional":
            names = re.findall(r"(%[\w.\-]+)", (re.search(r"branch_computations=\{(.*?)\}", line)
                                                  or re.search(r"(true_computation=.*?, false_computation=%[\w.\-]+)",
                                                               line)).group(1))
            n += 1 + sum(kernels(comps[b], comps) for b in names) / len(names)
        else:
            n += 1
    return n


def kernels_per_call(compiled) -> float:
    """Kernels one call of a compiled JAX function dispatches (its entry computation, loops counted
    with their trip counts)."""
    hlo = compiled.as_text()
    comps = _computations(hlo)
    entry = re.search(r"^ENTRY (%[\w.\-]+)", hlo, re.M).group(1)
    return kernels(comps[entry], comps)


def kernels_per_iteration(compiled) -> float:
    """Kernels per iteration of the longest-running while loop (the largest known trip count) of a
    compiled JAX function (`jax.jit(f).lower(...).compile()`), nested loops included."""
    hlo = compiled.as_text()
    comps = _computations(hlo)
    best, body = -1, None
    for line in hlo.splitlines():
        if " while(" not in line:
            continue
        n = _trips(line) or 0
        if n > best:
            best, body = n, re.search(r"body=(%[\w.\-]+)", line).group(1)
    if body is None:
        raise ValueError("the program has no while loop")
    return kernels(comps[body], comps)
