"""Stopping: SIGTERM/SIGINT end the daemon with exit 0, closing clients with 1001."""

import asyncio
import signal

import pytest

from conftest import async_test


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@async_test
async def test_signal_with_clients_connected(jw, sig):
    clients = [await jw.client(u) for u in ("alice", "bob", "carol")]
    for c in clients:
        await c.subscribe(jobs=["job_1"])
    jw.publish("ai:job:progress:job_1", {"jobId": "job_1", "userId": "alice"})
    await clients[0].expect_event()

    jw.proc.send_signal(sig)
    codes = await asyncio.gather(*(c.expect_closed() for c in clients))
    assert codes == [1001] * 3, f"close codes on shutdown: {codes}"
    assert jw.stop() == 0  # waits for the exit, checks status and sanitizer output


def test_sigterm_idle(jw):
    assert jw.stop() == 0
