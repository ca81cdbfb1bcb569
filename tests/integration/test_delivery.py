"""Events from Redis reach the clients that subscribed and may see them, and nobody else."""

import pytest

from conftest import Jobwire, WsClient, async_test, ws_connect, ws_url


def marker(jw, job, user):
    """A publisher of an event `user` may see on `job`, for expect_marker_first()."""
    return lambda: jw.publish(f"ai:job:status:{job}", {"jobId": job, "userId": user,
                                                       "status": "marker"})


@async_test
async def test_delivery_fields_and_seq(jw):
    alice = await alice_client(jw)
    ack = await alice.subscribe(jobs=["job_1"])
    assert ack["op"] == "subscribe" and ack["scope"] == "jobs" and ack["jobs"] == ["job_1"]
    snap = await alice.expect_snapshot()  # no state in Redis yet
    assert snap["jobId"] == "job_1" and snap["state"] is None and snap["seq"] == 1

    payload = {"jobId": "job_1", "userId": "alice", "progress": 45}
    assert jw.publish("ai:job:progress:job_1", payload) == 1, "daemon is not subscribed in Redis"
    ev = await alice.expect_event()
    assert ev["type"] == "event"
    assert ev["kind"] == "progress"
    assert ev["jobId"] == "job_1"
    assert ev["userId"] == "alice"
    assert ev["channel"] == "ai:job:progress:job_1"
    assert ev["payload"] == payload
    assert ev["seq"] == 2

    payload2 = {"eventType": "job_status_update", "jobId": "job_1", "userId": "alice",
                "status": "completed", "data": {"step": "done", "list": [1, 2.5, None, True]}}
    jw.publish("ai:job:complete:job_1", payload2)
    ev = await alice.expect_event()
    assert ev["kind"] == "complete" and ev["payload"] == payload2
    assert ev["seq"] == 3
    await alice.close()


async def alice_client(jw):
    return await jw.client("alice")


@async_test
async def test_channel_without_job_id_uses_payload(jw):
    alice = await alice_client(jw)
    await alice.subscribe(jobs=["job_7"])
    payload = {"jobId": "job_7", "userId": "alice", "status": "completed"}
    jw.publish("ai:job:status", payload)
    ev = await alice.expect_event()
    assert (ev["kind"], ev["jobId"], ev["userId"]) == ("status", "job_7", "alice")
    assert ev["channel"] == "ai:job:status"
    assert ev["payload"] == payload


@async_test
async def test_channel_job_id_wins_and_may_contain_colons(jw):
    alice = await alice_client(jw)
    await alice.subscribe(jobs=["a:b:c", "job_x"])
    jw.publish("ai:job:progress:a:b:c", {"jobId": "job_x", "userId": "alice", "progress": 1})
    ev = await alice.expect_event()
    assert ev["jobId"] == "a:b:c" and ev["kind"] == "progress"
    # Only one event: the payload's job_x must not produce a second delivery.
    await alice.expect_marker_first(marker(jw, "job_x", "alice"), "job_x")


@async_test
async def test_integer_user_and_job_ids(jw):
    user7 = await jw.client("7")
    await user7.subscribe(jobs=["42"])
    payload = {"jobId": 42, "userId": 7, "progress": 10}
    jw.publish("ai:job:progress", payload)
    ev = await user7.expect_event()
    assert str(ev["jobId"]) == "42" and str(ev["userId"]) == "7"
    assert ev["payload"] == payload


@async_test
async def test_kinds_filter(jw):
    alice = await alice_client(jw)
    ack = await alice.subscribe(jobs=["job_1"], kinds=["complete"])
    assert sorted(ack["kinds"]) == ["complete"]
    jw.publish("ai:job:progress:job_1", {"jobId": "job_1", "userId": "alice", "progress": 50})
    jw.publish("ai:job:complete:job_1", {"jobId": "job_1", "userId": "alice"})
    ev = await alice.expect_event()
    assert ev["kind"] == "complete", f"progress passed a kinds=[complete] filter: {ev}"

    # Re-subscribing replaces the filter: now progress only.
    ack = await alice.subscribe(jobs=["job_1"], kinds=["progress"])
    assert sorted(ack["kinds"]) == ["progress"]
    jw.publish("ai:job:complete:job_1", {"jobId": "job_1", "userId": "alice"})
    jw.publish("ai:job:progress:job_1", {"jobId": "job_1", "userId": "alice", "progress": 60})
    ev = await alice.expect_event()
    assert ev["kind"] == "progress", f"complete passed a kinds=[progress] filter: {ev}"


