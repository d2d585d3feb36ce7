"""Noticing a daemon whose event loop turns but whose chunks have stopped flowing.

systemd's watchdog proves that the loop runs; it says nothing of a consumer stuck
on an await that never returns, with the sources still queueing. `StallGuard`
watches the queue: chunks waiting and none taken for ``STALL_SECONDS`` is a stall.
The daemon then logs every asyncio task's and thread's stack (what was stuck, for
the bug report), stops pinging the watchdog and exits 1, so that systemd restarts
it and the restart safety (inbox rescan, ingest log, outbox) picks up from there.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import threading
import time
import traceback

#: Seconds with chunks waiting and none taken before the daemon declares a stall
#: (a chunk normally takes milliseconds; the slowest stage, the stream detectors'
#: warm-up, well under a minute).
STALL_SECONDS = 120.0
#: Seconds between checks.
CHECK_INTERVAL = 5.0


class StallGuard:
    """Counts the chunks taken from `queue` and tells when they stopped while some wait."""

    def __init__(self, queue: asyncio.Queue, seconds: float | None = None) -> None:
        self.queue = queue
        self.seconds = STALL_SECONDS if seconds is None else seconds
        self.taken = 0
        self._seen = 0
        self._since = time.monotonic()

    def took(self) -> None:
        self.taken += 1

    def stalled(self, now: float | None = None) -> float | None:
        """Seconds without progress while chunks wait, once that exceeds the limit."""
        now = time.monotonic() if now is None else now
        if self.taken != self._seen or self.queue.empty():
            self._seen, self._since = self.taken, now
            return None
        waited = now - self._since
        return waited if waited > self.seconds else None


def loop_state(loop: asyncio.AbstractEventLoop) -> str:
    """What the event loop would do next: callbacks ready, the next timers, the file
    descriptors it selects on (to tell a loop that waits on nothing from one that turns)."""
    ready = getattr(loop, "_ready", ())
    scheduled = sorted(getattr(loop, "_scheduled", ()), key=lambda h: h.when())
    now = loop.time()
    lines = [f"--- event loop: {len(ready)} callbacks ready, {len(scheduled)} timers"]
    lines += [f"  timer in {h.when() - now:.3f} s: {h}" for h in scheduled[:5]]
    selector = getattr(loop, "_selector", None)
    if selector is not None:
        fds = sorted(key.fd for key in selector.get_map().values())
        lines.append(f"  selecting on fds {fds}")
    csock = getattr(loop, "_csock", None)
    if csock is not None:
        lines.append(f"  self-pipe write end fd {csock.fileno()}")
    return "\n".join(lines) + "\n"


def dump_on(signum: int, loop: asyncio.AbstractEventLoop) -> None:
    """On ``signum``, write the loop's state and every task's and thread's stack to stderr.

    A plain signal handler, not the loop's: it runs even when the loop itself is stuck
    (the interpreter runs it between bytecodes or when a blocking call is interrupted).
    Written with ``os.write``, so it takes no logging lock the interrupted code may hold.
    """

    def dump(_signum: int, _frame: object) -> None:
        text = f"nrt state dump (signal {signum})\n{loop_state(loop)}{stacks(loop)}"
        os.write(sys.stderr.fileno(), text.encode(errors="replace"))

    signal.signal(signum, dump)


def stacks(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """Every asyncio task's and every thread's stack, as text for the log."""
    out = io.StringIO()
    for task in asyncio.all_tasks(loop):
        out.write(f"--- task {task.get_name()} (outermost first)\n")
        out.writelines(_awaiting(task.get_coro()))
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        out.write(f"--- thread {names.get(ident, ident)}\n")
        out.write("".join(traceback.format_stack(frame)))
    return out.getvalue()


def _awaiting(coro: object) -> list[str]:
    """The chain of coroutines `coro` is suspended in (``Task.print_stack`` shows only the
    outermost frame of a suspended task)."""
    lines = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}\n')
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return lines
