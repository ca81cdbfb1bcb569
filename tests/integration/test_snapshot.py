"""Snapshots on subscribe, resync after an outage, pause/resume notices and the delivery probe."""

import signal
import threading

import pytest
import redis

from conftest import async_test, wait_for


@async_test
async def test_snapshot_from_hash_before_live_events(jw):
    r = jw.redis.client()
    r.hset("ai:job:j1", mapping={"status": "processing", "progress": "45", "userId": "alice",
                                 "message": "generating"})
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["j1"])
    snap = await alice.expect_snapshot()
    assert snap["jobId"] == "j1" and snap["source"] == "hash" and snap["userId"] == "alice"
    assert snap["state"] == {"status": "processing", "progress": "45", "userId": "alice",
                             "message": "generating"}
    jw.publish("ai:job:progress:j1", {"jobId": "j1", "userId": "alice", "progress": 50})
    ev = await alice.expect_event()
    assert ev["payload"]["progress"] == 50 and ev["seq"] == snap["seq"] + 1
    jw.wait_metric("jobwire_snapshots_total", lambda v: v == 1, result="ok")


@async_test
async def test_snapshot_from_string_key(jw):
    jw.redis.client().set("ai:job:status:j2",
                          '{"jobId":"j2","userId":"alice","status":"completed","progress":100}')
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["j2"])
    snap = await alice.expect_snapshot()
    assert snap["source"] == "string"
    assert snap["state"] == {"jobId": "j2", "userId": "alice", "status": "completed",
                             "progress": 100}


@async_test
async def test_snapshot_of_other_users_job_is_refused_and_admin_sees_it(jw):
    jw.redis.client().hset("ai:job:jb", mapping={"status": "processing", "userId": "bob"})
    alice = await jw.client("alice")
    r = await alice.request({"type": "subscribe", "jobs": ["jb"]})
    assert r["type"] == "error" and r["code"] == "forbidden", r
    assert "bob" not in str(r) and not alice.snapshots
    ops = await jw.client("ops", admin=True)
    await ops.subscribe(jobs=["jb"])
    snap = await ops.expect_snapshot()
    assert snap["state"]["userId"] == "bob"
    # alice holds no subscription: bob's events do not reach her (marker technique)
    await alice.subscribe(jobs=["alice_marker"])
    await alice.expect_snapshot()
    jw.publish("ai:job:progress:jb", {"jobId": "jb", "userId": "bob"})
    await alice.expect_marker_first(lambda: jw.publish(
        "ai:job:progress:alice_marker", {"jobId": "alice_marker", "userId": "alice"}),
        "alice_marker")


@async_test
async def test_no_duplicate_or_reorder_across_the_snapshot(jw):
    """A publisher writes the state and publishes the event atomically, as fast as it can,
    while the client subscribes: the snapshot shows progress P, and the events that follow are
    exactly P+1, P+2, ... (nothing the snapshot contains is repeated, nothing is skipped)."""
    stop = threading.Event()
    published = []

    def publisher():
        r = jw.redis.client()
        i = 0
        while not stop.is_set() and i < 20000:
            i += 1
            pipe = r.pipeline(transaction=True)
            pipe.hset("ai:job:race", mapping={"progress": str(i), "userId": "alice"})
            # a status event: progress events of one job may conflate in a lagging queue
            pipe.publish("ai:job:status:race",
                         f'{{"jobId":"race","userId":"alice","progress":{i}}}')
            pipe.execute()
            published.append(i)

    t = threading.Thread(target=publisher)
    t.start()
    try:
        wait_for(lambda: len(published) > 200, what="publisher running")
        alice = await jw.client("alice")
        await alice.subscribe(jobs=["race"])
        snap = await alice.expect_snapshot()
        p = int(snap["state"]["progress"])
        for k in range(1, 201):
            ev = await alice.expect_event()
            assert ev["payload"]["progress"] == p + k, \
                f"after snapshot progress {p}, event {k} has {ev['payload']['progress']}"
    finally:
        stop.set()
        t.join(timeout=10)


@pytest.mark.jwconfig(reconnect_initial_ms=50, reconnect_max_ms=200,
                      redis_connect_timeout_ms=1000, redis_ping_interval_ms=1000)
@async_test
async def test_completion_during_outage_is_resynced(jw):
    """jobwire loses Redis (its connections are killed and it cannot log in again) while the
    job completes; when it is back, the client is told, and gets a snapshot with the result."""
    admin = jw.redis.client()
    admin.hset("ai:job:jo", mapping={"status": "processing", "progress": "10", "userId": "alice"})
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["jo"])
    assert (await alice.expect_snapshot())["state"]["progress"] == "10"

    admin.config_set("requirepass", "outage-pass")
    try:
        authed = redis.Redis(host="127.0.0.1", port=jw.redis.port, password="outage-pass")
        authed.client_kill_filter(_type="pubsub")
        authed.client_kill_filter(_type="normal", skipme=True)
        await alice.expect_status(False)
        jw.wait_status("/readyz", 503)
        # The job completes while jobwire cannot hear it.
        authed.hset("ai:job:jo", mapping={"status": "completed", "progress": "100"})
        authed.publish("ai:job:complete:jo", '{"jobId":"jo","userId":"alice"}')
    finally:
        authed.config_set("requirepass", "")
    await alice.expect_status(True)
    snap = await alice.expect_snapshot()
    assert snap["jobId"] == "jo" and snap["state"]["status"] == "completed"
    assert snap["state"]["progress"] == "100"
    jw.wait_metric("jobwire_resyncs_total", lambda v: v >= 1)


@pytest.mark.jwconfig(probe_interval_ms=100, probe_timeout_ms=600)
def test_probe_measures_lag_and_gates_readiness(jw):
    jw.wait_metric("jobwire_upstream_probe_lag_seconds", lambda v: 0 < v < 1)
    # Redis stalls (every connection stays open, nothing is executed): the link looks alive
    # until its next health PING (15 s), but the probe notices within probe_timeout_ms.
    jw.redis.proc.send_signal(signal.SIGSTOP)
    try:
        jw.wait_status("/readyz", 503)
        assert b"probe" in jw.get("/readyz")[1]
    finally:
        jw.redis.proc.send_signal(signal.SIGCONT)
    jw.wait_status("/readyz", 200)  # probes come back
