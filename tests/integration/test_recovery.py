"""Every view recovers: "all my jobs" at connect, after an outage and after the app comes back.

A scope subscription gets a snapshot of each recent job still in Redis (the job index jobwire
keeps from the events it sees); a client that comes back with the last eventId it saw gets the
missed events from the same process's window, or snapshots from any other (told which); after a
Redis outage scope subscriptions get the list again. The Redis cost of the index is counted with
three replicas on one Redis.
"""

import asyncio
import json
import time

import pytest
import redis

from conftest import Jobwire, async_test, wait_for
from test_sse import open_stream


def replica(tmp_path, name, redis_server, **settings):
    """Another jobwire process on the same Redis."""
    (tmp_path / name).mkdir()
    return Jobwire(tmp_path / name, redis_server, settings).start()


def state(job, user, status, **extra):
    """The job's state as the publishers keep it: the hash ai:job:{id}."""
    return f"ai:job:{job}", dict({"userId": user, "status": status}, **extra)


def start_job(jw, job, user, status="processing", **extra):
    """A publisher's step: the state first, then the event."""
    key, fields = state(job, user, status, **extra)
    jw.redis.client().hset(key, mapping=fields)
    kind = "complete" if status == "completed" else "status"
    jw.publish(f"ai:job:{kind}:{job}", {"jobId": job, "userId": user, "status": status})


def wait_indexed(jw, job, user):
    """Until the job is in the user's index (jobwire writes it from the event, on its Redis
    thread, after delivering it)."""
    r = jw.redis.client()
    wait_for(lambda: r.zscore(f"jobwire:user:{user}:jobs", job) is not None,
             what=f"{job} in {user}'s job index")


async def ack_and_snapshots(client, reply):
    """The snapshots an ack announced, by job id."""
    assert reply["type"] == "ack", reply
    snaps = [await client.expect_snapshot() for _ in range(reply["snapshots"])]
    assert len({s["jobId"] for s in snaps}) == len(snaps), snaps
    return {s["jobId"]: s for s in snaps}


@async_test
async def test_scope_user_shows_every_recent_job_still_in_redis(jw):
    for job in ("a1", "a2", "a3", "gone"):
        start_job(jw, job, "alice")
    start_job(jw, "b1", "bob")
    for job in ("a1", "a2", "a3", "gone"):
        wait_indexed(jw, job, "alice")
    jw.redis.client().delete("ai:job:gone")  # its TTL ran out: it drops out of the view
    jw.redis.client().hset("ai:job:a2", "status", "completed")

    alice = await jw.client("alice")
    snaps = await ack_and_snapshots(alice, await alice.request({"type": "subscribe",
                                                                "scope": "user"}))
    assert set(snaps) == {"a1", "a2", "a3"}
    assert snaps["a2"]["state"]["status"] == "completed"
    assert all(s["state"]["userId"] == "alice" for s in snaps.values())
    # Live events follow the snapshots, and bob's never reach alice.
    jw.publish("ai:job:progress:b1", {"jobId": "b1", "userId": "bob", "progress": 1})
    jw.publish("ai:job:progress:a1", {"jobId": "a1", "userId": "alice", "progress": 7})
    ev = await alice.expect_event()
    assert ev["jobId"] == "a1" and ev["payload"]["progress"] == 7
    assert jw.metric("jobwire_job_index_writes_total", result="error") == 0


@pytest.mark.jwconfig(scope_snapshot_max_jobs=3)
@async_test
async def test_scope_all_gets_the_most_recent_jobs_up_to_the_bound(jw):
    jobs = [("x1", "alice"), ("x2", "bob"), ("x3", "carol"), ("x4", "alice"), ("x5", "bob")]
    for job, user in jobs:
        start_job(jw, job, user)
        wait_indexed(jw, job, user)
    r = jw.redis.client()
    wait_for(lambda: r.zcard("jobwire:jobs:recent") == 5, what="5 jobs in the global index")
    newest = {j.decode() for j in r.zrevrange("jobwire:jobs:recent", 0, 2)}
    admin = await jw.client("root", admin=True)
    snaps = await ack_and_snapshots(admin, await admin.request({"type": "subscribe",
                                                                "scope": "all"}))
    assert set(snaps) == newest
    # A user may not ask for everyone's jobs.
    alice = await jw.client("alice")
    err = await alice.request({"type": "subscribe", "scope": "all"})
    assert err["type"] == "error" and err["code"] == "forbidden", err


