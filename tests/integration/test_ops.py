"""Operations: metrics that move with traffic, JSON logs, and secrets that never reach the log."""

import json

import pytest

from conftest import Jobwire, RedisServer, async_test


@async_test
async def test_metrics_move_with_traffic(jw):
    m = jw.metrics()
    assert m[("jobwire_build_info", frozenset({("version", "0.1.0")}))] == 1
    assert m[("jobwire_process_resident_memory_bytes", frozenset())] > 1_000_000
    assert m[("jobwire_process_start_time_seconds", frozenset())] > 1_600_000_000

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
    assert any(conn_id in r["msg"] and r["module"] == "session" for r in records), \
        f"no session line names {conn_id}"


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
