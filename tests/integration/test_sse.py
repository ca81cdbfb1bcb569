"""Server-Sent Events at /events: the same auth, filters, snapshots and seq as the WebSocket,
Last-Event-ID, heartbeat comments, drain, slow consumers, and the CPU after a client vanishes
(libwebsockets 4.1.6 can spin on a vanished SSE client until it next writes to it; the
heartbeat bounds that, ARCHITECTURE.md).

The client here is a raw socket speaking HTTP/1.1, so that a test sees exactly the bytes the
server sends and can vanish without a goodbye. Every read has a deadline.
"""

import json
import os
import signal
import socket
import struct
import time
import urllib.parse

import pytest

import tokens as T
from conftest import WAIT, wait_for


class SseStream:
    """One GET /events. `status`, `headers` and, for a refusal, `body`; events via next()."""

    def __init__(self, port, query, headers=None, name="sse"):
        self.name = name
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        lines = [f"GET /events?{query} HTTP/1.1", f"Host: 127.0.0.1:{port}",
                 "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        self.comments = []
        self.last_seq = 0
        self.last_id = None
        self.eof = False
        head = self._read_until(b"\r\n\r\n")
        status_line, *hdrs = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for h in hdrs:
            k, _, v = h.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.body = None
        if self.status != 200:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                self._fill(time.monotonic() + WAIT)
            self.body = self.buf[:n].decode()
            self.close()

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{self.name}: nothing more within the deadline; "
                                 f"have {self.buf[-300:]!r}")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"{self.name}: nothing received in time; "
                                 f"have {self.buf[-300:]!r}") from None
        if not chunk:
            self.eof = True
            raise EOFError(f"{self.name}: the server ended the stream")
        self.buf += chunk

    def _read_until(self, sep, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while sep not in self.buf:
            self._fill(deadline)
        out, self.buf = self.buf.split(sep, 1)
        return out

    def next(self, timeout=WAIT):
        """The next event as {"id", "event", "data" (parsed JSON)}; comments are collected."""
        deadline = time.monotonic() + timeout
        while True:
            block = self._read_until(b"\n\n", max(0.01, deadline - time.monotonic()))
            ev = {"id": None, "event": "message", "data": []}
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    self.comments.append(line)
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    ev["data"].append(value)
                elif field in ("id", "event"):
                    ev[field] = value
            if not ev["data"]:
                continue  # a comment block (heartbeat)
            ev["data"] = json.loads("\n".join(ev["data"]))
            assert ev["data"]["type"] == ev["event"], f"{self.name}: {ev}"
            if ev["id"] is not None:
                # id: is the eventId (resumable); seq goes on by one per sequenced frame.
                seq = ev["data"].get("seq")
                assert ev["id"] == ev["data"].get("eventId") and seq == self.last_seq + 1, \
                    f"{self.name}: id {ev['id']}, seq {seq} after {self.last_seq}: {ev}"
                self.last_seq = seq
                self.last_id = ev["id"]
            return ev

    def expect(self, event, timeout=WAIT):
        ev = self.next(timeout)
        assert ev["event"] == event, f"{self.name}: expected {event}, got {ev}"
        return ev["data"]

    def read_to_end(self, timeout=WAIT):
        """Every event until the server ends the response."""
        out = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                out.append(self.next(max(0.01, deadline - time.monotonic())))
        except EOFError:
            return out

    def close(self):
        self.sock.close()


def query(**params):
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


def open_stream(jw, name=None, headers=None, **params):
    s = SseStream(jw.port, query(**params), headers, name or params.get("user", "sse"))
    assert s.status == 200, f"{s.name}: HTTP {s.status}: {s.body}"
    return s


def sse_count(jw):
    return jw.metric("jobwire_connections", transport="sse")


def ev(job, user, kind="progress", **payload):
    return f"ai:job:{kind}:{job}", dict({"jobId": job, "userId": user}, **payload)


# ---------------------------------------------------------------------------------------------
# dev_auth


def test_welcome_snapshot_then_events_in_order(jw):
    jw.redis.client().hset("ai:job:j1", mapping={"userId": "alice", "status": "running"})
    s = open_stream(jw, user="alice", jobs="j1")
    assert s.headers["content-type"] == "text/event-stream"
    assert s.headers["cache-control"] == "no-store"
    assert s.headers["x-accel-buffering"] == "no"
    w = s.expect("welcome")
    assert w["userId"] == "alice" and w["admin"] is False
    assert s.expect("ack")["jobs"] == ["j1"]
    snap = s.expect("snapshot")
    assert snap["jobId"] == "j1" and snap["state"]["status"] == "running" and snap["seq"] == 1
    assert sse_count(jw) == 1
    for kind in ("status", "progress", "complete"):
        jw.publish(*ev("j1", "alice", kind, step=kind))
    got = [s.next() for _ in range(3)]
    assert [e["data"]["payload"]["step"] for e in got] == ["status", "progress", "complete"]
    assert [e["data"]["seq"] for e in got] == [2, 3, 4]  # id: is each one's eventId
    assert all(e["event"] == "event" for e in got)
    s.close()
    wait_for(lambda: sse_count(jw) == 0, what="SSE gauge back to 0")
    assert jw.metric("jobwire_connections", transport="websocket") == 0


def test_multiline_payload_becomes_data_lines(jw):
    s = open_stream(jw, user="alice", jobs="j1")
    s.expect("welcome"), s.expect("ack"), s.expect("snapshot")
    jw.publish("ai:job:progress:j1", '{\n  "jobId": "j1",\r\n  "userId": "alice", "n": 7\n}')
    e = s.next()
    assert e["data"]["payload"] == {"jobId": "j1", "userId": "alice", "n": 7}


def test_kinds_filter(jw):
    s = open_stream(jw, user="alice", jobs="j1", kinds="complete,error")
    assert s.expect("welcome") and s.expect("ack")["kinds"] == ["complete", "error"]
    s.expect("snapshot")
    jw.publish(*ev("j1", "alice", "progress"))
    jw.publish(*ev("j1", "alice", "complete"))
    e = s.next()
    assert e["data"]["kind"] == "complete", e


def test_scope_user_and_isolation_between_users(jw):
    alice = open_stream(jw, user="alice", scope="user")
    bob = open_stream(jw, user="bob", jobs="ja,jb")  # ja is alice's job id
    for s in (alice, bob):
        s.expect("welcome"), s.expect("ack")
    bob.expect("snapshot"), bob.expect("snapshot")
    jw.publish(*ev("ja", "alice", "progress", secret=1))
    jw.publish(*ev("jx", "bob", "progress"))  # bob's, not on alice's scope
    jw.publish(*ev("jb", "bob", "progress", marker=1))
    jw.publish(*ev("jz", "alice", "progress", marker=1))
    e = bob.next()  # the marker comes first: alice's event on ja was never delivered
    assert e["data"]["jobId"] == "jb" and e["data"]["payload"].get("marker") == 1, e
    a1, a2 = alice.next(), alice.next()
    assert [a1["data"]["jobId"], a2["data"]["jobId"]] == ["ja", "jz"]


def test_refusals_before_the_stream_are_plain_statuses(jw):
    cases = [
        (query(user="alice"), 400, "jobs="),
        (query(user="alice", jobs="a", scope="user"), 400, "not both"),
        (query(user="alice", jobs="a", kinds="nope"), 400, "bad_kind"),
        (query(user="alice", jobs="a,,b"), 400, "bad_job_id"),
        (query(user="alice", scope="everything"), 400, "bad_request"),
        (query(user="alice", scope="all"), 403, "admin"),
        (query(jobs="a"), 401, "user"),
    ]
    for q, status, word in cases:
        s = SseStream(jw.port, q)
        assert s.status == status and word in s.body and s.body.endswith("\n"), \
            (q, s.status, s.body)
        assert "\n" not in s.body[:-1], f"more than one line: {s.body!r}"
    admin = open_stream(jw, user="ops", admin="1", scope="all")
    assert admin.expect("welcome")["admin"] is True
    assert admin.expect("ack")["scope"] == "all"
    assert sse_count(jw) == 1


@pytest.mark.jwconfig(allowed_origins="https://app.example", max_connections_per_ip=2,
                      max_connections_per_user=1)
def test_origin_and_connection_limits_as_for_websockets(jw):
    bad = SseStream(jw.port, query(user="alice", jobs="j1"), {"Origin": "https://evil.example"})
    assert bad.status == 403 and "origin" in bad.body, (bad.status, bad.body)
    first = open_stream(jw, headers={"Origin": "https://app.example"}, user="alice", jobs="j1")
    first.expect("welcome")
    # one more for alice: the stream starts, then says why and ends (as a WebSocket gets 4429)
    second = open_stream(jw, user="alice", jobs="j1")
    assert second.expect("error")["code"] == "forbidden"
    rest = second.read_to_end()
    assert [e["event"] for e in rest] == ["close"] and rest[0]["data"]["code"] == 4429, rest
    wait_for(lambda: sse_count(jw) == 1, what="the refused stream gone")
    bob = open_stream(jw, user="bob", jobs="j1")
    bob.expect("welcome")
    third = SseStream(jw.port, query(user="carol", jobs="j1"))
    assert third.status == 429 and "too many" in third.body, (third.status, third.body)
    assert sse_count(jw) == 2


def test_other_users_job_in_redis_ends_the_stream_with_forbidden(jw):
    jw.redis.client().hset("ai:job:owned", mapping={"userId": "alice"})
    s = open_stream(jw, user="bob", jobs="owned")
    s.expect("welcome")
    err = s.expect("error")
    assert err["code"] == "forbidden", err
    rest = s.read_to_end()
    assert [e["event"] for e in rest] == ["close"] and rest[0]["data"]["code"] == 4403, rest
    wait_for(lambda: sse_count(jw) == 0, what="SSE gauge back to 0")


def test_last_event_id_unknown_gets_snapshots(jw):
    """An id this process cannot resume from (another replica's, a restart's): snapshots."""
    jw.redis.client().hset("ai:job:j1", mapping={"userId": "alice", "progress": "40"})
    s = open_stream(jw, headers={"Last-Event-ID": "0badc0de-17"}, user="alice", jobs="j1")
    s.expect("welcome")
    st = s.expect("status")
    assert st == {"type": "status", "live": True, "resumed": False}, st
    assert s.expect("ack")["resumed"] is False
    snap = s.expect("snapshot")
    assert snap["state"]["progress"] == "40" and snap["seq"] == 1
    plain = open_stream(jw, user="alice", jobs="j1")
    plain.expect("welcome")
    assert plain.next()["event"] == "ack"  # no status without Last-Event-ID


def test_last_event_id_resumes_exactly_the_missed_events(jw):
    """EventSource reconnects with the last id it saw: the same process replays what came after
    it (for this subscription and user only), with no snapshot and nothing twice."""
    r = jw.redis.client()
    r.hset("ai:job:j1", mapping={"userId": "alice", "progress": "0"})
    first = open_stream(jw, user="alice", jobs="j1")
    first.expect("welcome"), first.expect("ack"), first.expect("snapshot")
    publish = lambda n, user="alice", job="j1": r.publish(
        f"ai:job:progress:{job}", json.dumps({"jobId": job, "userId": user, "progress": n}))
    publish(1)
    last = first.expect("event")
    first.close()
    for n in (2, 3):
        publish(n)
    publish(99, user="bob", job="other")  # not alice's, not her subscription
    publish(4)
    resumed = open_stream(jw, headers={"Last-Event-ID": last["eventId"]}, user="alice",
                          jobs="j1")
    resumed.expect("welcome")
    assert resumed.expect("status")["resumed"] is True
    assert resumed.expect("ack")["resumed"] is True
    got = [resumed.expect("event")["payload"]["progress"] for _ in range(3)]
    assert got == [2, 3, 4], got
    publish(5)
    assert resumed.expect("event")["payload"]["progress"] == 5


@pytest.mark.jwconfig(sse_heartbeat_s=1)
def test_heartbeat_comments_arrive_when_idle(jw):
    s = open_stream(jw, user="alice", jobs="j1")
    s.expect("welcome"), s.expect("ack"), s.expect("snapshot")
    with pytest.raises(AssertionError):
        s.next(timeout=2.5)  # no events: only comments arrive meanwhile
    assert s.comments and all(c == ": hb" for c in s.comments), s.comments
    assert 1 <= len(s.comments) <= 3, s.comments


@pytest.mark.jwconfig(reconnect_initial_ms=50, reconnect_max_ms=300, redis_ping_interval_ms=1000)
def test_redis_outage_pause_resume_and_resync_snapshot(jw, redis_server):
    s = open_stream(jw, user="alice", jobs="j1")
    s.expect("welcome"), s.expect("ack"), s.expect("snapshot")
    redis_server.kill9()
    assert s.expect("status")["live"] is False
    redis_server.start()  # same port, empty
    jw.reset_publisher()
    redis_server.client().hset("ai:job:j1", mapping={"userId": "alice", "status": "done"})
    assert s.expect("status")["live"] is True
    snap = s.expect("snapshot")  # the resync: what happened during the outage
    assert snap["jobId"] == "j1" and snap["seq"] == 2
    jw.wait_status("/readyz", 200)
    jw.publish(*ev("j1", "alice", "complete"))
    assert s.next()["data"]["kind"] == "complete"


# ---------------------------------------------------------------------------------------------
# stream endings


@pytest.mark.jwconfig(drain_window_ms=500, drain_reconnect_max_ms=300)
def test_sigterm_drain_ends_streams_with_goaway(jw):
    streams = [open_stream(jw, user=u, jobs="j1") for u in ("alice", "bob")]
    for s in streams:
        s.expect("welcome"), s.expect("ack"), s.expect("snapshot")
    jw.proc.send_signal(signal.SIGTERM)
    jw.wait_status("/readyz", 503)  # the signal has been handled: the drain is on
    refused = SseStream(jw.port, query(user="late", jobs="j1"))
    assert refused.status == 503 and "draining" in refused.body
    for s in streams:
        rest = s.read_to_end()
        assert [e["event"] for e in rest] == ["goaway", "close"], rest
        assert 0 <= rest[0]["data"]["reconnectAfterMs"] <= 300
        assert rest[1]["data"]["code"] == 1001
    assert jw.stop() == 0


@pytest.mark.jwconfig(client_queue_max_bytes=65536, sse_heartbeat_s=0)
def test_slow_sse_consumer_is_cut_off_others_served(jw):
    slow = SseStream(jw.port, query(user="alice", jobs="j1"), name="slow")  # never reads on
    fast = open_stream(jw, name="fast", user="alice", jobs="j1")
    fast.expect("welcome"), fast.expect("ack"), fast.expect("snapshot")
    pad = "x" * 2000
    for i in range(4000):  # status events never conflate; 8 MB, more than the socket buffers
        jw.publish(*ev("j1", "alice", "status", i=i, pad=pad))
        if i % 10 == 9:  # the fast stream keeps up: never more than 10 events behind
            seen = [fast.next()["data"]["payload"]["i"] for _ in range(10)]
            assert seen == list(range(i - 9, i + 1))
        if i % 500 == 499 and jw.metric("jobwire_client_closes_total", reason="slow_consumer"):
            break
    wait_for(lambda: jw.metric("jobwire_client_closes_total", reason="slow_consumer") == 1,
             what="the slow stream closed as a slow consumer")
    jw.publish(*ev("j1", "alice", "complete"))
    assert fast.next()["data"]["kind"] == "complete"
    # the slow client still reads nothing: its stream is dropped within 5 s all the same
    wait_for(lambda: sse_count(jw) == 1, what="only the fast stream left")
    slow.close()


# ---------------------------------------------------------------------------------------------
# CPU after a client vanishes (lws 4.1.6 SSE spin, ARCHITECTURE.md)


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(pid, seconds):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


@pytest.mark.parametrize("how", ["close", "reset", "half_close", "pipelined"])
@pytest.mark.jwconfig(sse_heartbeat_s=1, probe_interval_ms=0)
def test_cpu_idle_after_sse_client_vanishes(jw, how):
    s = open_stream(jw, user="alice", jobs="j1")
    s.expect("welcome"), s.expect("ack"), s.expect("snapshot")
    # vanish without reading further
    if how == "reset":
        s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sock.close()
    elif how == "half_close":
        s.sock.shutdown(socket.SHUT_WR)
    elif how == "pipelined":  # a request behind the stream (which never completes), then gone
        s.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.sock.close()
    else:
        s.sock.shutdown(socket.SHUT_RDWR)
        s.sock.close()
    time.sleep(1.2)  # one heartbeat period: a write has reached the gone client by now
    share = cpu_share(jw.proc.pid, 2.0)
    assert share < 0.3, f"jobwire used {share:.0%} of a core after the SSE client vanished"
    wait_for(lambda: sse_count(jw) == 0, what="SSE gauge back to 0")
    jw.publish(*ev("j1", "alice", n=1))  # nothing may still point at the gone connection
    # routed by the gateway (the window records every routed event), not merely read from Redis
    jw.wait_metric("jobwire_resume_window_events", lambda v: v >= 1)
    again = open_stream(jw, user="alice", jobs="j1")
    again.expect("welcome"), again.expect("ack"), again.expect("snapshot")
    jw.publish(*ev("j1", "alice", n=2))
    assert again.next()["data"]["payload"]["n"] == 2
    assert jw.metric("jobwire_deliveries_total") == 1  # the first event reached nobody
    assert jw.metric("jobwire_connections", transport="websocket") == 0
    if how == "half_close":
        s.sock.close()


# ---------------------------------------------------------------------------------------------
# JWT


@pytest.fixture(scope="module")
def secret():
    return T.new_secret()


def hs(sub="alice", **claims):
    return lambda secret: T.sign(T.claims(sub, **claims), secret, "HS256")


@pytest.fixture
def jjw(jw, secret, request):
    marker = request.node.get_closest_marker("jwconfig")
    jw.configure(dev_auth=False, jwt_secret=secret, **(marker.kwargs if marker else {}))
    jw.start()
    return jw


@pytest.mark.jwnostart
def test_jwt_in_authorization_header(jjw, secret):
    token = hs("alice")(secret)
    s = open_stream(jjw, headers={"Authorization": "Bearer " + token}, jobs="j1")
    w = s.expect("welcome")
    assert w["userId"] == "alice" and w["admin"] is False
    s.expect("ack"), s.expect("snapshot")
    jjw.publish(*ev("j1", "alice"))
    assert s.next()["data"]["jobId"] == "j1"
    assert token not in jjw.read_log()


@pytest.mark.jwnostart
def test_jwt_missing_or_bad_is_401(jjw, secret):
    s = SseStream(jjw.port, query(jobs="j1"))
    assert s.status == 401 and "missing token" in s.body, (s.status, s.body)
    expired = hs("alice", ttl=-120)(secret)
    s = SseStream(jjw.port, query(jobs="j1"), {"Authorization": "Bearer " + expired})
    assert s.status == 401 and "expired" in s.body, (s.status, s.body)
    s = SseStream(jjw.port, query(jobs="j1"), {"Authorization": "Bearer not.a.token"})
    assert s.status == 401, (s.status, s.body)
    # ?token= is not read unless auth_allow_query_token
    s = SseStream(jjw.port, query(jobs="j1", token=hs("alice")(secret)))
    assert s.status == 401 and "missing token" in s.body, (s.status, s.body)
    assert sse_count(jjw) == 0


@pytest.mark.jwnostart
@pytest.mark.jwconfig(auth_allow_query_token=True)
def test_jwt_query_token_when_allowed(jjw, secret):
    s = open_stream(jjw, jobs="j1", token=hs("carol")(secret))
    assert s.expect("welcome")["userId"] == "carol"


@pytest.mark.jwnostart
def test_jwt_revoked_token_ends_stream_4403(jjw, secret):
    jjw.redis.client().set("token:blacklist:t-1", "1")
    token = T.sign(T.claims("alice", jti="t-1"), secret, "HS256")
    s = open_stream(jjw, headers={"Authorization": "Bearer " + token}, jobs="j1")
    err = s.expect("error")
    assert err["code"] == "forbidden" and "revoked" in err["message"], err
    rest = s.read_to_end()
    assert [e["event"] for e in rest] == ["close"] and rest[0]["data"]["code"] == 4403, rest
    wait_for(lambda: sse_count(jjw) == 0, what="SSE gauge back to 0")


@pytest.mark.jwnostart
@pytest.mark.jwconfig(jwt_leeway_seconds=0)
def test_jwt_expiry_ends_stream_4401(jjw, secret):
    token = hs("alice", ttl=2)(secret)
    s = open_stream(jjw, headers={"Authorization": "Bearer " + token}, jobs="j1")
    s.expect("welcome"), s.expect("ack"), s.expect("snapshot")
    rest = s.read_to_end(timeout=6)
    assert [e["event"] for e in rest] == ["error", "close"], rest
    assert rest[0]["data"]["code"] == "unauthenticated" and rest[1]["data"]["code"] == 4401