def test_sse_scope_user_gets_the_same_snapshots(jw):
    for job in ("s1", "s2"):
        start_job(jw, job, "alice")
        wait_indexed(jw, job, "alice")
    start_job(jw, "sb", "bob")
    stream = open_stream(jw, user="alice", scope="user")
    stream.expect("welcome")
    ack = stream.expect("ack")
    assert ack["snapshots"] == 2, ack
    got = {stream.expect("snapshot")["jobId"] for _ in range(2)}
    assert got == {"s1", "s2"}
    stream.close()


@pytest.mark.jwconfig(reconnect_initial_ms=50, reconnect_max_ms=200,
                      redis_connect_timeout_ms=1000, redis_ping_interval_ms=1000)
@async_test
async def test_scope_subscriptions_get_the_list_again_after_an_outage(jw):
    start_job(jw, "o1", "alice")
    start_job(jw, "o2", "alice")
    wait_indexed(jw, "o1", "alice")
    wait_indexed(jw, "o2", "alice")
    alice = await jw.client("alice")
    before = await ack_and_snapshots(alice, await alice.request({"type": "subscribe",
                                                                 "scope": "user"}))
    assert set(before) == {"o1", "o2"}

    # jobwire loses Redis (connections killed, cannot log in) while o1 completes.
    admin = jw.redis.client()
    admin.config_set("requirepass", "outage-pass")
    authed = redis.Redis(host="127.0.0.1", port=jw.redis.port, password="outage-pass")
    try:
        authed.client_kill_filter(_type="pubsub")
        authed.client_kill_filter(_type="normal", skipme=True)
        await alice.expect_status(False)
        # A dashboard that connects now is told at once that it is not live.
        late = await jw.client("alice", name="late")
        assert late.welcome["live"] is False, late.welcome
        authed.hset("ai:job:o1", mapping={"status": "completed", "result": "ok"})
        authed.publish("ai:job:complete:o1", '{"jobId":"o1","userId":"alice"}')
    finally:
        authed.config_set("requirepass", "")
    status = await alice.expect_status(True)
    assert status["snapshots"] == 2, status
    after = {s["jobId"]: s for s in [await alice.expect_snapshot() for _ in range(2)]}
    assert set(after) == {"o1", "o2"}
    assert after["o1"]["state"]["status"] == "completed"
    assert after["o1"]["state"]["result"] == "ok"


async def subscribe_resuming(jw, last_event_id, name):
    client = await jw.client("alice", name=name)
    reply = await client.request({"type": "subscribe", "scope": "user",
                                  "lastEventId": last_event_id})
    assert reply["type"] == "ack", reply
    return client, reply


@async_test
async def test_an_app_back_from_the_background_learns_what_it_missed(jw, tmp_path):
    """The mobile pattern: the app goes away with the last eventId it saw; meanwhile a job starts
    and finishes. Back on the same process it gets exactly the missed events (resumed: true); on
    another replica, snapshots of every recent job, the finished one included (resumed: false)."""
    other = replica(tmp_path, "replica-b", jw.redis)
    try:
        start_job(jw, "r0", "alice")
        wait_indexed(jw, "r0", "alice")
        app = await jw.client("alice", name="app")
        await ack_and_snapshots(app, await app.request({"type": "subscribe", "scope": "user"}))
        jw.publish("ai:job:progress:r0", {"jobId": "r0", "userId": "alice", "progress": 50})
        last = (await app.expect_event())["eventId"]
        await app.close()

        start_job(jw, "r1", "alice")
        jw.publish("ai:job:progress:r1", {"jobId": "r1", "userId": "alice", "progress": 40})
        jw.publish("ai:job:progress:r1b", {"jobId": "r1b", "userId": "bob", "progress": 1})
        jw.redis.client().hset("ai:job:r1", mapping={"status": "completed", "result": "42"})
        jw.publish("ai:job:complete:r1", {"jobId": "r1", "userId": "alice", "result": "42"})
        wait_indexed(jw, "r1", "alice")
        wait_indexed(other, "r1", "alice")

        back, reply = await subscribe_resuming(jw, last, "back")
        assert reply["resumed"] is True and reply["snapshots"] == 0, reply
        missed = [await back.expect_event() for _ in range(3)]
        assert [(e["jobId"], e["kind"]) for e in missed] == \
            [("r1", "status"), ("r1", "progress"), ("r1", "complete")]
        ids = [last] + [e["eventId"] for e in missed]
        assert all(id_key(a) < id_key(b) for a, b in zip(ids, ids[1:])), ids
        assert not back.snapshots
        jw.publish("ai:job:progress:r0", {"jobId": "r0", "userId": "alice", "progress": 60})
        assert (await back.expect_event())["payload"]["progress"] == 60  # then live

        elsewhere, reply = await subscribe_resuming(other, last, "elsewhere")
        assert reply["resumed"] is False, reply
        snaps = await ack_and_snapshots(elsewhere, reply)
        assert set(snaps) == {"r0", "r1"}
        assert snaps["r1"]["state"]["status"] == "completed"
        assert snaps["r1"]["state"]["result"] == "42"
        assert jw.metric("jobwire_resumes_total", result="replayed") == 1
        assert other.metric("jobwire_resumes_total", result="snapshots") == 1
    finally:
        other.stop()


