"""One stalled client among 1,000: the others get every event promptly, the stalled one is cut
off with 4008, and the server's memory stays bounded."""

import asyncio
import json
import resource
import socket
import time

import pytest
import websockets

from conftest import WsClient, async_test, ws_url

RECEIVERS = 1000
SMALL = 60           # events every receiver must get
BIG = 300            # 30 KB events only the stalled client subscribes to


def sanitized(pid):
    """AddressSanitizer keeps freed memory in quarantine: RSS says little about leaks there."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def receiver(jw, i):
    ws = await websockets.connect(ws_url(jw.port, "crowd"), compression=None,
                                  max_queue=None, ping_interval=None)
    await ws.recv()  # welcome
    await ws.send(json.dumps({"type": "subscribe", "id": "s", "jobs": ["small"]}))
    while json.loads(await ws.recv())["type"] != "snapshot":
        pass
    return ws


async def count_events(ws, n, timeout):
    got = 0
    deadline = time.monotonic() + timeout
    while got < n:
        raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        got += raw.startswith('{"type":"event"')
    return got


@pytest.mark.jwconfig(client_queue_max_bytes=256 * 1024, max_connections_per_ip=0,
                      max_connections_per_user=0, log_level="warn")
@async_test
async def test_stalled_client_does_not_delay_the_others(jw):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    receivers = []
    for start in range(0, RECEIVERS, 100):  # connect in batches
        receivers += await asyncio.gather(*(receiver(jw, i)
                                            for i in range(start, start + 100)))
    # The stalled client: a tiny receive buffer, and it stops reading after its snapshot.
    sock = socket.create_connection(("127.0.0.1", jw.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ws = await websockets.connect(ws_url(jw.port, "staller"), sock=sock, compression=None,
                                  max_queue=1, read_limit=1024, ping_interval=None)
    stalled = WsClient(ws, None, "stalled")
    stalled.welcome = await stalled.recv_json()
    await stalled.subscribe(jobs=["big"])
    await stalled.expect_snapshot()
    stalled.ws.transport.pause_reading()
    rss_before = rss_kb(jw.proc.pid)

    pad = "x" * 30000
    t0 = time.monotonic()
    for k in range(max(BIG, SMALL)):
        if k < BIG:
            jw.publish("ai:job:status:big", {"jobId": "big", "userId": "staller", "k": k,
                                             "pad": pad})
        if k < SMALL:
                jw.publish("ai:job:status:small", {"jobId": "small", "userId": "crowd", "k": k})
    counts = await asyncio.gather(*(count_events(ws, SMALL, 30) for ws in receivers))
    elapsed = time.monotonic() - t0
    assert counts == [SMALL] * RECEIVERS
    # ~9 MB were queued towards one client, yet every other one got all its events.
    jw.wait_metric("jobwire_client_closes_total", lambda v: v == 1, reason="slow_consumer")
    stalled.ws.transport.resume_reading()
    assert await stalled.expect_closed() == 4008
    growth_mb = (rss_kb(jw.proc.pid) - rss_before) / 1024
    assert growth_mb < (512 if sanitized(jw.proc.pid) else 64), f"RSS grew {growth_mb:.1f} MB"
    assert jw.metric("jobwire_queue_bytes") < 1024 * 1024
    print(f"{RECEIVERS} receivers x {SMALL} events in {elapsed:.2f} s; RSS +{growth_mb:.1f} MB")
    await asyncio.gather(*(ws.close() for ws in receivers))
