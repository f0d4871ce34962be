"""Shared fixtures and helpers for the test suite.

Models are loaded once per session (they are immutable value objects);
hypothesis runs with no deadline (first calls pay for imports and caches)
and a moderate number of examples so the whole suite stays fast.
"""

from __future__ import annotations

import itertools
import signal
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from crnfb.feedback import load_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.toml"))

# The default (CI) profile is derandomised: every run draws the same examples, so a red CI
# is reproducible; "thorough" and "long" draw new examples each run to find new bugs.
settings.register_profile("default", deadline=None, max_examples=30, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=300,
                          suppress_health_check=[HealthCheck.too_slow])
# fuzz tests (tests/test_fuzz.py) scale with the profile: pytest --hypothesis-profile=long
settings.register_profile("long", deadline=None, max_examples=2000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")

_CACHE: dict[str, object] = {}


def pytest_configure(config):
    """SIGINT as a foreground program has it, in the runner and (by inheritance) every process a test
    starts. A runner started as a background job of a script (``.ci/run > log &``) inherits SIGINT
    ignored (POSIX, for asynchronous lists without job control), Python then keeps ignoring it, and so
    would every ``crnfb`` a test interrupts: the signal tests would time out only because of how the
    suite was launched. Runs in the controller and in each xdist worker."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config, items):
    """Slow tests first (stable order otherwise): with several workers the longest ones start at
    once and the short ones fill the other cores, instead of one worker ending the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@pytest.fixture(autouse=True)
def _signals_left_deliverable():
    """Fail a test that leaves SIGINT or SIGTERM blocked in this process (and unblock them): every
    process it starts afterwards would inherit the mask and ignore them (three signal tests of one
    pytest worker once timed out so; crnfb.feedback.numerics.signals_guard.held)."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    yield
    after = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    left = (after - before) & _STOP_SIGNALS
    if left:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, left)
        pytest.fail(f"the test left {sorted(s.name for s in left)} blocked in the pytest process")


def example(name: str):
    """The model of ``examples/<name>.toml`` (loaded once per session)."""
    if name not in _CACHE:
        _CACHE[name] = load_model(EXAMPLES / f"{name}.toml")
    return _CACHE[name]


@pytest.fixture(scope="session")
def e1():
    return example("birth_death")


@pytest.fixture(scope="session")
def e2():
    return example("isomerisation")


@pytest.fixture(scope="session")
def e2_bimodal():
    return example("isomerisation_bimodal")


@pytest.fixture(scope="session")
def e3():
    return example("hidden_scaffold")


@pytest.fixture(scope="session")
def dimer():
    return example("dimer")


@pytest.fixture(scope="session")
def chain():
    return example("chain")


# -- independent reference implementations (share no code with feedback/) -------------------
def reachable_class(Y, Yp, initial, bounds):
    """States reachable from ``initial`` inside the box ``0 <= n <= bounds``.

    Plain breadth-first search over tuples: a reaction fires forward from
    ``n`` when ``n >= y`` and backward when ``n >= y'``; jumps leaving the
    box are dropped (docs/theory.md §1).
    """
    Y = [tuple(int(v) for v in y) for y in Y]
    Yp = [tuple(int(v) for v in y) for y in Yp]
    start = tuple(int(v) for v in initial)
    bounds = [int(b) for b in bounds]
    seen = {start}
    todo = deque([start])
    while todo:
        n = todo.popleft()
        for y, yp in zip(Y, Yp):
            for a, b in ((y, yp), (yp, y)):
                if all(ni >= ai for ni, ai in zip(n, a)):
                    m = tuple(ni - ai + bi for ni, ai, bi in zip(n, a, b))
                    if all(0 <= mi <= bi for mi, bi in zip(m, bounds)) and m not in seen:
                        seen.add(m)
                        todo.append(m)
    return seen


def box_slice(L, initial, bounds):
    """All lattice points of the box with ``L n = L n0`` (itertools over the box)."""
    L = np.asarray(L, dtype=np.int64).reshape(-1, len(initial))
    target = L @ np.asarray(initial)
    out = set()
    for n in itertools.product(*[range(int(b) + 1) for b in bounds]):
        if np.array_equal(L @ np.asarray(n), target):
            out.add(n)
    return out


def corpus_loop(shape: str, clamping: str | None = None, seeds: int = 12):
    """``(name, LinearLoop)`` of the first ``"ci"`` corpus network of ``shape`` (seeds 0, 1, ...; of that
    ``clamping`` if given) whose learned optimum has a loop fixed point.

    Whether a generated target is reached at a finite theta or only on a plateau at infinity can turn on
    the optimiser's last bits (scaffold-ci-0: a minimum on one host, a plateau on another); a plateau has no
    loop to test on (``NoFixedPoint``), so the tests that need a loop take the first network that has one.
    """
    import sys
    import tomllib

    from crnfb import Analysis, parse_model
    from crnfb.analysis.linear.fixedpoints import NoFixedPoint

    sys.path.insert(0, str(Path(__file__).parent))
    from corpus import make

    for seed in range(seeds):
        net = make(shape, seed, "ci")
        if clamping is not None and net.clamping != clamping:
            continue
        try:
            return net.name, Analysis(parse_model(tomllib.loads(net.text), net.name)).loop
        except NoFixedPoint:
            continue
    pytest.fail(f"no {clamping or ''} {shape} network with a loop fixed point among {seeds} seeds of the corpus")