def id_key(event_id):
    epoch, n = event_id.split("-")
    return (epoch, int(n))


@pytest.mark.jwconfig(resume_window_events=20)
@async_test
async def test_a_resume_beyond_the_window_gets_snapshots_and_the_window_stays_bounded(jw):
    start_job(jw, "w1", "alice")
    wait_indexed(jw, "w1", "alice")
    observer = await jw.client("root", admin=True, name="observer")
    await observer.subscribe(jobs=["w1"])
    await observer.expect_snapshot()
    app = await jw.client("alice", name="app")
    await ack_and_snapshots(app, await app.request({"type": "subscribe", "scope": "user"}))
    jw.publish("ai:job:progress:w1", {"jobId": "w1", "userId": "alice", "progress": 0})
    last = (await app.expect_event())["eventId"]
    await app.close()
    jw.redis.client().hset("ai:job:w1", "progress", "100")
    for i in range(1, 101):
        jw.publish("ai:job:progress:w1", {"jobId": "w1", "userId": "alice", "progress": i})
    for i in range(101):  # once the observer has them all, the window has seen them all
        assert (await observer.expect_event())["payload"]["progress"] == i
    assert jw.metric("jobwire_resume_window_events") == 20
    assert 0 < jw.metric("jobwire_resume_window_bytes") < 20 * 1024

    back, reply = await subscribe_resuming(jw, last, "back")
    assert reply["resumed"] is False, reply
    snaps = await ack_and_snapshots(back, reply)
    assert snaps["w1"]["state"]["progress"] == "100"
    # An id that is no eventId of this process at all: snapshots, never an error.
    again, reply = await subscribe_resuming(jw, "not-an-id", "again")
    assert reply["resumed"] is False and reply["snapshots"] == 1, reply
    assert jw.metric("jobwire_resumes_total", result="snapshots") == 2


@pytest.mark.jwconfig(job_index_refresh_s=3600)
@async_test
async def test_index_cost_with_three_replicas_is_per_job_not_per_event(jw, tmp_path):
    """With three replicas on one Redis, 20 jobs x 50 progress events cost each replica one
    index write per job and index (user, all): 120 EVALs in all, none per progress event."""
    others = [replica(tmp_path, f"replica-{i}", jw.redis, job_index_refresh_s=3600)
              for i in range(2)]
    try:
        r = jw.redis.client()
        r.config_resetstat()
        pipe = r.pipeline(transaction=False)
        for i in range(50):
            for j in range(20):
                pipe.publish(f"ai:job:progress:c{j}", json.dumps(
                    {"jobId": f"c{j}", "userId": f"u{j % 4}", "progress": i}))
        pipe.execute()
        for d in [jw] + others:
            d.wait_metric("jobwire_job_index_writes_total", lambda v: v == 40, result="ok")
        stats = r.info("commandstats")
        evals = stats.get("cmdstat_eval", {}).get("calls", 0)
        publishes = stats["cmdstat_publish"]["calls"]
        assert publishes == 1000
        assert evals == 3 * 40, stats
        for j in range(20):
            assert r.zscore(f"jobwire:user:u{j % 4}:jobs", f"c{j}") is not None
    finally:
        for d in others:
            d.stop()


