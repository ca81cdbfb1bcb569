"""The Redis side: bad payloads are dropped and counted, and the link survives Redis restarts."""

import json

import pytest

from conftest import WsClient, _open_clients, async_test, ws_connect, ws_url


def good(jw, job="job_1", user="alice", **extra):
    return lambda: jw.publish(f"ai:job:progress:{job}",
                              dict({"jobId": job, "userId": user, "progress": 99}, **extra))


def invalid(jw, reason):
    return jw.metric("jobwire_events_invalid_total", reason=reason)


@pytest.mark.jwconfig(max_payload_bytes=256)
@async_test
async def test_bad_payloads_dropped_and_counted(jw):
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["job_1", "job_2"])
    await alice.subscribe(scope="user")
    before = {r: invalid(jw, r) for r in ("not_json", "too_large", "no_job_id", "bad_id")}

    jw.publish("ai:job:progress:job_1", "not json{")
    jw.publish("ai:job:progress:job_1", b'{"jobId":"job_1","userId":"alice","x":"\xff\xfe"}')
    jw.publish("ai:job:progress:job_1", '{"jobId":"job_1","userId":"alice"} trailing')
    big = json.dumps({"jobId": "job_1", "userId": "alice", "pad": "x" * 400})
    jw.publish("ai:job:progress:job_1", big)
    jw.publish("ai:job:progress", {"userId": "alice", "progress": 1})
    jw.publish("ai:job:status", {"jobId": "", "userId": "alice"})
    jw.publish("ai:job:progress:job_2", {"jobId": "job_2", "userId": "u" * 200})
    jw.publish("ai:job:progress:job_2", {"jobId": "job_2", "userId": "a\u0001b"})

    # The bridge goes on: the next good event is the first thing alice sees.
    await alice.expect_marker_first(good(jw), "job_1")

    expected = {"not_json": 3, "too_large": 1, "no_job_id": 1, "bad_id": 3}
    for reason, n in expected.items():
        jw.wait_metric("jobwire_events_invalid_total", lambda v, r=reason, n=n: v == before[r] + n,
                       what=f"jobwire_events_invalid_total{{reason={reason}}} == +{n}"
                            f" (now {invalid(jw, reason)})", reason=reason)


@pytest.mark.jwconfig(max_payload_bytes=256)
@async_test
async def test_payload_at_the_size_limit_is_delivered(jw):
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["job_1"])
    obj = {"jobId": "job_1", "userId": "alice", "pad": ""}
    obj["pad"] = "x" * (256 - len(json.dumps(obj)))
    payload = json.dumps(obj)
    assert len(payload) == 256
    jw.publish("ai:job:progress:job_1", payload)
    ev = await alice.expect_event()
    assert ev["payload"] == obj


@async_test
async def test_non_object_json_payload(jw):
    ops = await jw.client("ops", admin=True)
    await ops.subscribe(scope="all")
    jw.publish("ai:job:status:job_s", "[1, 2, 3]")
    ev = await ops.expect_event()
    assert ev["jobId"] == "job_s" and ev["payload"] == [1, 2, 3]


@async_test
async def test_unicode_payload_round_trip(jw):
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["job_u"])
    payload = {"jobId": "job_u", "userId": "alice", "message": "여행 일정 생성 중 \u2603 \U0001f680",
               "quote": "a\"b\\c", "nested": {"k": [None, False, 1e-3]}}
    jw.publish("ai:job:status:job_u", payload)
    assert (await alice.expect_event())["payload"] == payload


@pytest.mark.jwconfig(reconnect_initial_ms=50, reconnect_max_ms=300, reconnect_multiplier=2.0,
                      redis_connect_timeout_ms=1000, redis_ping_interval_ms=1000)
@async_test
async def test_reconnect_after_redis_restart(jw, redis_server):
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["job_1"])
    assert (await alice.expect_snapshot())["seq"] == 1
    good(jw)()
    assert (await alice.expect_event())["seq"] == 2

    redis_server.kill9()
    jw.wait_status("/readyz", 503)
    assert jw.get("/healthz")[0] == 200
    jw.wait_metric("jobwire_upstream_up", lambda v: v == 0)
    await alice.expect_status(False)  # told that live updates pause
    await alice.ping()  # clients are served while Redis is away

    redis_server.start()  # same port
    jw.reset_publisher()
    jw.wait_status("/readyz", 200)
    await alice.expect_status(True)
    assert jw.metric("jobwire_upstream_up") == 1
    assert good(jw, progress=100)() == 1, "/readyz is 200 but jobwire is not subscribed"
    assert (await alice.expect_snapshot())["jobId"] == "job_1"  # the resync after the outage
    ev = await alice.expect_event()
    assert ev["payload"]["progress"] == 100  # seq goes on by one: WsClient checks it


@pytest.mark.jwnostart
@pytest.mark.jwconfig(reconnect_initial_ms=50, reconnect_max_ms=300)
@async_test
async def test_starts_without_redis(jw, redis_server):
    redis_server.stop()
    jw.start(wait_ready=False)
    jw.wait_status("/readyz", 503)
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["job_1"])
    redis_server.start()
    jw.reset_publisher()
    jw.wait_status("/readyz", 200)
    good(jw)()
    assert (await alice.expect_event())["jobId"] == "job_1"


@pytest.mark.jwconfig(client_queue_max_bytes=65536)
@async_test
async def test_slow_consumer_closed_4008(jw):
    fast = await jw.client("alice", name="fast")
    await fast.subscribe(jobs=["job_1"])
    # A client that stops reading (small buffers, transport paused): the server's queue grows.
    ws = await ws_connect(ws_url(jw.port, "alice"), max_queue=1, read_limit=1024,
                          write_limit=1024)
    slow = WsClient(ws, None, "slow")
    _open_clients.append(slow)
    slow.welcome = await slow.recv_json()
    await slow.subscribe(jobs=["job_1"])
    slow.ws.transport.pause_reading()

    pad = "x" * 30000
    n = 300  # ~9 MB: more than the kernel's socket buffers and the 64 KiB queue limit
    for i in range(n):  # the reading client gets everything, the other one is cut off
        # status events: progress events of one job would conflate instead of piling up
        jw.publish("ai:job:status:job_1", {"jobId": "job_1", "userId": "alice", "i": i,
                                            "pad": pad})
        assert (await fast.expect_event())["payload"]["i"] == i
    slow.ws.transport.resume_reading()
    assert await slow.expect_closed() == 4008
    await fast.ping()
