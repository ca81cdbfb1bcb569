"""One stalled client among 1,000: the others get every event promptly, the stalled one is cut
off with 4008, and the server's memory stays bounded."""

import asyncio
import json
import re
import resource
import socket
import subprocess
import time

import pytest
import websockets

from conftest import WAIT, WsClient, async_test, ws_url

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
    # The stalled client stops reading after its snapshot. (Its receive buffer stays as the
    # kernel makes it: a tiny one would later trickle the backlog in front of the close frame,
    # up to client_send_buffer_bytes, at the silly-window pace of seconds per 100 KiB.)
    sock = socket.create_connection(("127.0.0.1", jw.port))
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


def server_send_buffers(port):
    """The kernel send buffer (skmem tb) of each established socket jobwire holds on `port`."""
    out = subprocess.run(["ss", "-tmnH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=WAIT, check=True).stdout
    return [int(m) for m in re.findall(r"\btb(\d+)", out)]


@pytest.mark.parametrize("configured", [
    pytest.param(65536, marks=pytest.mark.jwconfig(client_send_buffer_bytes=65536), id="64k"),
    pytest.param(262144, marks=pytest.mark.jwconfig(client_send_buffer_bytes="256k"), id="256k"),
    pytest.param(0, id="default")])
@async_test
async def test_client_send_buffer_is_bounded(jw, configured):
    """client_send_buffer_bytes bounds what a client that stops reading can pin in the kernel:
    the server's sockets carry it, doubled by Linux for its bookkeeping; 0 (the default) leaves
    the kernel's autotuning."""
    clients = [await jw.client("alice", name=f"c{i}") for i in range(3)]
    await clients[0].ping()
    tb = server_send_buffers(jw.port)
    assert len(tb) == 3, tb
    if configured == 0:  # the kernel's own choice, from tcp_wmem's default up
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            initial = int(f.read().split()[1])
        assert all(t >= initial for t in tb), tb
    else:
        assert tb == [2 * configured] * 3, tb
