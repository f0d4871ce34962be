"""The irreducible class of one copy's initial state (docs/theory.md §1).

States are enumerated by a vectorised breadth-first search over the
reactions' jumps inside the truncation box and sorted lexicographically (so
the generator is banded for chains). Each state has an exact key, its counts
packed as mixed-radix codes into as many 64-bit words as the box needs
(:class:`StateKeys`), so time and memory grow with the class, not with the
box's volume: a token walking on a graph of 1,000 species has a box of
``2**1000`` points and a class of 1,000 states. Jumps that would leave the
box are dropped, which keeps the product form exact on the box; the
stationary mass outside it is estimated on an enlarged box
(:meth:`StateSpace.truncation_mass`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse
from scipy.optimize import linprog
from scipy.sparse.csgraph import connected_components
from scipy.special import gammaln, logsumexp

from ..errors import ModelError, TruncationError
from .network import Network
from ..numerics import sizes


def class_size_bound(L: np.ndarray, bounds: np.ndarray, initial: np.ndarray | None = None) -> float:
    """Upper bound on the class size inside the box, without enumerating the class.

    With ``initial`` given, the number of lattice points of the box on the
    conservation-law slice ``L n = L n0`` (the class is one connected part of
    it), counted exactly by dynamic programming over the species that enter a
    law (the partial sums ``L[:, :i] n[:i]`` are the states; species outside
    every law multiply the count by ``b_i + 1``). Where that count would need
    too many partial sums, and without ``initial``: with ``r`` independent
    laws, the ``N - r`` coordinates of a set ``F`` whose complement's columns
    of ``L`` are invertible determine a state, so the class has at most
    ``prod_{i in F} (b_i + 1)`` states; the smallest such product over the
    sets tried (the box volume without laws).
    """
    radix = np.asarray(bounds, float) + 1.0
    N = radix.size
    L = np.asarray(L, float).reshape(-1, N)
    if initial is not None and L.size:
        exact = _slice_count(L, np.asarray(bounds), np.asarray(initial))
        if exact is not None:
            return exact
    return _free_coordinate_bound(L, radix)


def _slice_count(L: np.ndarray, bounds: np.ndarray, initial: np.ndarray) -> float | None:
    """Lattice points ``n`` of the box with ``L n = L n0`` (None when the count is too costly)."""
    Li = np.rint(L).astype(np.int64)
    if not np.array_equal(Li, L):
        return None
    target = Li @ initial.astype(np.int64)
    inlaw = np.any(Li != 0, axis=0)
    outside = float(np.prod(bounds[~inlaw].astype(float) + 1.0))
    sums = np.zeros((1, Li.shape[0]), np.int64)
    counts: np.ndarray = np.ones(1)         # copies of each partial sum (float: bincount's weights)
    order = np.nonzero(inlaw)[0]
    lo, hi = np.minimum(Li, 0) * bounds, np.maximum(Li, 0) * bounds
    cap = sizes.SLICE_COUNT_MAX_STATES
    for k, i in enumerate(order):
        if bounds[i] + 1 > cap or sums.shape[0] * (bounds[i] + 1) > 20 * cap:
            return None
        v = np.arange(bounds[i] + 1, dtype=np.int64)
        sums = (sums[:, None, :] + v[None, :, None] * Li[:, i][None, None, :]).reshape(-1, Li.shape[0])
        counts = np.repeat(counts, v.size)
        # prune partial sums from which the target is out of reach with the species still to come
        rest = order[k + 1:]
        reach_lo = target - lo[:, rest].sum(axis=1) if rest.size else target
        reach_hi = target - hi[:, rest].sum(axis=1) if rest.size else target
        keep = np.all((sums <= reach_lo) & (sums >= reach_hi), axis=1)
        sums, counts = sums[keep], counts[keep]
        sums, inv = _unique_rows(sums)
        counts = np.bincount(inv.ravel(), weights=counts, minlength=sums.shape[0])
        if sums.shape[0] > cap:
            return None
    hit = np.all(sums == target, axis=1)
    return float(counts[hit].sum()) * outside


def _unique_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(a, axis=0, return_inverse=True)`` for int64 rows, by one mixed-radix key per row.

    (``axis=0`` sorts the rows lexicographically as structured records, about
    ten times slower; the keys give the same sorted rows.)
    """
    if a.shape[0] == 0 or a.shape[1] == 0:
        return np.unique(a, axis=0, return_inverse=True)
    lo = a.min(axis=0)
    width = a.max(axis=0) - lo + 1
    if np.sum(np.log2(width.astype(float))) > 62:
        return np.unique(a, axis=0, return_inverse=True)
    mult = np.concatenate([np.cumprod(width[::-1])[::-1][1:], [1]]).astype(np.int64)
    keys, first, inv = np.unique((a - lo) @ mult, return_index=True, return_inverse=True)
    return a[first], inv


