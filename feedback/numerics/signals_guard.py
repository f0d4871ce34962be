"""Python's signal handlers, as Python installed them, around calls into native libraries.

A native library may replace and later restore signal handlers with BSD
``signal()``, which installs them with ``SA_RESTART``. METIS does (GKlib's
``gk_sigtrap``/``gk_siguntrap`` around every entry point, for ``SIGTERM`` and
``SIGABRT``): after the first ``pymetis.nested_dissection`` the ``SIGTERM``
handler's flags go from ``SA_ONSTACK | SA_RESTORER`` (``0x0c000000``, what
CPython sets) to ``SA_RESTART | SA_RESTORER`` (``0x14000000``). With
``SA_RESTART`` the kernel restarts an interrupted blocking wait (``waitpid``, a
semaphore or lock acquire) instead of returning ``EINTR``, so Python never gets
to run its handler and the process ignores ``SIGTERM`` for as long as it waits
(docs/decisions.md, "Processes and signals").

:func:`python_signals` wraps such a call: it holds ``SIGINT`` and ``SIGTERM``
back while the library runs (GKlib would otherwise turn a ``SIGTERM`` into an
error return by ``longjmp``, which pymetis reports as an internal error),
then reinstalls every Python-level handler, which CPython does without
``SA_RESTART``, and lets the held signals through, so that they act as
if they had arrived just after the call.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["held", "python_signals", "TOUCHED_SIGNALS"]

#: The signals whose Python handlers are reinstalled after a native call (GKlib touches SIGTERM
#: and SIGABRT; SIGINT is Python's KeyboardInterrupt and costs nothing to include).
TOUCHED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGABRT)
#: Held back (blocked) during the call, delivered after it.
_HELD = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def held(signals) -> Iterator[None]:
    """Run the body with ``signals`` blocked in this thread, then restore the thread's mask as it was.

    Exception-safe against asynchronous exceptions: a Python signal handler
    (``KeyboardInterrupt``, a test's ``SIGALRM`` time limit) runs right after a C
    call returns, so ``held = pthread_sigmask(SIG_BLOCK, s); try: ...`` can raise
    between the block and the ``try`` and leave the signals blocked for good. A
    process that does so cannot be interrupted any more, nor can any child it
    starts (a child inherits the mask across ``fork`` and ``exec``): a CI flake
    where three signal tests of one pytest worker timed out. Here the mask is
    read without change first, and blocked inside the ``try``.
    """
    saved = signal.pthread_sigmask(signal.SIG_BLOCK, ())       # read only: nothing to undo if we stop here
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)


@contextmanager
def python_signals() -> Iterator[None]:
    """Run the body with ``SIGINT``/``SIGTERM`` held back, then restore Python's handlers.

    Only handlers that are Python callables are reinstalled: ``SIG_DFL`` and
    ``SIG_IGN`` do not depend on ``SA_RESTART``, and reinstalling ``SIG_DFL``
    would remove a C-level handler Python does not know of (``faulthandler``'s
    on ``SIGABRT``). Outside the main thread handlers cannot be set (CPython);
    there the signals are still held back during the call, and the main
    thread's next guarded call repairs the flags. The handlers are reinstalled
    while the signals are still held (:func:`held` restores the mask last, also
    when an exception interrupts the reinstalling).
    """
    in_main = threading.current_thread() is threading.main_thread()
    saved = {s: signal.getsignal(s) for s in TOUCHED_SIGNALS} if in_main else {}
    with held(_HELD):
        try:
            yield
        finally:
            for sig, handler in saved.items():
                if callable(handler):
                    signal.signal(sig, handler)