@async_test
async def test_other_kind(jw):
    alice = await alice_client(jw)
    await alice.subscribe(jobs=["job_1"], kinds=["other"])
    jw.publish("ai:job:status:job_1", {"jobId": "job_1", "userId": "alice"})
    jw.publish("ai:job:heartbeat:job_1", {"jobId": "job_1", "userId": "alice"})
    ev = await alice.expect_event()
    assert ev["kind"] == "heartbeat" and ev["jobId"] == "job_1", ev


@async_test
async def test_user_isolation_job_subscription(jw):
    alice = await jw.client("alice")
    bob = await jw.client("bob")
    await alice.subscribe(jobs=["job_1"])
    await bob.subscribe(jobs=["job_1", "bob_marker"])
    await bob.subscribe(scope="user")
    denied_before = jw.metric("jobwire_deliveries_denied_total")

    jw.publish("ai:job:progress:job_1", {"jobId": "job_1", "userId": "alice", "progress": 45})
    ev = await alice.expect_event()  # positive control: the event did go through the bridge
    assert ev["jobId"] == "job_1"
    await bob.expect_marker_first(marker(jw, "bob_marker", "bob"), "bob_marker")
    jw.wait_metric("jobwire_deliveries_denied_total", lambda v: v > denied_before,
                   what="jobwire_deliveries_denied_total to grow")


@async_test
async def test_event_without_user_reaches_admins_only(jw):
    ops = await jw.client("ops", admin=True)
    assert ops.welcome["admin"] is True
    alice = await jw.client("alice")
    await ops.subscribe(scope="all")
    await alice.subscribe(jobs=["job_9", "alice_marker"])
    await alice.subscribe(scope="user")

    payload = {"jobId": "job_9", "status": "completed"}
    jw.publish("ai:job:status:job_9", payload)
    ev = await ops.expect_event()
    assert ev["jobId"] == "job_9" and ev["payload"] == payload
    assert "userId" not in ev or ev["userId"] in (None, "")
    await alice.expect_marker_first(marker(jw, "alice_marker", "alice"), "alice_marker")


@async_test
async def test_admin_scope_all_sees_every_user(jw):
    ops = await jw.client("ops", admin=True)
    ack = await ops.subscribe(scope="all")
    assert ack["scope"] == "all"
    for user in ("alice", "bob"):
        jw.publish(f"ai:job:progress:{user}_job", {"jobId": f"{user}_job", "userId": user})
    got = [(await ops.expect_event())["userId"] for _ in range(2)]
    assert got == ["alice", "bob"]


@async_test
async def test_scope_user(jw):
    alice = await jw.client("alice")
    ack = await alice.subscribe(scope="user")
    assert ack["scope"] == "user"
    jw.publish("ai:job:progress:job_a", {"jobId": "job_a", "userId": "alice", "progress": 1})
    jw.publish("ai:job:progress:job_b", {"jobId": "job_b", "userId": "bob", "progress": 1})
    jw.publish("ai:job:progress:job_c", {"jobId": "job_c", "userId": "alice", "progress": 2})
    assert (await alice.expect_event())["jobId"] == "job_a"
    assert (await alice.expect_event())["jobId"] == "job_c", "bob's job_b reached alice"


@async_test
async def test_event_delivered_once_when_several_subscriptions_match(jw):
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["job_a", "alice_marker"])
    await alice.subscribe(scope="user")
    jw.publish("ai:job:progress:job_a", {"jobId": "job_a", "userId": "alice"})
    assert (await alice.expect_event())["jobId"] == "job_a"
    await alice.expect_marker_first(marker(jw, "alice_marker", "alice"), "alice_marker")


