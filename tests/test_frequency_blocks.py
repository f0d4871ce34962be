"""The block-wise factorisation of large plants (``BlockShiftedLU``) against the whole-plant LU."""

from __future__ import annotations

import numpy as np

import crnfb.analysis.linear.frequency as F
from crnfb.analysis.linear.linearise import linearise
from crnfb.feedback.numerics import sizes


def test_block_factorisation_matches_the_whole_plant(monkeypatch, e3):
    """The free and clamped generators are factorised apart (METIS order, no pivoting): same plants as
    SuperLU on the whole full plant and as the reduced coordinates. Both full-coordinate solves lose
    ~1e-14/w near w = 0 (the generators' zero mode), so frequencies start at 1e-4."""
    loop = linearise(e3)
    monkeypatch.setattr(sizes, "LARGE_PLANT", 10)
    monkeypatch.setattr(sizes, "ROM_PLANT", 10**9)      # exact solves only (tests/test_plantrom.py has the model)
    b = F.broken_loop(loop)
    w = np.logspace(-4, 1, 6)

    def fresh():
        return F.BrokenLoop(b.loop, b.A, b.B_theta, b.B_a, b.C_mf, b.C_mc, b.D_mc, b.D_a, b.eps, b.neutral,
                            b.full)

    monkeypatch.setattr(sizes, "BLOCK_PLANT", 10**9)
    whole = fresh()
    ref = whole.plants(w)
    assert whole._blocks_full is None
    monkeypatch.setattr(sizes, "BLOCK_PLANT", 10)
    blocks = fresh()
    new = blocks.plants(w)
    assert blocks._blocks_full is not None and len(blocks._blocks_full.blocks) == 2
    monkeypatch.setattr(sizes, "LARGE_PLANT", 10**9)
    reduced = fresh().plants(w)
    for r, n, red in zip(ref, new, reduced):
        scale = np.abs(red).max()
        assert np.abs(n - red).max() <= 1e-9 * scale
        assert np.abs(n - r).max() <= 1e-9 * scale


def test_coupled_blocks_are_refused():
    """A matrix that couples the blocks gets no block factoriser (the whole-plant LU is used)."""
    from scipy import sparse

    A = sparse.csc_matrix(np.array([[-1.0, 0.5, 0.0], [1.0, -0.5, 0.2], [0.0, 0.0, -0.2]]))
    assert F.BlockShiftedLU.build(A, [0, 2, 3]) is None
    B = sparse.csc_matrix(np.array([[-1.0, 0.5, 0.0], [1.0, -0.5, 0.0], [0.0, 0.0, -0.2]]))
    lu = F.BlockShiftedLU.build(B, [0, 2, 3])
    rhs = np.array([[1.0], [2.0], [3.0]], complex)
    x = lu.solve(0.7, rhs)
    assert np.allclose((0.7j * np.eye(3) - B.toarray()) @ x, rhs, atol=1e-13)
