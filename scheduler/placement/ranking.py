"""Best fit over every host at once: a few vector operations on a matrix of free room
(hosts x resources), so that ranking 10,000 hosts for one VM costs well under a millisecond.
The greedy heuristics and the service's placement path both rank hosts this way."""

from __future__ import annotations

import numpy as np


def with_room(free: np.ndarray, demand: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Indices of the ``allowed`` hosts (a boolean mask) whose free room holds ``demand``."""
    return np.flatnonzero(allowed & (free >= demand).all(axis=1))


def slack(free: np.ndarray, demand: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Room each host would have left after taking ``demand``, every resource counted as a
    share of the largest host's (``scale``), summed: lower is a tighter fit."""
    result: np.ndarray = ((free - demand) / scale).sum(axis=1)
    return result


def ranked(
    free: np.ndarray, demand: np.ndarray, allowed: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """The allowed hosts with room, best fit first (ties by index)."""
    candidates = with_room(free, demand, allowed)
    order = np.argsort(slack(free[candidates], demand, scale), kind="stable")
    result: np.ndarray = candidates[order]
    return result


def aligned(
    free: np.ndarray, demand: np.ndarray, allowed: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """The allowed hosts with room, the one whose free room points most the way the demand
    does first (the largest dot product, every resource a share of ``scale``): a VM heavy in
    memory goes where memory is plentiful. Best fit packs one resource tight and strands
    another when two are scarce at once (memory and disk); this keeps them in step, the
    dot-product rule of Panigrahy et al. for vector bin packing."""
    candidates = with_room(free, demand, allowed)
    alignment = ((free[candidates] / scale) * (demand / scale)).sum(axis=1)
    result: np.ndarray = candidates[np.argsort(-alignment, kind="stable")]
    return result


def best_fit(
    free: np.ndarray, demand: np.ndarray, allowed: np.ndarray, scale: np.ndarray
) -> int | None:
    """The first host ``ranked`` would give, without sorting them all."""
    candidates = with_room(free, demand, allowed)
    if candidates.size == 0:
        return None
    return int(candidates[int(np.argmin(slack(free[candidates], demand, scale)))])