def _free_coordinate_bound(L: np.ndarray, radix: np.ndarray) -> float:
    import itertools
    N = radix.size
    r = np.linalg.matrix_rank(L) if L.size else 0
    best = float(np.prod(radix))
    if r == 0 or L.shape[0] != r:   # dependent rows: the box volume is still a bound
        return best
    for k, comp in enumerate(itertools.combinations(range(N), r)):
        if k > 2000:   # enough candidates for any network of a few species
            break
        if abs(np.linalg.det(L[:, list(comp)])) > 1e-9:
            free = [i for i in range(N) if i not in comp]
            best = min(best, float(np.prod(radix[free])))
    return best


def species_bounds(net: Network, initial: np.ndarray) -> np.ndarray:
    """Largest value each species can take on its conservation-law slice.

    ``inf`` for open species (the linear program ``max n_i s.t. L n = L n0,
    n >= 0`` is unbounded).
    """
    L = net.conservation_laws
    N = net.n_species
    out = np.full(N, np.inf)
    if L.shape[0] == 0:
        return out
    b = L @ initial
    inlaw = (L != 0).any(axis=0)
    if (L >= 0).all() and ((L != 0).sum(axis=0) <= 1).all():
        # disjoint non-negative laws (pools, tokens): all of a law's total in species i is a
        # feasible point, so the linear program's maximum is b_k / L_ki; no solver per species
        k = np.argmax(L != 0, axis=0)
        out[inlaw] = np.floor(b[k[inlaw]] / L[k[inlaw], np.nonzero(inlaw)[0]] + 1e-9)
        return out
    for i in np.nonzero(inlaw)[0]:   # a species in no law is open
        c = np.zeros(N)
        c[i] = -1.0
        res = linprog(c, A_eq=L, b_eq=b, bounds=[(0, None)] * N, method="highs")
        if res.status == 0:
            out[i] = np.floor(-res.fun + 1e-9)
    return out


