"""``kill -USR1``: the daemon says what every task waits on, even when its loop is stuck."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

from nrt.daemon.stall import dump_on


def test_sigusr1_dumps_tasks_and_loop_state_while_the_loop_waits_on_nothing(capfd):
    """The loop blocks in select with no timer and nothing ready (only a thread could
    wake it): the handler still runs and names the task and what it awaits."""

    async def waiting_for_a_thread(done: asyncio.Future) -> str:
        return await done

    async def main() -> str:
        loop = asyncio.get_running_loop()
        dump_on(signal.SIGUSR1, loop)
        done = loop.create_future()
        task = asyncio.create_task(waiting_for_a_thread(done), name="the-waiter")

        def poke() -> None:
            threading.Event().wait(0.3)  # the loop is in select by now, with no timer
            os.kill(os.getpid(), signal.SIGUSR1)
            threading.Event().wait(0.3)
            loop.call_soon_threadsafe(done.set_result, "woken")

        threading.Thread(target=poke).start()
        return await task

    previous = signal.getsignal(signal.SIGUSR1)
    try:
        assert asyncio.run(main()) == "woken"
    finally:
        signal.signal(signal.SIGUSR1, previous)
    err = capfd.readouterr().err
    assert "nrt state dump (signal" in err
    assert "--- event loop: 0 callbacks ready, 0 timers" in err
    assert "--- task the-waiter" in err and "in waiting_for_a_thread" in err
    assert "--- thread MainThread" in err
