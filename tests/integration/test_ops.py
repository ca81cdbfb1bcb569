"""Operations: metrics that move with traffic, JSON logs, and secrets that never reach the log."""

import json

import pytest

import http.client
import os
import signal
import subprocess

from conftest import (WAIT, Jobwire, RedisServer, async_test, free_port, handshake_status,
                      http_get, parse_metrics, wait_for)


@async_test
async def test_metrics_move_with_traffic(jw):
    m = jw.metrics()
    assert m[("jobwire_build_info", frozenset({("version", "0.1.0")}))] == 1
    # the standard process_* metrics of the Prometheus client libraries
    assert m[("process_resident_memory_bytes", frozenset())] > 1_000_000
    assert m[("process_virtual_memory_bytes", frozenset())] > m[("process_resident_memory_bytes",
                                                                 frozenset())]
    assert m[("process_start_time_seconds", frozenset())] > 1_600_000_000
    assert 0 < m[("process_cpu_seconds_total", frozenset())] < 600
    assert 5 < m[("process_open_fds", frozenset())] < m[("process_max_fds", frozenset())]

    alice = await jw.client("alice")
    bob = await jw.client("bob")
    await alice.subscribe(jobs=["job_1", "job_2"])
    await bob.subscribe(jobs=["job_1"])
    jw.wait_metric("jobwire_subscriptions", lambda v: v == 3)

    for i in range(5):  # status events: a burst of progress events may conflate
        jw.publish("ai:job:status:job_1", {"jobId": "job_1", "userId": "alice", "step": i})
    for _ in range(5):
        await alice.expect_event()
    jw.publish("ai:job:status:job_1", "not json")

    jw.wait_metric("jobwire_deliveries_total", lambda v: v == 5)
    jw.wait_metric("jobwire_deliveries_denied_total", lambda v: v == 5)  # bob, every event
    jw.wait_metric("jobwire_events_invalid_total", lambda v: v == 1, reason="not_json")
    jw.wait_metric("jobwire_delivery_latency_seconds_count", lambda v: v == 5)
    m = jw.metrics()
    assert m[("jobwire_delivery_latency_seconds_bucket", frozenset({("le", "+Inf")}))] == 5
    assert 0 < m[("jobwire_delivery_latency_seconds_sum", frozenset())] < 5
    jw.wait_metric("jobwire_queue_bytes", lambda v: v == 0)

    await alice.unsubscribe(jobs=["job_2"])
    jw.wait_metric("jobwire_subscriptions", lambda v: v == 2)
    await bob.close()
    jw.wait_metric("jobwire_subscriptions", lambda v: v == 1)
    jw.wait_metric("jobwire_connections", lambda v: v == 1, transport="websocket")


@pytest.mark.jwconfig(log_format="json")
@async_test
async def test_json_logs_one_object_per_line(jw):
    alice = await jw.client("alice")
    await alice.ping()
    conn_id = alice.welcome["connectionId"]
    await alice.close()
    jw.wait_metric("jobwire_connections", lambda v: v == 0, transport="websocket")
    lines = [line for line in jw.read_log().splitlines() if line.strip()]
    assert lines, "the daemon logged nothing"
    records = []
    for line in lines:
        rec = json.loads(line)   # every line is one JSON object
        assert {"ts", "level", "module", "msg"} <= rec.keys(), rec
        assert rec["level"] in ("debug", "info", "warn", "error"), rec
        records.append(rec)
    # Session lines carry the connection and user as fields of their own, and exactly one
    # "closed" line sums the connection up.
    mine = [r for r in records if r["module"] == "session" and r.get("conn") == conn_id]
    assert mine and all(r.get("user") == "alice" for r in mine[1:]), mine
    closed = [r for r in mine if r["msg"] == "closed"]
    assert len(closed) == 1, mine
    assert closed[0]["code"] == 1000 and closed[0]["duration_ms"] >= 0, closed


