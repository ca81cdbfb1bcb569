"""Bad client messages get an error reply (connection stays usable) or the documented close."""

import json

import pytest

from conftest import async_test


async def expect_error(client, msg, code, rid=None):
    if isinstance(msg, dict):
        r = await client.request(msg)
        rid = msg.get("id", rid)
    else:
        await client.send(msg)
        r = await client.reply()
    assert r["type"] == "error", f"{msg!r} answered {r}"
    assert r["code"] == code, f"{msg!r}: expected code {code}, got {r}"
    assert isinstance(r.get("message", ""), str)
    return r


@async_test
async def test_not_json_is_bad_json_and_connection_stays_open(jw):
    alice = await jw.client("alice")
    for raw in ("hello{", "", "[1,2]", '"just a string"', "42", '{"type":"ping"'):
        await expect_error(alice, raw, "bad_json")
        await alice.ping()  # still open and answering


@async_test
async def test_unknown_type(jw):
    alice = await jw.client("alice")
    r = await expect_error(alice, {"type": "frobnicate", "id": "u1"}, "unknown_type")
    assert r["id"] == "u1"
    # A missing or non-string type: either code describes it.
    for msg in ({"id": "u2"}, {"type": 5, "id": "u3"}):
        r = await alice.request(msg)
        assert r["type"] == "error" and r["code"] in ("bad_request", "unknown_type"), r
    await alice.ping()


@pytest.mark.parametrize("job", ["", "j" * 129, "j" * 200, "a\u0001b", "a\nb"],
                         ids=["empty", "129", "200", "ctrl01", "newline"])
@async_test
async def test_bad_job_id(jw, job):
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["alice_marker"])
    r = await expect_error(alice, {"type": "subscribe", "id": "b1", "jobs": ["good", job]},
                           "bad_job_id")
    assert r["id"] == "b1"
    # Applied whole or not at all: "good" was not subscribed.
    jw.publish("ai:job:progress:good", {"jobId": "good", "userId": "alice"})
    await alice.expect_marker_first(
        lambda: jw.publish("ai:job:progress:alice_marker",
                           {"jobId": "alice_marker", "userId": "alice"}), "alice_marker")


@async_test
async def test_job_id_of_128_bytes_is_accepted(jw):
    alice = await jw.client("alice")
    job = "j" * 128
    await alice.subscribe(jobs=[job])
    jw.publish(f"ai:job:progress:{job}", {"jobId": job, "userId": "alice"})
    assert (await alice.expect_event())["jobId"] == job


@pytest.mark.parametrize("msg", [
    {"type": "subscribe", "jobs": ["job_1"], "scope": "user"},
    {"type": "subscribe"},
    {"type": "subscribe", "jobs": "job_1"},
    {"type": "subscribe", "jobs": []},
    {"type": "subscribe", "scope": "everything"},
    {"type": "subscribe", "scope": 3},
    {"type": "subscribe", "jobs": ["job_1"], "kinds": "progress"},
    {"type": "unsubscribe", "jobs": ["job_1"], "scope": "user"},
    {"type": "unsubscribe"},
], ids=["jobs_and_scope", "neither", "jobs_string", "jobs_empty", "scope_unknown",
        "scope_int", "kinds_string", "unsub_both", "unsub_neither"])
@async_test
async def test_bad_request(jw, msg):
    alice = await jw.client("alice")
    await expect_error(alice, dict(msg, id="q1"), "bad_request")
    await alice.ping()


@pytest.mark.parametrize("rid", ["x" * 65, {"nested": 1}, [1], True],
                         ids=["too_long", "object", "array", "bool"])
@async_test
async def test_bad_request_id(jw, rid):
    alice = await jw.client("alice")
    # The id itself is invalid, so the error need not echo it.
    await expect_error(alice, json.dumps({"type": "ping", "id": rid}), "bad_request")
    await alice.ping()


@async_test
async def test_bad_kind(jw):
    alice = await jw.client("alice")
    await expect_error(alice, {"type": "subscribe", "id": "k", "jobs": ["job_1"],
                               "kinds": ["progress", "explosion"]}, "bad_kind")


@async_test
async def test_request_ids_are_echoed_as_strings(jw):
    alice = await jw.client("alice")
    await alice.send({"type": "ping", "id": 5})
    r = await alice.reply("5")
    assert r == {"type": "pong", "id": "5"} or (r["type"] == "pong" and r["id"] == "5")
    await alice.send({"type": "ping", "id": "x" * 64})
    assert (await alice.reply("x" * 64))["type"] == "pong"
    await alice.send({"type": "ping"})
    r = await alice.reply()
    assert r["type"] == "pong" and r.get("id") in (None, ""), r
    # Unknown fields are ignored.
    await alice.send({"type": "ping", "id": "p", "future_field": [1, 2]})
    assert (await alice.reply("p"))["type"] == "pong"


@pytest.mark.jwconfig(client_max_subscriptions=3)
@async_test
async def test_too_many_subscriptions(jw):
    alice = await jw.client("alice")
    await alice.subscribe(jobs=["alice_marker", "job_a"])
    await expect_error(alice, {"type": "subscribe", "id": "t", "jobs": ["job_c", "job_d"]},
                       "too_many_subscriptions")
    # Nothing of the refused request was applied: job_c was not subscribed.
    jw.publish("ai:job:progress:job_c", {"jobId": "job_c", "userId": "alice"})
    await alice.expect_marker_first(
        lambda: jw.publish("ai:job:progress:alice_marker",
                           {"jobId": "alice_marker", "userId": "alice"}), "alice_marker")
    await alice.subscribe(jobs=["job_c"])           # 3 of 3
    await expect_error(alice, {"type": "subscribe", "id": "t2", "jobs": ["job_d"]},
                       "too_many_subscriptions")
    # At the limit, re-subscribing held jobs (to change their kinds) is still allowed.
    await alice.subscribe(jobs=["job_a", "job_c"], kinds=["complete"])
    await alice.unsubscribe(jobs=["job_a"])
    await alice.subscribe(jobs=["job_d"])           # room again after unsubscribe


@async_test
async def test_binary_message_closes_1003(jw):
    alice = await jw.client("alice")
    await alice.send(b"\x00\x01binary")
    assert await alice.expect_closed() == 1003
    bob = await jw.client("bob")   # the daemon is still serving others
    await bob.ping()


@pytest.mark.jwconfig(client_max_message_bytes=1024)
@async_test
async def test_message_too_large_closes_1009(jw):
    alice = await jw.client("alice")
    # Just under the limit is fine.
    small = json.dumps({"type": "ping", "id": "s", "pad": "x" * 900})
    assert len(small) <= 1024
    await alice.send(small)
    assert (await alice.reply("s"))["type"] == "pong"
    big = json.dumps({"type": "ping", "id": "b", "pad": "x" * 5000})
    await alice.send(big)
    assert await alice.expect_closed() == 1009
    bob = await jw.client("bob")
    await bob.ping()