def falling_factorial(states: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``prod_i n_i! / (n_i - y_i)!`` row-wise (0 where some ``n_i < y_i``)."""
    out = np.ones(states.shape[0])
    for i in np.nonzero(y)[0]:
        for k in range(int(y[i])):
            out *= np.maximum(states[:, i] - k, 0)
    return out


@dataclass(frozen=True)
class Edges:
    """All jumps of one reaction direction: ``src -> dst`` with base propensity.

    The propensity at ``theta`` is ``coef * exp(theta . exponent)`` with
    ``exponent`` the *other* complex (catalytic scheme: forward rate
    ``kappa lambda^{y'}`` times the falling factorial of ``y``).
    """

    reaction: int
    forward: bool
    src: np.ndarray
    dst: np.ndarray
    coef: np.ndarray
    exponent: np.ndarray


#: Largest product of radices packed into one 64-bit word of a state's key (headroom below 2**63).
WORD_RANGE = 2 ** 62


@dataclass(frozen=True)
class StateKeys:
    """Exact keys of the states of a box: mixed-radix codes over consecutive groups of species.

    Species are packed, in their order, into as few 64-bit words as keep
    every word's radix product at most :data:`WORD_RANGE`; a state's key is
    its row of words. Keys are exact (distinct states, distinct keys), linear
    (``key(n + nu) = key(n) + key(nu)`` word by word while both ends lie in
    the box) and, compared as big-endian bytes, sort the states
    lexicographically. Their width grows with ``sum_i log2(b_i + 1)``, so
    any box can be indexed: the cost of indexing is that of the states,
    not of the box's volume.

    Attributes
    ----------
    word : ndarray of int
        The word each species is packed into, shape (N,).
    mult : ndarray of int64
        Each species' multiplier inside its word, shape (N,).
    n_words : int
    """

    word: np.ndarray
    mult: np.ndarray
    n_words: int

    @classmethod
    def for_box(cls, bounds: np.ndarray) -> "StateKeys":
        """Keys for the box ``0 <= n_i <= bounds[i]`` (exact integer arithmetic for the grouping)."""
        radix = [int(b) + 1 for b in bounds]
        if any(r > WORD_RANGE for r in radix):
            raise ModelError(f"a truncation bound above {WORD_RANGE - 1} cannot be indexed; lower n_max",
                             key="truncation.n_max")
        word, mult = np.zeros(len(radix), np.int64), np.ones(len(radix), np.int64)
        w, width = 0, 1
        for i in range(len(radix) - 1, -1, -1):   # last species least significant
            if width * radix[i] > WORD_RANGE:
                w, width = w + 1, 1
            word[i], mult[i] = w, width
            width *= radix[i]
        # words were numbered from the last species; number them from the first (sort order)
        return cls(word=w - word, mult=mult, n_words=w + 1)

    def encode(self, states: np.ndarray) -> np.ndarray:
        """Words of each row of ``states`` (inside the box), shape (n, n_words), int64."""
        states = np.asarray(states, dtype=np.int64)
        if self.n_words == 1:
            return (states @ self.mult)[:, None]
        out = np.empty((states.shape[0], self.n_words), np.int64)
        for w in range(self.n_words):
            cols = np.nonzero(self.word == w)[0]
            out[:, w] = states[:, cols] @ self.mult[cols]
        return out

    def sortable(self, words: np.ndarray) -> np.ndarray:
        """One comparable scalar per row of words: the int64 itself for one word, else its bytes.

        Several words become one ``numpy`` void scalar of their big-endian
        bytes: sorting, ``unique`` and ``searchsorted`` compare them as bytes,
        which orders non-negative big-endian words lexicographically.
        """
        if self.n_words == 1:
            return np.ascontiguousarray(words[:, 0])
        return np.ascontiguousarray(words, dtype=">i8").view(f"V{8 * self.n_words}").ravel()


def _member(ref: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.isin(q, ref)`` for a sorted ``ref`` (void keys included), by binary search."""
    if ref.size == 0:
        return np.zeros(q.shape[0], dtype=bool)
    pos = np.searchsorted(ref, q).clip(0, ref.size - 1)
    return ref[pos] == q


@dataclass(frozen=True)
class _Jumps:
    """Every reaction direction as a jump with the few species that decide whether it can fire.

    Jump ``j`` fires from ``n`` inside the box iff ``lo[j] <= n[cols[j]] <=
    hi[j]`` (``n >= y`` and ``0 <= n + nu <= b`` on the species it needs or
    changes; padded columns accept anything). Jumps are anchored at the first
    species of their reactant complex: only states holding that species are
    tried, so a token walking on a graph of many species costs its degree per
    state, not the number of reactions.
    """

    moves: np.ndarray        # (J, N) nu of each jump
    needs: np.ndarray        # (J, N) reactant complex of each jump
    cols: np.ndarray         # (J, m) species deciding the jump (padded with 0)
    lo: np.ndarray           # (J, m)
    hi: np.ndarray           # (J, m)
    anchor_species: np.ndarray   # species anchoring at least one jump
    anchor_ptr: np.ndarray       # CSR over anchor_species -> jumps
    anchor_jumps: np.ndarray
    free: np.ndarray             # jumps with an empty reactant complex (tried from every state)

    @classmethod
    def build(cls, net: Network, bounds: np.ndarray) -> "_Jumps":
        moves = np.vstack([net.nu, -net.nu]).astype(np.int64).reshape(-1, net.n_species)
        needs = np.vstack([net.Y, net.Yp]).astype(np.int64).reshape(-1, net.n_species)
        support = [np.nonzero((nd > 0) | (mv != 0))[0] for mv, nd in zip(moves, needs)]
        m = max([c.size for c in support], default=0)
        big = np.iinfo(np.int64).max
        cols = np.zeros((len(support), m), np.int64)
        lo, hi = np.full((len(support), m), -big), np.full((len(support), m), big)
        for j, c in enumerate(support):
            cols[j, :c.size] = c
            lo[j, :c.size] = np.maximum(needs[j, c], -moves[j, c])
            hi[j, :c.size] = bounds[c] - moves[j, c]
        anchor = np.array([np.argmax(nd > 0) if nd.any() else -1 for nd in needs], np.int64)
        anchored = np.nonzero(anchor >= 0)[0]
        order = anchored[np.argsort(anchor[anchored], kind="stable")]
        species, counts = np.unique(anchor[order], return_counts=True)
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(moves, needs, cols, lo, hi, species, ptr, order, np.nonzero(anchor < 0)[0])

    def fire(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(row, jump)`` of every jump that can fire from a row of ``states`` and stay in the box."""
        r, k = np.nonzero(states[:, self.anchor_species])
        counts = self.anchor_ptr[k + 1] - self.anchor_ptr[k]
        rows = np.repeat(r, counts)
        # the jumps of anchor k are anchor_jumps[ptr[k]:ptr[k+1]]: one arange shifted per block
        shift = np.repeat(self.anchor_ptr[k] - (np.cumsum(counts) - counts), counts)
        jumps = self.anchor_jumps[np.arange(rows.size) + shift]
        if self.free.size:
            rows = np.concatenate([rows, np.repeat(np.arange(states.shape[0]), self.free.size)])
            jumps = np.concatenate([jumps, np.tile(self.free, states.shape[0])])
        vals = states[rows[:, None], self.cols[jumps]]
        ok = ((vals >= self.lo[jumps]) & (vals <= self.hi[jumps])).all(axis=1)
        return rows[ok], jumps[ok]


def _sorted_rows(chunks: list[np.ndarray], word_chunks: list[np.ndarray],
                 keys: StateKeys) -> tuple[np.ndarray, np.ndarray]:
    """States and their words, stacked in key order.

    Each chunk's rows are written straight to their sorted positions: one copy
    of the states instead of two (a stack, then a reordered copy); at 1,000
    species the states are most of the memory.
    """
    words = np.vstack(word_chunks)
    order = np.argsort(keys.sortable(words), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    states = np.empty((order.size, chunks[0].shape[1]), np.int64)
    start = 0
    for c in chunks:
        states[rank[start:start + c.shape[0]]] = c
        start += c.shape[0]
    return states, words[order]


class StateSpace:
    """Enumerated class ``Gamma`` of the initial state inside the truncation box.

    States are rows of :attr:`states`, sorted lexicographically; each has an
    exact key (:class:`StateKeys`) and :meth:`index` finds rows by binary
    search on the sorted keys.

    Parameters
    ----------
    network : Network
    initial : array of int
        A state in the class every copy lives in.
    n_max : dict[str, int] or int or None
        Truncation bound; a scalar bounds the open species only.
    """

    def __init__(self, network: Network, initial, n_max=None, *, _bounds: np.ndarray | None = None):
        self.network = network
        self.initial = np.asarray(initial, dtype=np.int64)
        if self.initial.shape != (network.n_species,) or (self.initial < 0).any():
            raise ModelError(f"initial state must be {network.n_species} non-negative counts "
                             f"({', '.join(network.names)}), got {self.initial.tolist()}")
        natural = species_bounds(network, self.initial)
        self.natural_bounds = natural
        self.open = ~np.isfinite(natural)
        bounds = _bounds.astype(float) if _bounds is not None else self._box(natural, n_max)
        if (self.initial > bounds).any():
            bad = [network.names[i] for i in np.nonzero(self.initial > bounds)[0]]
            raise ModelError(f"initial counts of {', '.join(bad)} exceed the truncation bound "
                             f"{bounds.astype(int).tolist()}", key="initial")
        self.bounds = bounds.astype(np.int64)
        self.truncated = self.open | (self.bounds < natural)
        self.keys = StateKeys.for_box(self.bounds)
        bound = class_size_bound(network.conservation_laws, self.bounds, self.initial)
        if bound > 8 * sizes.STATESPACE_MAX_STATES:  # surely too big; between 1x and 8x the bound may be loose: enumerate
            raise ModelError(f"the class has up to {bound:.3g} states (truncation box {self.bounds.tolist()} "
                             f"with {network.conservation_laws.shape[0]} conservation law(s)), more than "
                             f"{sizes.STATESPACE_MAX_STATES}; lower n_max", key="truncation.n_max")
        volume = float(np.prod(self.bounds.astype(float) + 1.0))
        if volume * network.n_species <= sizes.BOX_CELLS:
            states = self._enumerate_box()
            chunks, word_chunks = [states], [self.keys.encode(states)]
        else:
            chunks, word_chunks = self._enumerate()
        self.states, self._words = _sorted_rows(chunks, word_chunks, self.keys)
        self._sorted_keys = self.keys.sortable(self._words)

    def _box(self, natural: np.ndarray, n_max) -> np.ndarray:
        """The truncation box from the natural bounds and the file's ``n_max``."""
        network = self.network
        bounds = natural.copy()
        if isinstance(n_max, dict):
            for name, b in n_max.items():
                if name not in network.names:
                    raise ModelError(f"truncation bound for unknown species {name!r}; "
                                     f"species are {', '.join(network.names)}", key="truncation.n_max")
                bounds[network.names.index(name)] = min(bounds[network.names.index(name)], float(b))
        elif n_max is not None:
            bounds[self.open] = float(n_max)
        missing = [network.names[i] for i in np.nonzero(~np.isfinite(bounds))[0]]
        if missing:
            raise ModelError(
                f"species {', '.join(missing)} are open (no conservation law bounds them); "
                "set a truncation, e.g. [truncation] n_max = 60", key="truncation.n_max")
        return bounds

    # -- enumeration --------------------------------------------------------
    @cached_property
    def _jumps(self) -> _Jumps:
        return _Jumps.build(self.network, self.bounds)

    def _enumerate(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """States and words of the class, level by level, by breadth-first search from the initial state.

        Every kept jump n -> n + nu has its reverse kept too (n + nu >= y', both
        ends in the box), so the jump graph is undirected and the neighbours of
        BFS level k lie in levels k-1, k, k+1: checking the last two levels is
        enough (linear, not quadratic). Candidates are compared by key (the
        frontier's words plus the jump's, by linearity); only the new states
        are built in full.
        """
        jumps, kw = self._jumps, self.keys
        move_words = kw.encode(jumps.moves)
        frontier = self.initial[None, :]
        words = kw.encode(frontier)
        prev, last = kw.sortable(words[:0]), kw.sortable(words)
        chunks, word_chunks, total = [frontier], [words], 1
        while frontier.shape[0]:
            rows, jj = jumps.fire(frontier)
            if rows.size == 0:
                break
            cand = words[rows] + move_words[jj]
            keys, first = np.unique(kw.sortable(cand), return_index=True)
            new = ~(_member(prev, keys) | _member(last, keys))
            pick = first[new]
            frontier = frontier[rows[pick]] + jumps.moves[jj[pick]]
            words = cand[pick]
            prev, last = last, keys[new]
            chunks.append(frontier)
            word_chunks.append(words)
            total += frontier.shape[0]
            if total > sizes.STATESPACE_MAX_STATES:
                raise ModelError(f"the class has more than {sizes.STATESPACE_MAX_STATES} states; lower n_max",
                                 key="truncation.n_max")
        return chunks, word_chunks

    def _enumerate_box(self) -> np.ndarray:
        """The class as a connected component of the jump graph on the whole box slice.

        For boxes of at most ``crnfb.feedback.numerics.sizes.BOX_CELLS`` cells: every jump of every state at
        once (vectorised) and one ``connected_components`` call, linear in
        the box size, where the level-by-level search pays Python overhead
        per level (an open species with n_max = 60000 has 60000 levels). Such
        a box has fewer than ``2**23`` points, so one mixed-radix code indexes it.
        """
        net = self.network
        radix = self.bounds + 1
        mult = np.concatenate([[1], np.cumprod(radix[::-1])[:-1]])[::-1].astype(np.int64)
        codes = np.arange(int(np.prod(radix)), dtype=np.int64)
        states = (codes[:, None] // mult[None, :]) % radix[None, :]
        L = net.conservation_laws
        if L.shape[0]:
            keep = ((states @ L.T) == (L @ self.initial)[None, :]).all(axis=1)
            states, codes = states[keep], codes[keep]
        rows, cols = [], []
        for mv, nd in zip(net.nu, net.Y):   # forward jumps; the reverse ones are the same edges
            ok = np.nonzero((states >= nd).all(axis=1))[0]
            nxt = states[ok] + mv
            inbox = (nxt >= 0).all(axis=1) & (nxt <= self.bounds).all(axis=1)
            ok, nxt = ok[inbox], nxt[inbox]
            pos = np.searchsorted(codes, nxt @ mult)
            rows.append(ok)
            cols.append(pos)
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        g = sparse.coo_matrix((np.ones(r.size), (r, c)), shape=(codes.size, codes.size))
        _, labels = connected_components(g, directed=False)
        start = np.searchsorted(codes, self.initial @ mult)
        found = states[labels == labels[start]]
        if found.shape[0] > sizes.STATESPACE_MAX_STATES:
            raise ModelError(f"the class has {found.shape[0]} states, more than {sizes.STATESPACE_MAX_STATES}; "
                             "lower n_max",
                             key="truncation.n_max")
        return found

    # -- indexing -------------------------------------------------------------
    @property
    def size(self) -> int:
        return self.states.shape[0]

    def index(self, states: np.ndarray) -> np.ndarray:
        """Indices of ``states`` (rows) in the class; -1 where absent."""
        states = np.atleast_2d(np.asarray(states, dtype=np.int64))
        inbox = np.asarray((states >= 0).all(axis=1) & (states <= self.bounds).all(axis=1))
        return self._find(self.keys.encode(np.where(inbox[:, None], states, 0)), inbox)

    def _find(self, words: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Rows of the states with these key words (where ``valid``); -1 where absent."""
        keys = self.keys.sortable(words)
        pos = np.searchsorted(self._sorted_keys, keys).clip(0, self.size - 1)
        return np.where(valid & (self._sorted_keys[pos] == keys), pos, -1)

    @cached_property
    def visible_states(self) -> np.ndarray:
        """Distinct visible parts ``v`` (rows), sorted."""
        return self._visible[0]

    @cached_property
    def visible_index(self) -> np.ndarray:
        """For each state, the row of its visible part in :attr:`visible_states`."""
        return self._visible[1]

    @cached_property
    def _visible(self):
        vis = self.network.visible
        if vis.size == 0:
            return np.zeros((1, 0), dtype=np.int64), np.zeros(self.size, dtype=np.int64)
        vs, inv = np.unique(self.states[:, vis], axis=0, return_inverse=True)
        return vs, inv.ravel()

    @cached_property
    def log_factorial(self) -> np.ndarray:
        """``sum_i ln n_i!`` per state."""
        return gammaln(self.states + 1.0).sum(axis=1)

    # -- jumps ------------------------------------------------------------------
    #: States whose jumps are found at once in :attr:`edges` (bounds the temporaries to a few MB per species).
    _EDGE_BLOCK = 100_000

    @cached_property
    def edges(self) -> tuple[Edges, ...]:
        """Jumps of every reaction direction inside the box.

        Found for all states in blocks (:meth:`_Jumps.fire`), the targets by key
        linearity: the words of ``n + nu`` are those of ``n`` plus those of ``nu``.
        """
        net, jumps = self.network, self._jumps
        move_words = self.keys.encode(jumps.moves)
        src_blocks, jump_blocks = [], []
        for start in range(0, self.size, self._EDGE_BLOCK):
            rows, fired = jumps.fire(self.states[start:start + self._EDGE_BLOCK])
            src_blocks.append(rows + start)
            jump_blocks.append(fired)
        src = np.concatenate(src_blocks) if src_blocks else np.zeros(0, np.int64)
        jj = np.concatenate(jump_blocks) if jump_blocks else np.zeros(0, np.int64)
        order = np.lexsort((src, jj))   # by jump, sources ascending within a jump
        src, jj = src[order], jj[order]
        dst = self._find(self._words[src] + move_words[jj], np.ones(src.size, bool))
        cut = np.searchsorted(jj, np.arange(jumps.moves.shape[0] + 1))
        R = len(net.reactions)
        out = []
        for r in range(R):
            for forward in (True, False):
                j = r if forward else R + r
                s, d = src[cut[j]:cut[j + 1]], dst[cut[j]:cut[j + 1]]
                s, d = s[d >= 0], d[d >= 0]
                need = jumps.needs[j]
                c = np.nonzero(need)[0]
                coef = net.kappa[r] * falling_factorial(self.states[np.ix_(s, c)], need[c])
                expo = net.Yp[r] if forward else net.Y[r]
                out.append(Edges(r, forward, s, d, coef, expo.astype(float)))
        return tuple(out)

    # -- stationary law ------------------------------------------------------------
    def log_weights(self, theta: np.ndarray) -> np.ndarray:
        """Unnormalised ``ln pi_theta(n) = theta . n - sum ln n_i!``."""
        return self._states_float @ np.asarray(theta, float) - self.log_factorial

    @cached_property
    def _states_float(self) -> np.ndarray:
        # converted once: an int64 matrix times a float vector converts the whole matrix per call
        return self.states.astype(float)

    def stationary(self, theta: np.ndarray) -> np.ndarray:
        """Product-form stationary law on the class (sums to one)."""
        lw = self.log_weights(theta)
        return np.exp(lw - logsumexp(lw))

    # -- truncation ------------------------------------------------------------------
    @cached_property
    def enlarged(self) -> "StateSpace | None":
        """The same class on a box enlarged in every truncated direction (None if none is)."""
        if not self.truncated.any():
            return None
        b = self.bounds.copy()
        extra = np.maximum(10, np.ceil(0.5 * b)).astype(np.int64)
        # keep the enlarged class enumerable: a thinner rim still sees the tail next to the box
        while extra.max() > 2 and class_size_bound(self.network.conservation_laws, np.where(self.truncated, b + extra, b),
                                                   self.initial) > sizes.STATESPACE_MAX_STATES:
            extra = np.maximum(2, extra // 2)
        b[self.truncated] = np.minimum(b[self.truncated] + extra[self.truncated],
                                       np.where(np.isfinite(self.natural_bounds), self.natural_bounds,
                                                np.iinfo(np.int64).max // 4)[self.truncated].astype(np.int64))
        return StateSpace(self.network, self.initial, _bounds=b)

    def truncation_mass(self, theta: np.ndarray) -> float:
        """Stationary mass outside the box, estimated on the enlarged box.

        Zero when nothing is truncated. The estimate itself misses the mass
        beyond the enlarged box, which is smaller still for light tails.
        """
        big = self.enlarged
        if big is None:
            return 0.0
        lw = big.log_weights(theta)
        outside = (big.states > self.bounds).any(axis=1)
        if not outside.any():
            return 0.0
        return float(np.exp(logsumexp(lw[outside]) - logsumexp(lw)))

    def check_truncation(self, theta: np.ndarray, tol: float = 1e-6, what: str = "") -> float:
        """Truncation mass at ``theta``; :class:`TruncationError` above ``tol``."""
        lw = self.log_weights(theta)
        if np.isnan(lw).any() or (lw == np.inf).any():
            names = [n for n, t in zip(self.network.names, np.asarray(theta, float)) if not abs(t) < 1e300]
            raise ModelError(f"the stationary law overflows at these energies ({', '.join(names) or 'some'}: "
                             "energies near the float limit times the counts exceed it); use energies of "
                             "ordinary size (a few hundred kT at most)", key="species")
        m = self.truncation_mass(theta)
        if not m <= tol:
            raise TruncationError(
                f"the truncation box {dict(zip(self.network.names, self.bounds.tolist()))} drops "
                f"stationary mass {m:.3g} {what}> tolerance {tol:g}; raise n_max",
                key="truncation.n_max")
        return m

    # -- clamping consistency -----------------------------------------------------------
    def hidden_disconnected(self, visible_rows: np.ndarray | None = None) -> list[tuple[int, ...]]:
        """Visible states whose hidden states are not connected by hidden-only reactions.

        For those ``v`` the clamped ensemble cannot mix ``pi(h|v)`` (docs/theory.md
        section 4), whatever ``gamma``.
        """
        rows, cols = [], []
        for e in self.edges:
            if self.network.hidden_only[e.reaction]:
                rows.append(e.src)
                cols.append(e.dst)
        if rows:
            r, c = np.concatenate(rows), np.concatenate(cols)
        else:
            r = c = np.zeros(0, dtype=np.int64)
        g = sparse.coo_matrix((np.ones(r.size), (r, c)), shape=(self.size, self.size))
        _, labels = connected_components(g, directed=True, connection="weak")
        vi = self.visible_index
        # components per visible state in one pass (distinct (v, label) pairs counted per v): linear
        pairs = np.unique(np.stack([vi, labels]), axis=1)
        split = np.bincount(pairs[0], minlength=self.visible_states.shape[0]) > 1
        sel = np.arange(self.visible_states.shape[0]) if visible_rows is None else np.asarray(visible_rows)
        return [tuple(int(x) for x in self.visible_states[v]) for v in sel if split[v]]

    def describe(self) -> dict:
        """State count, truncation bounds and open species (for ``crnfb check``)."""
        return {
            "state_count": self.size,
            "bounds": dict(zip(self.network.names, self.bounds.tolist())),
            "open_species": [self.network.names[i] for i in np.nonzero(self.open)[0]],
            "visible_state_count": int(self.visible_states.shape[0]),
        }


__all__ = ["Edges", "falling_factorial", "species_bounds", "StateKeys", "StateSpace"]