@async_test
async def test_resuming_request_by_request_never_repeats_an_event(jw):
    """An app that restores its subscriptions one request at a time, each with the same
    lastEventId, gets each missed event once: a later request replays only what it adds."""
    probe = await jw.client("alice", name="probe")
    await probe.subscribe(jobs=["x0"])
    await probe.expect_snapshot()
    jw.publish("ai:job:progress:x0", {"jobId": "x0", "userId": "alice", "progress": 0})
    last = (await probe.expect_event())["eventId"]
    for job in ("x1", "x2", "x1", "x2"):
        jw.publish(f"ai:job:progress:{job}", {"jobId": job, "userId": "alice", "progress": 1})
    jw.publish("ai:job:status:x1", {"jobId": "x1", "userId": "alice", "status": "done"})
    jw.publish("ai:job:progress:x0", {"jobId": "x0", "userId": "alice", "progress": 2})
    await probe.expect_event()  # the last one is routed: the window holds all of them

    app = await jw.client("alice", name="app")
    r1 = await app.request({"type": "subscribe", "jobs": ["x1"], "kinds": ["progress"],
                            "lastEventId": last})
    assert r1["type"] == "ack" and r1["resumed"] is True, r1
    got = [await app.expect_event() for _ in range(2)]
    assert [(e["jobId"], e["kind"]) for e in got] == [("x1", "progress")] * 2
    # The same job again with a wider filter: only the kind it adds; then another job.
    r2 = await app.request({"type": "subscribe", "jobs": ["x1", "x2"], "lastEventId": last})
    assert r2["type"] == "ack" and r2["resumed"] is True, r2
    got = [await app.expect_event() for _ in range(3)]
    assert [(e["jobId"], e["kind"]) for e in got] == \
        [("x2", "progress"), ("x2", "progress"), ("x1", "status")]
    # Nothing more was owed: the next event is the marker.
    await app.expect_marker_first(
        lambda: jw.publish("ai:job:progress:x2", {"jobId": "x2", "userId": "alice", "n": 9}),
        "x2")


@pytest.mark.jwconfig(job_index_refresh_s=3600)
def test_a_job_first_seen_without_a_user_joins_the_users_index_when_named(jw):
    r = jw.redis.client()
    jw.publish("ai:job:status:n1", {"jobId": "n1", "status": "queued"})  # names no user yet
    wait_for(lambda: r.zscore("jobwire:jobs:recent", "n1") is not None, what="n1 indexed")
    jw.publish("ai:job:status:n1", {"jobId": "n1", "userId": "alice", "status": "running"})
    wait_indexed(jw, "n1", "alice")  # at once, not a refresh period later
    jw.publish("ai:job:progress:n1", {"jobId": "n1", "userId": "alice", "progress": 5})
    jw.wait_metric("jobwire_resume_window_events", lambda v: v == 3)
    assert jw.metric("jobwire_job_index_writes_total", result="ok") == 2  # all, then alice's


@async_test
async def test_a_scope_subscribe_right_after_a_jobs_first_event_lists_it(jw):
    """Index writes wait to go out in batches, but never behind a read of the index: a
    dashboard opened just after a job started lists it (without the flush before the read,
    the write was still waiting and the job missing)."""
    watcher = await jw.client("root", admin=True)
    await ack_and_snapshots(watcher, await watcher.request({"type": "subscribe", "scope": "all"}))
    for i in range(5):
        job = f"fresh{i}"
        start_job(jw, job, "alice")
        ev = await watcher.expect_event()  # jobwire has seen the job's first event
        assert ev["jobId"] == job, ev
        alice = await jw.client("alice")
        snaps = await ack_and_snapshots(alice, await alice.request({"type": "subscribe",
                                                                    "scope": "user"}))
        assert job in snaps, (job, sorted(snaps))
        await alice.close()
    jw.wait_metric("jobwire_job_index_writes_total", lambda v: v == 10, result="ok")
