"""Stopping: SIGTERM/SIGINT drain the clients (goaway, 1001) and end the daemon with exit 0."""

import asyncio
import signal
import time

import pytest

from conftest import async_test, expect_refused, ws_url


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.jwconfig(drain_window_ms=500, drain_window_sigint_ms=200)
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


async def read_until_closed(client):
    """(goaway message or None, close code, monotonic time of the close)."""
    goaway = None
    while True:
        try:
            msg = await client.recv_json()
        except AssertionError:
            raise
        except Exception:  # the connection closed
            break
        if msg["type"] == "goaway":
            goaway = msg
    await asyncio.wait_for(client.ws.wait_closed(), 10)
    return goaway, client.ws.close_code, time.monotonic()


@pytest.mark.jwconfig(drain_window_ms=1500, drain_reconnect_max_ms=800)
@async_test
async def test_sigterm_drains_over_the_window(jw):
    clients = [await jw.client(f"user{i}") for i in range(12)]
    t0 = time.monotonic()
    jw.proc.send_signal(signal.SIGTERM)
    # Not ready as soon as the signal is handled, and nobody new gets in while the old clients
    # are still served.
    jw.wait_status("/readyz", 503)
    await expect_refused(ws_url(jw.port, "late"), (503,))
    assert jw.metric("jobwire_connections_rejected_total", reason="draining") >= 1
    results = await asyncio.gather(*(read_until_closed(c) for c in clients))
    for goaway, code, _ in results:
        assert code == 1001
        assert goaway is not None and 0 <= goaway["reconnectAfterMs"] <= 800, goaway
    delays = {g["reconnectAfterMs"] for g, _, _ in results}
    assert len(delays) > 1, "every client was given the same reconnect delay"
    closes = sorted(t for _, _, t in results)
    assert closes[-1] - closes[0] >= 0.6, "closes were not spread over the window"
    assert closes[-1] - t0 <= 1.5 + 0.5
    assert jw.stop() == 0
    assert time.monotonic() - t0 <= 1.5 + 2.0


@pytest.mark.jwconfig(drain_window_ms=20000, drain_window_sigint_ms=300)
@async_test
async def test_sigint_drains_faster(jw):
    clients = [await jw.client(f"user{i}") for i in range(6)]
    t0 = time.monotonic()
    jw.proc.send_signal(signal.SIGINT)
    results = await asyncio.gather(*(read_until_closed(c) for c in clients))
    assert [code for _, code, _ in results] == [1001] * 6
    assert max(t for _, _, t in results) - t0 <= 0.3 + 0.7
    assert jw.stop() == 0


@pytest.mark.jwconfig(ws_ping_interval_s=1, ws_pong_timeout_s=1)
@async_test
async def test_keepalive_pings_idle_clients_and_drops_silent_ones(jw):
    alive = await jw.client("alice", name="alive")
    silent = await jw.client("bob", name="silent")
    silent.ws.transport.pause_reading()  # never sees the PING, never answers it
    # Poll without blocking the event loop, so that the alive client answers its PINGs.
    deadline = time.monotonic() + 10
    while jw.metric("jobwire_connections", transport="websocket") != 1:
        assert time.monotonic() < deadline, "the silent client was not dropped"
        await asyncio.sleep(0.05)
    assert jw.metric("jobwire_connections_accepted_total") == 2
    # The answering client outlived several PING rounds and is still served.
    await alive.ping()
    assert alive.ws.open
