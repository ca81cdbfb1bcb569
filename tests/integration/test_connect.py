"""Handshake, welcome, ping, authentication and the plain HTTP endpoints."""

import json
import os

import pytest

from conftest import REPO, async_test, expect_refused, wait_for, ws_connect, ws_url


@async_test
async def test_welcome(jw):
    alice = await jw.client("alice")
    w = alice.welcome
    assert w["type"] == "welcome"
    assert w["protocol"] == 1
    assert w["userId"] == "alice"
    assert w["admin"] is False
    assert isinstance(w["connectionId"], str) and w["connectionId"]

    ops = await jw.client("ops", admin=True)
    assert ops.welcome["userId"] == "ops" and ops.welcome["admin"] is True
    assert ops.welcome["connectionId"] != w["connectionId"]

    # connectionId appears in the daemon's log lines about the connection.
    wait_for(lambda: w["connectionId"] in jw.read_log(), what="connectionId in the log")


@async_test
async def test_admin_flag_needs_admin_1(jw):
    c = await jw.client("mallory", admin=False)
    assert c.welcome["admin"] is False
    ws = await ws_connect(ws_url(jw.port, "mallory", query="admin=0"))
    w = json.loads(await ws.recv())
    assert w["type"] == "welcome" and w["admin"] is False
    await ws.close()


@async_test
async def test_ping_pong(jw):
    alice = await jw.client("alice")
    await alice.send({"type": "ping", "id": "4"})
    r = await alice.reply("4")
    assert r["type"] == "pong" and r["id"] == "4"
    for i in range(10):
        await alice.send({"type": "ping", "id": f"p{i}"})
    for i in range(10):
        assert (await alice.reply(f"p{i}"))["type"] == "pong"


@async_test
async def test_subprotocol_jobwire_v1(jw):
    ws = await ws_connect(ws_url(jw.port, "alice"), subprotocols=["jobwire.v1"])
    assert ws.subprotocol == "jobwire.v1"
    assert json.loads(await ws.recv())["type"] == "welcome"
    await ws.close()


@pytest.mark.jwconfig(dev_auth=False)
@async_test
async def test_no_auth_configured_refuses_handshake_401(jw):
    await expect_refused(ws_url(jw.port, "alice"), (401,))
    await expect_refused(ws_url(jw.port, "ops", admin=True), (401,))
    assert jw.get("/healthz")[0] == 200  # the daemon serves on
    assert jw.metric("jobwire_connections", transport="websocket") == 0


@async_test
async def test_dev_auth_bad_user_refused(jw):
    for url in (ws_url(jw.port), ws_url(jw.port, ""), ws_url(jw.port, "u" * 129),
                ws_url(jw.port, "a\x01b"), ws_url(jw.port, query="admin=1")):
        await expect_refused(url, (400, 401, 403))
    c = await jw.client("u" * 128)  # the longest valid user id
    assert c.welcome["userId"] == "u" * 128


def test_dev_auth_warning_logged(jw):
    log = jw.read_log()
    assert any("dev_auth" in line.lower() and ("warn" in line.lower() or "WARN" in line)
               for line in log.splitlines()), f"no dev_auth warning in the log:\n{log[-3000:]}"


def test_healthz_readyz(jw):
    status, body, _ = jw.get("/healthz")
    assert status == 200 and body.strip() == b"ok"
    status, body, _ = jw.get("/readyz")
    assert status == 200 and b"ready" in body


def test_unknown_path_404(jw):
    assert jw.get("/no/such/path")[0] == 404


@async_test
async def test_metrics(jw):
    status, body, headers = jw.get("/metrics")
    assert status == 200
    assert headers.get("Content-Type", "").startswith("text/plain")
    m = jw.metrics()
    assert m[("jobwire_upstream_up", frozenset())] == 1
    assert jw.metric("jobwire_connections", transport="websocket") == 0

    clients = [await jw.client("alice"), await jw.client("bob")]
    jw.wait_metric("jobwire_connections", lambda v: v == 2, transport="websocket")
    await clients[0].close()
    jw.wait_metric("jobwire_connections", lambda v: v == 1, transport="websocket")

    before = jw.metric("jobwire_events_received_total", kind="progress")
    await clients[1].subscribe(jobs=["job_1"])
    jw.publish("ai:job:progress:job_1", {"jobId": "job_1", "userId": "bob"})
    await clients[1].expect_event()
    jw.wait_metric("jobwire_events_received_total", lambda v: v == before + 1, kind="progress")


def test_static_index(jw):
    with open(os.path.join(REPO, "web", "index.html"), "rb") as f:
        expected = f.read()
    status, body, headers = jw.get("/")
    assert status == 200
    assert body == expected
    assert headers.get("Content-Type", "").startswith("text/html")
    status, body, _ = jw.get("/index.html")
    assert status == 200 and body == expected


def test_static_no_path_traversal(jw):
    for path in ("/../CMakeLists.txt", "/%2e%2e/CMakeLists.txt", "/..%2fCMakeLists.txt"):
        status, body, _ = jw.get(path)
        assert b"cmake_minimum_required" not in body, f"{path} escaped web_root"