@async_test
async def test_scope_all_forbidden_for_non_admin(jw):
    alice = await jw.client("alice")
    r = await alice.request({"type": "subscribe", "id": "s1", "scope": "all"})
    assert r["type"] == "error" and r["code"] == "forbidden" and r["id"] == "s1", r
    # The refused request had no effect: bob's events still do not reach alice.
    await alice.subscribe(jobs=["alice_marker"])
    jw.publish("ai:job:progress:job_b", {"jobId": "job_b", "userId": "bob"})
    await alice.expect_marker_first(marker(jw, "alice_marker", "alice"), "alice_marker")


@async_test
async def test_unsubscribe(jw):
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["job_1", "alice_marker"])
    jw.publish("ai:job:progress:job_1", {"jobId": "job_1", "userId": "alice", "progress": 1})
    assert (await alice.expect_event())["jobId"] == "job_1"

    ack = await alice.unsubscribe(jobs=["job_1"])
    assert ack["op"] == "unsubscribe" and ack["jobs"] == ["job_1"]
    jw.publish("ai:job:progress:job_1", {"jobId": "job_1", "userId": "alice", "progress": 2})
    await alice.expect_marker_first(marker(jw, "alice_marker", "alice"), "alice_marker")

    # Idempotent: unsubscribing what is not subscribed is acknowledged.
    await alice.unsubscribe(jobs=["never_subscribed"])
    await alice.unsubscribe(jobs=["job_1"])


@async_test
async def test_unsubscribe_scope_user(jw):
    alice = await jw.client("alice")
    await alice.subscribe(scope="user")
    await alice.subscribe(jobs=["alice_marker"])
    ack = await alice.unsubscribe(scope="user")
    assert ack["scope"] == "user"
    jw.publish("ai:job:progress:job_z", {"jobId": "job_z", "userId": "alice"})
    await alice.expect_marker_first(marker(jw, "alice_marker", "alice"), "alice_marker")


@async_test
async def test_fan_out_to_many_clients(jw):
    clients = [await jw.client("alice", name=f"alice{i}") for i in range(5)]
    for c in clients:
        await c.subscribe(jobs=["job_1"])
    for i in range(20):
        jw.publish("ai:job:status:job_1", {"jobId": "job_1", "userId": "alice", "step": i})
    for c in clients:
        got = [(await c.expect_event())["payload"]["step"] for _ in range(20)]
        assert got == list(range(20)), f"{c.name} got {got}"


@async_test
async def test_progress_conflates_but_never_goes_backwards(jw):
    """Progress events of one job may be conflated for a client that lags; what arrives is
    increasing and always ends with the newest, and other kinds are never dropped."""
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["job_1"])
    for i in range(1, 501):
        jw.publish("ai:job:progress:job_1", {"jobId": "job_1", "userId": "alice", "progress": i})
        if i % 100 == 0:
            jw.publish("ai:job:status:job_1", {"jobId": "job_1", "userId": "alice", "step": i})
    progress, steps = [], []
    while not progress or progress[-1] != 500 or len(steps) < 5:
        ev = await alice.expect_event()
        (progress if ev["kind"] == "progress" else steps).append(
            ev["payload"].get("progress", ev["payload"].get("step")))
    assert progress == sorted(set(progress)), progress
    assert steps == [100, 200, 300, 400, 500]


@pytest.mark.parametrize("deflate", [True, False], ids=["deflate", "plain"])
@async_test
async def test_permessage_deflate_is_opt_in(tmp_path, redis_server, deflate):
    jw = Jobwire(tmp_path, redis_server, {"permessage_deflate": deflate}).start()
    try:
        ws = await ws_connect(ws_url(jw.port, "alice"))  # the client offers deflate
        negotiated = [e.name for e in ws.extensions]
        assert ("permessage-deflate" in negotiated) is deflate, negotiated
        c = WsClient(ws, None, "alice")
        c.welcome = await c.recv_json()
        await c.subscribe(jobs=["job_z"])
        payload = {"jobId": "job_z", "userId": "alice", "text": "compressible " * 200}
        jw.publish("ai:job:status:job_z", payload)
        assert (await c.expect_event())["payload"] == payload
        await ws.close()
    finally:
        jw.stop()
