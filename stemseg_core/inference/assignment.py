"""Minimum-cost assignment (the Hungarian problem) of a small dense cost matrix, in numpy.

Stitching matches at most a few tens of instances per clip; ``scipy.optimize`` would solve it
too, but importing it costs the process ~22 MiB of resident memory (measured 2026-12-07 beside
scipy.ndimage and scipy.sparse, which the runtime has anyway), a tenth of the node's budget.

The solver is the shortest-augmenting-path form of the Hungarian method with row and column
potentials: rows are added one at a time, each by a Dijkstra search over the columns on reduced
costs, O(n^2 m) for n <= m (numpy over the columns). The result is a minimum-cost matching of
min(n, m) pairs, as ``scipy.optimize.linear_sum_assignment`` gives; where several matchings have
the same cost the two may pick different ones (a test compares the costs on random matrices).
"""
from __future__ import annotations

import numpy as np


def min_cost_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, m) finite costs -> (rows, cols): int arrays of min(n, m) pairs, rows ascending,
    each row and column used at most once, with the least total cost."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("cost must be finite (use a large value for forbidden pairs)")
    if c.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    flipped = c.shape[0] > c.shape[1]
    if flipped:
        c = c.T
    owner = _solve(c)  # owner[j]: row of column j, -1 if none
    cols = np.flatnonzero(owner >= 0)
    rows = owner[cols]
    if flipped:
        rows, cols = cols, rows
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def _solve(c: np.ndarray) -> np.ndarray:
    """Rows of ``c`` (n <= m) assigned one by one; returns each column's row (-1: none).

    Column index 0 of the work arrays is a virtual column holding the row being added;
    real column j is index j + 1. ``u``/``v`` are the row/column potentials (reduced cost
    c[i, j] - u[i] - v[j] >= 0 on every pair, 0 on matched ones)."""
    n, m = c.shape
    u = np.zeros(n)
    v = np.zeros(m + 1)
    owner = np.full(m + 1, -1)  # row matched to each column
    for row in range(n):
        owner[0] = row
        prev = np.zeros(m + 1, np.int64)  # column before each one on the shortest path
        dist = np.full(m + 1, np.inf)  # shortest reduced path cost to each column
        done = np.zeros(m + 1, bool)
        col = 0
        while owner[col] != -1:  # until the path reaches a free column
            done[col] = True
            i = owner[col]
            reduced = c[i] - u[i] - v[1:]
            open_ = ~done[1:]
            shorter = open_ & (reduced < dist[1:])
            dist[1:][shorter] = reduced[shorter]
            prev[1:][shorter] = col
            candidates = np.where(open_, dist[1:], np.inf)
            nxt = int(np.argmin(candidates)) + 1
            step = candidates[nxt - 1]
            u[owner[done]] += step
            v[done] -= step
            dist[1:][open_] -= step
            col = nxt
        while col:  # flip the matching along the path
            back = prev[col]
            owner[col] = owner[back]
            col = back
    return owner[1:]