def test_redis_password_never_logged(tmp_path):
    secret = "s3cret-Pa55word-that-must-not-leak"
    redis_server = RedisServer(tmp_path / "good", password=secret).start()
    daemon = Jobwire(tmp_path / "good", redis_server,
                     {"redis_password": secret, "log_level": "debug"})
    try:
        daemon.start()  # ready: AUTH succeeded
    finally:
        daemon.stop()
        redis_server.stop()
    assert secret not in daemon.read_log()

    # A wrong password is reported as refused, without the password.
    wrong = "wrong-Pa55word-also-secret"
    redis_server = RedisServer(tmp_path / "bad", password=secret).start()
    daemon = Jobwire(tmp_path / "bad", redis_server,
                     {"redis_password": wrong, "log_level": "debug"})
    try:
        daemon.start(wait_ready=False)
        daemon.wait_status("/readyz", 503)
        from conftest import wait_for
        wait_for(lambda: "auth refused" in daemon.read_log(), what="auth refusal logged")
    finally:
        daemon.stop()
        redis_server.stop()
    log = daemon.read_log()
    assert wrong not in log and secret not in log


def head_status(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request("HEAD", path)
        r = conn.getresponse()
        return r.status, r.read(), int(r.headers.get("content-length", "-1"))
    finally:
        conn.close()


@pytest.mark.jwconfig(admin_port=free_port())
def test_admin_port_keeps_health_and_metrics_off_the_public_port(jw):
    admin = jw.settings["admin_port"]
    for path, want in (("/healthz", b"ok\n"), ("/readyz", b"ready\n")):
        status, body, _ = http_get(admin, path)
        assert status == 200 and body == want, (path, status, body)
        status, body, length = head_status(admin, path)
        assert status == 200 and body == b"" and length == len(want), (path, status, length)
        assert http_get(jw.port, path)[0] == 404, path  # not on the client port
    status, body, headers = http_get(admin, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert ("jobwire_connections", frozenset({("transport", "websocket")})) in \
        parse_metrics(body.decode())
    assert http_get(jw.port, "/metrics")[0] == 404
    # The admin port is no client port: no WebSocket, no SSE, no dashboard.
    assert handshake_status(admin, "/ws?user=alice") == 404
    assert http_get(admin, "/events?user=alice&jobs=j1")[0] == 404
    assert http_get(admin, "/")[0] == 404
    assert http_get(jw.port, "/")[0] == 200  # the dashboard (web_root is set by the tests)
    assert jw.metric("jobwire_connections", transport="websocket") == 0


@pytest.mark.jwconfig(admin_port=free_port(), probe_interval_ms=100, probe_timeout_ms=600)
def test_health_flag_answers_for_container_health_checks(jw):
    admin = jw.settings["admin_port"]
    run = lambda url: subprocess.run([jw.bin, "--health", url], capture_output=True,  # noqa: E731
                                     text=True, timeout=WAIT)
    ok = run(f"http://127.0.0.1:{admin}/readyz")
    assert ok.returncode == 0, ok.stderr
    missing = run(f"http://127.0.0.1:{admin}/nope")
    assert missing.returncode == 1 and "404" in missing.stderr, missing.stderr
    bad = run("ftp://127.0.0.1/readyz")
    assert bad.returncode != 0 and "expected http://" in bad.stderr, bad.stderr
    closed = run(f"http://127.0.0.1:{free_port()}/readyz")
    assert closed.returncode == 1 and closed.stderr, closed.stderr
    # Not ready: Redis stopped answering (the probe notices), and the check says so.
    jw.redis.proc.send_signal(signal.SIGSTOP)
    try:
        url = f"http://127.0.0.1:{admin}/readyz"
        wait_for(lambda: run(url).returncode == 1, what="jobwire --health to fail")
        assert "503" in run(url).stderr
    finally:
        jw.redis.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: run(url).returncode == 0, what="jobwire --health to pass again")
