"""Randomized, model-based test of jobwire's delivery promises (see model.py for the rules).

Many users and connections (WebSocket and Server-Sent Events), random subscribes and
unsubscribes (own jobs, jobs that do not exist yet, other users' jobs, scopes, kinds filters,
malformed and refused requests), random publications of every channel form with hostile but
valid payloads and invalid messages that must be dropped. The model computes what every
connection must receive; at the end a marker event per connection (waited for with a deadline)
shows that everything before it has arrived, and every connection's stream is compared with the
model: nothing it may not see, nothing lost, no duplicate, per-job order, snapshot before live
events, seq 1, 2, 3, ... and eventIds increasing.

Determinism: an accepted request is sent only after a *fence* (an event the `observer`, an admin
with scope all, must receive: once it has, jobwire has routed everything published before), and
nothing is published until its answer and snapshots are in, so the model knows exactly which
events precede and follow it. Refused requests change nothing, so events are published right
after them, while jobwire is still answering (that is where a refusal that changes state or
drops held events shows).

    JW_MODEL_SEED=123        replay a run (the seed is printed, and named in every failure); the
                             same operations follow as long as the server answers the same (a
                             connection that dies or is retired changes the later choices)
    JW_MODEL_DUMP=DIR        write every publication, each connection's subscriptions over time,
                             requests, expected and received streams, and all violations to DIR
    JW_MODEL_OPS=8000        number of random operations (default 8000)
    JW_MODEL_SECONDS=35      time budget of the operations (default 35; the run stops earlier
                             when the ops are done; the number of ops run is printed)
    JW_MODEL_SOAK=600        soak: operations for this many seconds (no op limit), more clients
"""

import asyncio
import json
import os
import random
import re
import sys
import time
import urllib.parse

import pytest
import websockets

import model as M
from conftest import WAIT, tail, ws_url

MAX_SUBS = 6
FENCE_USER = "zz-fence"
USERS = ["alice", "bob", "carol", "42", "zoë✓", "12345678901234567890123"]
ADMINS = ["ops", "root✓"]


# ------------------------------------------------------------------------------------- clients

class RealConn:
    """What one connection received, in order: {"msg": frame, "id": SSE id or None}, then
    {"closed": code, "by": "server"|"client"}, and {"protocol_error": text}."""

    def __init__(self, name):
        self.name = name
        self.log = []
        self.changed = asyncio.Event()
        self.task = None
        self.closing = False
        self.closed = False
        self.seen = set()  # canonical payloads of the events received

    def note(self, entry):
        self.log.append(entry)
        m = entry.get("msg")
        if m is not None and m.get("type") == "event" and "payload" in m:
            self.seen.add(M.canon(m["payload"]))
        self.changed.set()

    def frames(self):
        return [e["msg"] for e in self.log if "msg" in e]

    async def wait(self, pred, timeout):
        """True when pred() holds within timeout (checked on every message), else False."""
        deadline = time.monotonic() + timeout
        while True:
            if pred():
                return True
            if self.closed or time.monotonic() >= deadline:
                return bool(pred())
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                pass

    def has_event(self, p):
        return p.canon in self.seen

    def parse(self, text, sse_id=None):
        try:
            m = M.loads(text)
        except ValueError as exc:
            self.note({"protocol_error": f"a frame that is not JSON ({exc}): {M.short(text, 300)}"})
            return
        if not isinstance(m, dict):
            self.note({"protocol_error": f"a frame that is not a JSON object: {M.short(text)}"})
            return
        self.note({"msg": m, "id": sse_id, "t": time.monotonic()})


class WsConn(RealConn):
    transport = "ws"

    async def open(self, port, user, admin):
        url = ws_url(port, user, admin)
        self.ws = await asyncio.wait_for(websockets.connect(
            url, open_timeout=WAIT, ping_interval=None, close_timeout=2, max_size=None), WAIT)
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _read(self):
        try:
            while True:
                raw = await self.ws.recv()
                if not isinstance(raw, str):
                    self.note({"protocol_error": f"binary frame {raw[:80]!r}"})
                    continue
                self.parse(raw)
        except websockets.exceptions.ConnectionClosed as exc:
            by = "client" if self.closing else "server"
            if exc.sent is not None and exc.sent.code == 1007:
                self.note({"protocol_error": "the server sent a text frame that is not UTF-8 "
                                             f"(the client closed with 1007: {exc})"})
                by = "client (1007)"
            self.note({"closed": self.ws.close_code, "reason": self.ws.close_reason, "by": by})
        except Exception as exc:  # noqa: BLE001 - kept as a finding
            self.note({"protocol_error": f"reader failed: {exc!r}"})
        finally:
            self.closed = True
            self.changed.set()

    async def send(self, obj_or_text):
        text = obj_or_text if isinstance(obj_or_text, str) else M.dump(obj_or_text)
        try:
            await self.ws.send(text)
        except websockets.exceptions.ConnectionClosed:
            pass  # recorded by the reader; the verification reports it

    async def close(self):
        self.closing = True
        try:
            await asyncio.wait_for(self.ws.close(), 5)
        except Exception:  # noqa: BLE001 - the server may be gone
            pass
        if self.task:
            try:
                await asyncio.wait_for(self.task, 5)
            except Exception:  # noqa: BLE001
                self.task.cancel()


class SseConn(RealConn):
    """GET /events over a raw asyncio stream: status, headers, then SSE blocks."""
    transport = "sse"

    async def open(self, port, query):
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), WAIT)
        self.writer.write((f"GET /events?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Accept: text/event-stream\r\n\r\n").encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for h in lines[1:]:
            k, _, v = h.partition(":")
            if k:
                self.headers[k.strip().lower()] = v.strip()
        self.body = None
        if self.status != 200:
            n = int(self.headers.get("content-length", "0") or 0)
            self.body = (await asyncio.wait_for(self.reader.readexactly(n), WAIT)).decode(
                "utf-8", "replace") if n else ""
            self.writer.close()
            self.closed = True
            return self
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _chunks(self):
        """The body's bytes (chunked transfer coding undone when the server uses it)."""
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return
                yield data
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return
            yield await self.reader.readexactly(size)
            await self.reader.readexactly(2)

    async def _read(self):
        buf = b""
        try:
            async for data in self._chunks():
                buf += data.replace(b"\r\n", b"\n")
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    self._block(block)
            self.note({"closed": "eof", "by": "client" if self.closing else "server"})
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self.note({"closed": f"error {exc!r}", "by": "client" if self.closing else "server"})
        except Exception as exc:  # noqa: BLE001 - kept as a finding
            self.note({"protocol_error": f"reader failed: {exc!r}"})
        finally:
            self.closed = True
            self.changed.set()

    def _block(self, block):
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            self.note({"protocol_error": f"SSE bytes that are not UTF-8: {block[:200]!r}"})
            text = block.decode("utf-8", "replace")
        data, sse_id, event = [], None, "message"
        for line in text.split("\n"):
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field == "id":
                sse_id = value
            elif field == "event":
                event = value
        if not data:
            return
        before = len(self.log)
        self.parse("\n".join(data), sse_id)
        if len(self.log) > before and "msg" in self.log[-1]:
            m = self.log[-1]["msg"]
            if m.get("type") != event:
                self.note({"protocol_error": f"SSE event: {event!r} but data type "
                                             f"{m.get('type')!r}"})

    async def close(self):
        self.closing = True
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001
            pass
        if self.task:
            try:
                await asyncio.wait_for(self.task, 5)
            except Exception:  # noqa: BLE001
                self.task.cancel()


# ----------------------------------------------------------------------------------- the world

def make_jobs(rng):
    """The job pool: ids of every shape the protocol allows, owners, ways of keeping state."""
    jobs = []
    shapes = ["plain", "plain", "colon", "unicode", "numeric", "long"]
    for n in range(36):
        shape = rng.choice(shapes)
        if shape == "plain":
            jid = f"j{n}"
        elif shape == "colon":
            jid = f"team:{n}:render"
        elif shape == "unicode":
            jid = f"jöb✓{n}-名前"
        elif shape == "numeric":
            jid = str(900000 + n)
        else:  # exactly 128 bytes of UTF-8
            head = f"L{n}-"
            jid = head + "✓✓" + "x" * (128 - len(head.encode()) - 6)
            assert len(jid.encode()) == 128
        owner = rng.choice(USERS + USERS + ADMINS[:1])
        store = rng.choices(["hash", "string", "none", "hash_noowner"], [40, 30, 20, 10])[0]
        jobs.append(M.Job(jid, owner, store))
    return jobs


HOSTILE = [
    ("nul", "a\u0000b", "a \\u0000 in a string"),
    ("big", 123456789012345678901234567890, "an integer beyond 64 bits"),
    ("neg", -98765432109876543210987, "a negative integer beyond 64 bits"),
    ("uni", "😀 zoë ✓ \u2028\u2029\ufeff", "non-ASCII text, U+2028/2029, BOM"),
    ("esc", "quote\" back\\slash / \t tab \u0001\u001f", "escaped quotes and control characters"),
    ("exp", M.Decimal("1.5E+300"), "a number with an exponent"),
    ("deep", [[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]], "nesting 21 deep"),
    ("empty", {}, "an empty object"),
]


HOSTILE_NOTES = [h[2] for h in HOSTILE] + ["userId as an integer beyond 64 bits",
                                           "multi-line JSON", "payload is not an object"]


class World:
    """Drives jobwire and the model together."""

    def __init__(self, jw, seed, soak):
        self.jw, self.seed, self.soak = jw, seed, soak
        self.rng = random.Random(seed)
        self.model = M.Model(MAX_SUBS)
        self.redis = jw.redis.client()
        self.real = {}            # conn name -> RealConn
        self.uid = 0
        self.names = 0
        self.invalid_sent = 0
        self.counts = {}
        self.fence_timeouts = []
        self.extra_violations = []
        for job in make_jobs(self.rng):
            self.model.add_job(job)
        for job in self.model.jobs.values():
            if self.rng.random() < 0.5:
                self.write_state(job, "status", created=True)

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    def next_uid(self):
        self.uid += 1
        return self.uid

    # ------------------------------------------------------------------------------- Redis

    def write_state(self, job, kind, created=False):
        """Updates the job's state in Redis (and the model's copy) as the AI services do before
        they publish; the owner never changes."""
        status = {"status": "processing", "progress": "processing", "complete": "completed",
                  "error": "failed"}.get(kind, "processing")
        progress = self.rng.randrange(0, 101)
        if job.store in ("hash", "hash_noowner"):
            fields = {"status": status, "progress": str(progress), "message": "step ✓"}
            if job.store == "hash":
                fields["userId"] = job.owner
            self.redis.hset(f"ai:job:{job.id}", mapping=fields)
            job.hash = dict(job.hash or {}, **fields)
        elif job.store == "string":
            state = {"jobId": job.id, "status": status, "progress": progress}
            owner = job.owner
            state["userId"] = int(owner) if owner.isdigit() and self.rng.random() < 0.5 else owner
            if self.rng.random() < 0.25:
                key, value, _ = self.rng.choice(HOSTILE)
                state[key] = value
            text = M.dump(state)
            self.redis.set(f"ai:job:status:{job.id}", text.encode())
            job.string = text

    def publish_raw(self, p):
        self.model.publish(p)
        self.redis.publish(p.channel, p.payload)

    def publish_event(self, job_id, kind, user="owner", form=None, hostile=None, note="",
                      plain=False):
        """A valid event of `job_id`; user "owner" (the job's owner), None (no userId) or a user
        id; `plain`: nothing unusual (markers and fences). Returns the Published."""
        rng = self.rng
        if plain:
            form, hostile = "id", []
        job = self.model.jobs.get(job_id)
        if user == "owner":
            user = job.owner if job else None
        if job is not None and user == job.owner and job.store != "none":
            self.write_state(job, kind)
        uid = self.next_uid()
        notes = [note] if note else []
        form = form or rng.choices(["id", "payload", "nonobject"], [75, 20, 5])[0]
        if form == "payload" and job_id.isdigit() and rng.random() < 0.5:
            form = "payload-int"
        if form == "nonobject" and user is not None:
            form = "id"
        seg = kind if kind in M.KINDS[:4] else rng.choice(["custom", "über", "log"])
        if form == "nonobject":
            channel = f"ai:job:{seg}:{job_id}"
            payload = rng.choice([f'["n", {uid}, "✓"]', f'"event {uid} ✓"',
                                  f"{uid}000000000000000000000000000"])
            notes.append("payload is not an object")
            p = M.Published(uid, channel.encode(), payload.encode(), True, job=job_id, user=None,
                            kind=seg, note="; ".join(notes))
            self.publish_raw(p)
            return p
        obj = {"eventType": f"job_{seg}", "n": uid}
        if form == "id":
            channel = f"ai:job:{seg}:{job_id}"
            if rng.random() < 0.1:
                obj["jobId"] = f"decoy-{uid}"
                notes.append("payload names another jobId (the channel wins)")
            elif rng.random() < 0.7:
                obj["jobId"] = job_id
        else:
            channel = f"ai:job:{seg}"
            obj["jobId"] = int(job_id) if form == "payload-int" else job_id
            notes.append("job id in the payload" + (" as an integer" if form == "payload-int"
                                                    else ""))
        if user is not None:
            if user.isdigit() and not plain and rng.random() < 0.6:
                obj["userId"] = int(user)
                notes.append("userId as an integer"
                             + (" beyond 64 bits" if int(user) >= 2 ** 63 else ""))
            else:
                obj["userId"] = user
        else:
            notes.append("no userId")
        obj["status"] = {"complete": "completed", "error": "failed"}.get(kind, "processing")
        if kind == "progress":
            obj["progress"] = rng.randrange(0, 101)
        if hostile is None and rng.random() < 0.2:
            hostile = rng.sample(HOSTILE, rng.choice([1, 1, 2]))
        for key, value, what in hostile or ():
            obj[key] = value
            notes.append(what)
        indent = None
        if not plain and rng.random() < 0.05:
            indent = "  "
            notes.append("multi-line JSON")
        text = M.dump(obj, indent)
        if indent and rng.random() < 0.5:
            text = text.replace("\n", "\r\n")
        if any(ord(ch) > 127 for ch in job_id):
            notes.append("non-ASCII job id")
        p = M.Published(uid, channel.encode(), text.encode(), True, job=job_id, user=user,
                        kind=seg, note="; ".join(notes))
        self.publish_raw(p)
        return p

    def publish_invalid(self):
        """A message that breaks the channel/payload rules: it must reach nobody."""
        rng = self.rng
        uid = self.next_uid()
        job = rng.choice(list(self.model.jobs.values()))
        good = M.dump({"jobId": job.id, "userId": job.owner, "n": uid, "status": "x"}).encode()
        case = rng.choice(["nonutf8-id", "nonutf8-kind", "nul-channel", "not-json", "bad-utf8-json",
                           "ctl-jobid", "ctl-userid", "no-jobid", "float-jobid", "empty-id",
                           "long-id", "too-large"])
        chan = f"ai:job:progress:{job.id}".encode()
        payload = good
        why = case
        if case == "nonutf8-id":
            chan += b"\xff\xfe"
            why = "the channel is not UTF-8"
        elif case == "nonutf8-kind":
            chan = b"ai:job:st\xc3atus:" + job.id.encode()
            why = "the channel's kind segment is not UTF-8"
        elif case == "nul-channel":
            chan += b"\x00evil"
            why = "a NUL byte in the channel's job id"
        elif case == "not-json":
            payload = good[:-1] + b',"x":'
            why = "the payload is not JSON"
        elif case == "bad-utf8-json":
            payload = good[:-1] + b',"s":"\xff\xfe"}'
            why = "the payload is not UTF-8"
        elif case == "ctl-jobid":
            chan = b"ai:job:status"
            payload = M.dump({"jobId": job.id + "\u0001", "userId": job.owner, "n": uid}).encode()
            why = "a control byte in the payload's jobId"
        elif case == "ctl-userid":
            payload = M.dump({"jobId": job.id, "userId": job.owner + "\u0007", "n": uid}).encode()
            why = "a control byte in the userId"
        elif case == "no-jobid":
            chan = b"ai:job:status"
            payload = M.dump({"userId": job.owner, "n": uid}).encode()
            why = "no job id in channel or payload"
        elif case == "float-jobid":
            chan = b"ai:job:status"
            payload = M.dump({"jobId": M.Decimal("1.5"), "userId": job.owner, "n": uid}).encode()
            why = "the payload's jobId is not a string or integer"
        elif case == "empty-id":
            chan = b"ai:job:progress:"
            why = "an empty job id"
        elif case == "long-id":
            chan = b"ai:job:progress:" + b"y" * 129
            why = "a job id of 129 bytes"
        else:
            payload = M.dump({"jobId": job.id, "userId": job.owner, "n": uid,
                              "pad": "p" * 70000}).encode()
            why = "a payload over max_payload_bytes (64 KiB)"
        p = M.Published(uid, chan, payload, False, why=why, job=job.id, user=job.owner,
                        kind="progress", note=why)
        self.invalid_sent += 1
        self.publish_raw(p)
        return p

    # ------------------------------------------------------------------------- connections

    def new_name(self, prefix):
        self.names += 1
        return f"{prefix}{self.names}"

    async def open_ws(self, user, admin, name=None):
        name = name or self.new_name("ws")
        real = await WsConn(name).open(self.jw.port, user, admin)
        conn = M.Conn(name, user, admin, "ws")
        self.model.conns[name] = conn
        self.real[name] = real
        if not await real.wait(lambda: real.frames(), WAIT):
            real.note({"protocol_error": "no welcome within the deadline"})
        return conn, real

    async def open_observer(self):
        """The observer: an admin's SSE stream with scope all (it sees every valid event, and a
        stream cannot change its subscription). Opened again if the server ends it."""
        self.observers = getattr(self, "observers", 0) + 1
        name = "observer" if self.observers == 1 else f"observer{self.observers}"
        conn = M.Conn(name, "ops", True, "sse")
        real = await SseConn(name).open(self.jw.port, "scope=all&user=ops&admin=1")
        assert real.status == 200, f"observer stream refused: HTTP {real.status} {real.body}"
        self.model.apply_scope(conn, "all", None)
        conn.requests[None] = ("GET /events?scope=all (observer)",
                               {"type": "ack", "op": "subscribe", "scope": "all",
                                "kinds": M.KINDS})
        self.model.conns[name] = conn
        self.real[name] = real
        self.observer = name
        await real.wait(lambda: any(m.get("type") == "ack" for m in real.frames()), WAIT)

    async def fence(self):
        """Publishes an event only the admins with scope all see and waits until the observer
        has it: then jobwire has routed everything published before."""
        if self.real[self.observer].closed:
            self.model.conns[self.observer].open = False
            self.model.conns[self.observer].died = True
            await self.open_observer()
        p = self.publish_event("zz:fence", "status", user=FENCE_USER, plain=True)
        obs = self.real[self.observer]
        if not await obs.wait(lambda: obs.has_event(p), 5):
            self.fence_timeouts.append(p.uid)

    async def request(self, conn, msg, want):
        """Sends a request; `want` is the model's answer ({"type": ..., "code": ...})."""
        real = self.real[conn.name]
        self.rids = getattr(self, "rids", 0) + 1
        rid = f"r{self.rids}"
        msg = dict(msg, id=rid)
        conn.requests[rid] = (M.dump(msg), want)
        await real.send(msg)
        return rid

    async def await_reply(self, conn, rid, snapshots=0):
        """Waits for the reply to rid and for `snapshots` snapshots after it. When the answer is
        not the model's, the model can no longer know this connection's subscriptions: the
        connection is retired (closed; verify() then checks only what must hold whatever the
        subscriptions are: no leak, no invalid input, no duplicate, seq). Returns True when the
        answer is the expected one."""
        real = self.real[conn.name]
        ok = await self._await_reply(real, rid, snapshots)
        sent, want = conn.requests[rid]
        got = next((m for m in real.frames() if m.get("id") == rid), None)
        if got is None or got.get("type") != want["type"] or got.get("code") != want.get("code"):
            conn.open = False
            conn.retired = f"after request {rid}: answered {M.short(got)}, model: {want}"
            await real.close()
            return False
        return ok

    async def _await_reply(self, real, rid, snapshots):

        def done():
            frames = real.frames()
            for i, m in enumerate(frames):
                if m.get("id") == rid:
                    need = snapshots
                    if m.get("type") == "ack" and isinstance(m.get("snapshots"), int):
                        need = m["snapshots"]  # a scope subscribe with snapshots (spec)
                    if m.get("type") != "ack":
                        return True
                    return sum(1 for x in frames[i + 1:] if x.get("type") == "snapshot") >= need
            return False
        return await real.wait(done, 5)

    async def refused(self, conn, msg, code):
        """Sends a request the model refuses, publishes a burst at once (while jobwire works on
        the request), then waits for the answer."""
        want = {"type": "error", "code": code, "at": self.uid}
        if code == "forbidden" and msg.get("jobs"):
            want["why"] = self.model.why_forbidden(conn, msg["jobs"])
        rid = await self.request(conn, msg, want)
        conn.refused_log.append((self.uid, msg, code))
        self.burst(conn)
        await self.await_reply(conn, rid)

    def burst(self, conn):
        """Events this connection would see through what it holds: published at once after a
        refused request, while jobwire may still be working on it."""
        targets = list(conn.jobs) or [f"zz:burst:{conn.name}"]
        for _ in range(self.rng.randrange(1, 5)):
            self.publish_event(self.rng.choice(targets), self.rng.choice(M.KINDS),
                               user=conn.user)

    # ---------------------------------------------------------------------------- requests

    def pick_kinds(self):
        if self.rng.random() < 0.5:
            return None
        return self.rng.sample(M.KINDS, self.rng.randrange(1, 5))

    def allowed_jobs(self, conn):
        return [j.id for j in self.model.jobs.values()
                if conn.admin or j.redis_owner() in (None, conn.user)]

    def foreign_jobs(self, conn):
        return [j.id for j in self.model.jobs.values()
                if not conn.admin and j.redis_owner() not in (None, conn.user)]

    async def op_subscribe_jobs(self, conn):
        rng = self.rng
        pool = self.allowed_jobs(conn)
        jobs = rng.sample(pool, min(len(pool), rng.randrange(1, 4)))
        if rng.random() < 0.15:
            jobs.append(f"future-{self.next_uid()}-✓")  # a job that does not exist yet
        jobs = list(dict.fromkeys(jobs))
        kinds = self.pick_kinds()
        answer = self.model.subscribe_jobs_answer(conn, jobs, kinds)
        msg = {"type": "subscribe", "jobs": jobs}
        if kinds is not None:
            msg["kinds"] = kinds
        if answer != "ack":
            self.count(f"refused subscribe ({answer})")
            await self.refused(conn, msg, answer)
            return
        await self.fence()
        want = {"type": "ack", "op": "subscribe", "scope": "jobs", "jobs": jobs,
                "kinds": kinds or M.KINDS, "at": self.uid}
        rid = await self.request(conn, msg, want)
        self.model.apply_subscribe_jobs(conn, jobs, kinds)
        self.count("subscribe jobs")
        await self.await_reply(conn, rid, len(jobs))

    async def op_subscribe_foreign(self, conn):
        """Held jobs (with other kinds), maybe a new job, and another user's job: refused
        whole; the held jobs keep their kinds and their events."""
        rng = self.rng
        foreign = self.foreign_jobs(conn)
        if not foreign:
            return await self.op_subscribe_jobs(conn)
        jobs = rng.sample(list(conn.jobs), min(len(conn.jobs), rng.randrange(0, 3)))
        if rng.random() < 0.4:
            jobs.append(f"future-{self.next_uid()}")
        jobs.insert(rng.randrange(0, len(jobs) + 1), rng.choice(foreign))
        kinds = rng.sample(M.KINDS, rng.randrange(1, 4))
        answer = self.model.subscribe_jobs_answer(conn, jobs, kinds)
        msg = {"type": "subscribe", "jobs": jobs, "kinds": kinds}
        self.count(f"refused subscribe ({answer})")
        await self.refused(conn, msg, answer)

    async def op_unsubscribe_jobs(self, conn):
        rng = self.rng
        jobs = rng.sample(list(conn.jobs), min(len(conn.jobs), rng.randrange(0, 3)))
        if not jobs or rng.random() < 0.2:
            jobs.append(rng.choice(list(self.model.jobs)))  # maybe not held: acked all the same
        jobs = list(dict.fromkeys(jobs))
        await self.fence()
        rid = await self.request(conn, {"type": "unsubscribe", "jobs": jobs},
                                 {"type": "ack", "op": "unsubscribe", "scope": "jobs",
                                  "jobs": jobs})
        self.model.apply_unsubscribe_jobs(conn, jobs)
        self.count("unsubscribe jobs")
        await self.await_reply(conn, rid)

    async def op_scope(self, conn):
        rng = self.rng
        scope = "all" if (conn.admin and rng.random() < 0.5) or rng.random() < 0.1 else "user"
        on = rng.random() < 0.7
        kinds = self.pick_kinds() if on else None
        if not on and scope == "all" and not conn.admin:
            on = True  # unsubscribing a scope never held: see op list; keep to subscribe
        msg = {"type": "subscribe" if on else "unsubscribe", "scope": scope}
        if kinds is not None:
            msg["kinds"] = kinds
        answer = self.model.scope_answer(conn, scope, kinds) if on else "ack"
        if answer != "ack":
            self.count(f"refused scope {scope} ({answer})")
            await self.refused(conn, msg, answer)
            return
        await self.fence()
        want = {"type": "ack", "op": msg["type"], "scope": scope}
        if on:
            want["kinds"] = kinds or M.KINDS
        rid = await self.request(conn, msg, want)
        self.model.apply_scope(conn, scope, kinds, on)
        self.count(f"{msg['type']} scope {scope}")
        await self.await_reply(conn, rid)

    async def op_bad_request(self, conn):
        rng = self.rng
        held = list(conn.jobs)
        case = rng.choice(["bad_job_id", "bad_job_id", "bad_kind", "bad_request", "unknown_type",
                           "bad_json", "ping", "too_many"])
        if case == "bad_job_id":
            bad_id = rng.choice(["", "x\u0001y", "tab\tid", "del\u007f", "z" * 129,
                                 "✓" * 43])  # 129 bytes
            msg = {"type": "subscribe", "jobs": held[:1] + [bad_id], "kinds": ["error"]}
        elif case == "bad_kind":
            msg = {"type": "subscribe", "jobs": held[:2] or ["j0"], "kinds": ["progress", "bogus"]}
        elif case == "bad_request":
            msg = rng.choice([{"type": "subscribe", "jobs": held[:1] or ["j1"], "scope": "user"},
                              {"type": "subscribe"},
                              {"type": "subscribe", "jobs": "j1"},
                              {"type": "unsubscribe", "scope": "everything"}])
            want = {"type": "error", "code": "bad_request"}
        elif case == "unknown_type":
            msg = {"type": "subscrib", "jobs": held[:1]}
            want = {"type": "error", "code": "unknown_type"}
        elif case == "too_many":
            new = [f"many-{self.next_uid()}-{i}" for i in range(MAX_SUBS + 1 - len(conn.jobs))]
            msg = {"type": "subscribe", "jobs": held[:1] + new, "kinds": ["status"]}
        elif case == "ping":
            msg = {"type": "ping"}
            want = {"type": "pong"}
        else:
            conn.anonymous_errors.append("bad_json")
            await self.real[conn.name].send('{"type":"subscribe","jobs":["j1"]')
            self.count("refused bad_json")
            self.burst(conn)
            return
        if case in ("bad_job_id", "bad_kind", "too_many"):
            code = self.model.subscribe_jobs_answer(conn, msg["jobs"], msg["kinds"])
            assert code != "ack", f"generator bug: {msg} would be accepted"
            want = {"type": "error", "code": code}
        self.count(f"refused {case}" if case != "ping" else "ping")
        if want["type"] == "pong":
            rid = await self.request(conn, msg, want)
            self.burst(conn)
            await self.await_reply(conn, rid)
        else:
            await self.refused(conn, msg, want["code"])

    # ------------------------------------------------------------------------------- SSE

    async def op_open_sse(self):
        rng = self.rng
        admin = rng.random() < 0.2
        user = rng.choice(ADMINS if admin else USERS)
        name = self.new_name("sse")
        conn = M.Conn(name, user, admin, "sse")
        params = {"user": user}
        if admin:
            params["admin"] = "1"
        kinds = self.pick_kinds()
        r = rng.random()
        refusal = None
        if r < 0.55:
            pool = self.allowed_jobs(conn)
            jobs = rng.sample(pool, rng.randrange(1, 4))
            if rng.random() < 0.15 and self.foreign_jobs(conn):
                jobs.insert(rng.randrange(0, len(jobs) + 1), rng.choice(self.foreign_jobs(conn)))
                refusal = ("stream", "forbidden")
            params["jobs"] = ",".join(jobs)
        elif admin and r > 0.8:
            params["scope"] = "all"
        elif not admin and r > 0.93:
            params["scope"], refusal = "all", ("status", 403)
        else:
            params["scope"] = "user"
        if kinds is not None:
            params["kinds"] = ",".join(kinds)
        if refusal is None and rng.random() < 0.05:
            params["kinds"] = "progress,bogus"
            refusal = ("status", 400)
        query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        if refusal is None:
            await self.fence()
        real = SseConn(name)
        await real.open(self.jw.port, query)
        sent = f"GET /events?{urllib.parse.unquote(query)}"
        if refusal and refusal[0] == "status":
            self.count(f"refused SSE (HTTP {refusal[1]})")
            conn.open = False
            if real.status != refusal[1]:
                self.extra_violations.append(
                    f"[seed {self.seed}] {sent}: HTTP {real.status} {real.body!r}, "
                    f"expected {refusal[1]}")
            return
        if real.status != 200:
            self.extra_violations.append(f"[seed {self.seed}] {sent}: HTTP {real.status} "
                                         f"{real.body!r}, expected 200")
            return
        self.model.conns[name] = conn
        self.real[name] = real
        if refusal:
            conn.open = False
            conn.refused_stream = refusal[1]
            conn.refused_why = self.model.why_forbidden(conn, params["jobs"].split(","))
            self.count("refused SSE stream (forbidden)")
            await real.wait(lambda: real.closed, 5)
            return
        nsnap = 0
        if "jobs" in params:
            jobs = params["jobs"].split(",")
            self.model.apply_subscribe_jobs(conn, jobs, kinds)
            want = {"type": "ack", "op": "subscribe", "scope": "jobs", "jobs": jobs,
                    "kinds": kinds or M.KINDS}
            nsnap = len(jobs)
        else:
            self.model.apply_scope(conn, params["scope"], kinds)
            want = {"type": "ack", "op": "subscribe", "scope": params["scope"],
                    "kinds": kinds or M.KINDS}
        conn.requests[None] = (sent, want)
        self.count("SSE stream")

        def ready():
            frames = real.frames()
            acks = [i for i, m in enumerate(frames) if m.get("type") == "ack"]
            if not acks:
                return False
            need = frames[acks[0]].get("snapshots", nsnap) if "scope" in params else nsnap
            need = need if isinstance(need, int) else nsnap
            return sum(1 for m in frames[acks[0]:] if m.get("type") == "snapshot") >= need
        await real.wait(ready, 5)

    # --------------------------------------------------------------------- sync and close

    async def sync(self, conn):
        """Makes sure everything this connection should have has arrived: a marker event it
        receives (subscribing a marker job first when it holds nothing)."""
        if conn.transport == "ws":
            # the scope user with every kind: whatever its job filters are by now (a refused
            # request may have changed them), this connection receives the marker
            await self.fence()
            rid = await self.request(conn, {"type": "subscribe", "scope": "user"},
                                     {"type": "ack", "op": "subscribe", "scope": "user",
                                      "kinds": M.KINDS})
            self.model.apply_scope(conn, "user", None)
            if not await self.await_reply(conn, rid):
                return True
            route = (f"zz:mark:{conn.name}", "status")
        else:
            route = self.model.marker_route(conn)
        job, kf = route
        kind = kf if kf != "other" else "marker"
        return self.publish_event(job, kind, user=conn.user, plain=True,
                                  note=f"end marker of {conn.name}")

    async def close_conn(self, conn):
        p = await self.sync(conn)
        real = self.real[conn.name]
        if not isinstance(p, bool):
            await real.wait(lambda: real.has_event(p), 5)
        conn.open = False
        await real.close()
        self.count(f"close {conn.transport}")


# ----------------------------------------------------------------------------------- the test

def summarize(violations, limit=60):
    """Groups violations by the promise they break, with a few examples each."""
    groups = {}
    for v in violations:
        body = v.split(": ", 1)[1] if ": " in v else v
        key = re.sub(r"\d+", "N", body.split(":")[0][:60])
        for tag in ("did not arrive before the connection died", "refused stream", "LOST", "LEAK ACROSS USERS", "LEAK", "INVALID INPUT DELIVERED", "DUPLICATE",
                    "ORDER", "seq jumps", "payload altered", "snapshot", "the server closed",
                    "protocol error", "answered", "no answer"):
            if tag in body:
                key = tag
                break
        groups.setdefault(key, []).append(v)
    lines = [f"{len(violations)} violation(s) of the delivery promises:"]
    for key, vs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"\n== {key}: {len(vs)}")
        if key == "LOST":  # what the lost events have in common
            notes = {}
            for v in vs:
                for what in HOSTILE_NOTES:
                    if what in v:
                        notes[what] = notes.get(what, 0) + 1
            lines.append("   lost events had: " + ", ".join(
                f"{k} ×{c}" for k, c in sorted(notes.items(), key=lambda kv: -kv[1])))
            ordinary = [v for v in vs if not any(w in v for w in HOSTILE_NOTES)]
            lines.append(f"   {len(ordinary)} of them had nothing unusual in channel or payload"
                         + (", e.g.:" if ordinary else ""))
            lines.extend("   " + v for v in ordinary[:6])
            vs = [v for v in vs if v not in ordinary[:6]]
        lines.extend("   " + v for v in vs[:max(3, limit // max(1, len(groups)))])
    return "\n".join(lines)


def write_dump(world, d):
    """JW_MODEL_DUMP=DIR: every publication, and per connection its requests, expected stream
    and received stream, for reading a failure in detail."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "published.txt"), "w") as f:
        for p in world.model.published:
            f.write(("" if p.valid else "INVALID ") + p.describe() + "\n")
    for name, conn in world.model.conns.items():
        with open(os.path.join(d, f"{name}.txt"), "w") as f:
            f.write(conn.describe() + "\n\n-- subscriptions over time (from publication #n+1)\n")
            for uid, desc in conn.history:
                f.write(f"#{uid}: {desc}\n")
            f.write("\n-- requests\n")
            for rid, (sent, want) in conn.requests.items():
                f.write(f"{rid}: {sent} -> {want}\n")
            f.write("\n-- expected\n")
            for x in conn.expected:
                f.write(f"event #{x[1]}\n" if x[0] == "event" else f"snapshot {x[1]!r}\n")
            f.write("\n-- received\n")
            for e in world.real[name].log:
                m = e.get("msg")
                if m is not None and m.get("type") == "event":
                    p = world.model.by_canon.get(M.canon(m.get("payload")))
                    f.write(f"event #{p.uid if p else '?'} seq {m.get('seq')} job "
                            f"{m.get('jobId')!r} kind {m.get('kind')}\n")
                else:
                    f.write(f"{M.short(m if m is not None else e, 300)}\n")


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


@pytest.mark.jwconfig(client_max_subscriptions=MAX_SUBS, client_max_messages_per_second=5000,
                      client_message_burst=5000, max_connections_per_ip=0,
                      max_connections_per_user=0, log_level="info", sse_heartbeat_s=0)
def test_model_random_operations(jw):
    seed = env_int("JW_MODEL_SEED", random.SystemRandom().randrange(1, 10 ** 9))
    soak = env_int("JW_MODEL_SOAK", 0)
    max_ops = env_int("JW_MODEL_OPS", 8000 if not soak else 10 ** 9)
    budget = soak or env_int("JW_MODEL_SECONDS", 30)
    print(f"\nmodel test: seed {seed} (replay: JW_MODEL_SEED={seed}), up to {max_ops} ops "
          f"in {budget} s", file=sys.stderr)
    world = World(jw, seed, soak)
    result = {}

    async def run():
        rng = world.rng
        try:
            await world.open_observer()
            for _ in range(6 if not soak else 12):
                admin = rng.random() < 0.2
                await world.open_ws(rng.choice(ADMINS if admin else USERS), admin)
            t0 = time.monotonic()
            ops = 0
            max_ws, max_sse = (14, 8) if not soak else (30, 16)
            while ops < max_ops and time.monotonic() - t0 < budget:
                if jw.proc.poll() is not None:
                    break
                ops += 1
                for conn in world.model.conns.values():
                    if conn.open and world.real[conn.name].closed:
                        conn.open = False  # died: reported by verify(); expect nothing more
                        conn.died = True
                ws = [c for c in world.model.conns.values() if c.open and c.transport == "ws"]
                sse = [c for c in world.model.conns.values()
                       if c.open and c.transport == "sse" and c.name != world.observer]
                op = rng.choices(
                    ["publish", "invalid", "sub", "foreign", "unsub", "scope", "bad", "open_ws",
                     "open_sse", "close"],
                    [40, 4, 14, 6, 6, 6, 7, 2, 3, 2])[0]
                if op in ("sub", "foreign", "unsub", "scope", "bad") and not ws:
                    op = "open_ws"
                if op == "publish":
                    job = rng.choice(list(world.model.jobs.values()))
                    user = rng.choices(["owner", None, "other"], [85, 8, 7])[0]
                    if user == "other":
                        user = rng.choice(USERS + ADMINS)
                    world.publish_event(job.id, rng.choice(M.KINDS + ("custom",)), user=user)
                    world.count("publish")
                elif op == "invalid":
                    world.publish_invalid()
                    world.count("publish invalid")
                elif op == "sub":
                    await world.op_subscribe_jobs(rng.choice(ws))
                elif op == "foreign":
                    await world.op_subscribe_foreign(rng.choice(ws))
                elif op == "unsub":
                    await world.op_unsubscribe_jobs(rng.choice(ws))
                elif op == "scope":
                    await world.op_scope(rng.choice(ws))
                elif op == "bad":
                    await world.op_bad_request(rng.choice(ws))
                elif op == "open_ws" and len(ws) < max_ws:
                    admin = rng.random() < 0.2
                    await world.open_ws(rng.choice(ADMINS if admin else USERS), admin)
                    world.count("open ws")
                elif op == "open_sse" and len(sse) < max_sse:
                    await world.op_open_sse()
                elif op == "close" and ws + sse:
                    await world.close_conn(rng.choice(ws + sse))
            result["ops"] = ops
            result["ops_seconds"] = time.monotonic() - t0
            # quiescence: a marker per open connection, then wait for all of them
            markers = {}
            for conn in list(world.model.conns.values()):
                if conn.open and not world.real[conn.name].closed:
                    p = await world.sync(conn)
                    if not isinstance(p, bool):
                        markers[conn.name] = p
            deadline = time.monotonic() + 10
            for name, p in markers.items():
                real = world.real[name]
                if not await real.wait(lambda: real.has_event(p),
                                       max(0.1, deadline - time.monotonic())):
                    world.extra_violations.append(
                        f"[seed {seed}] {name}: the end marker {p.describe()} did not arrive "
                        f"within 10 s (the connection's stream is incomplete)")
        finally:
            await asyncio.gather(*(real.close() for real in world.real.values()),
                                 return_exceptions=True)

    t_start = time.monotonic()
    asyncio.run(asyncio.wait_for(run(), budget + 60))
    elapsed = time.monotonic() - t_start

    violations = list(world.extra_violations)
    if jw.proc.poll() is not None:
        violations.append(f"[seed {seed}] jobwire exited with {jw.proc.returncode} during the "
                          f"run:\n{tail(jw.log, 40)}")
    for name, conn in world.model.conns.items():
        violations += M.verify(world.model, conn, world.real[name].log, seed)
    dump_dir = os.environ.get("JW_MODEL_DUMP")
    if dump_dir:
        write_dump(world, dump_dir)
        with open(os.path.join(dump_dir, "violations.txt"), "w") as f:
            f.write("\n".join(violations) + "\n")
    if world.fence_timeouts:
        violations.append(f"[seed {seed}] observer: {len(world.fence_timeouts)} fence event(s) "
                          f"did not arrive within 5 s, e.g. #{world.fence_timeouts[0]}")
    if jw.proc.poll() is None:
        invalid_counted = sum(v for (n, _), v in jw.metrics().items()
                              if n == "jobwire_events_invalid_total")
        if invalid_counted != world.invalid_sent:
            violations.append(
                f"[seed {seed}] jobwire_events_invalid_total sums to {invalid_counted:g}, but "
                f"{world.invalid_sent} invalid messages were published (each must be dropped "
                f"and counted once; more means valid messages were dropped as invalid)")
    stats = ", ".join(f"{k} {v}" for k, v in sorted(world.counts.items()))
    print(f"model test: seed {seed}: {result.get('ops', 0)} ops in "
          f"{result.get('ops_seconds', 0):.1f} s, {elapsed:.1f} s in all, "
          f"{len(world.model.published)} publications, {len(world.model.conns)} connections; "
          f"{stats}", file=sys.stderr)
    assert not violations, (f"seed {seed} (replay: JW_MODEL_SEED={seed} "
                            f"JW_MODEL_OPS={result.get('ops')}):\n" + summarize(violations))


# ------------------------------------------------------------------------ the checker itself

def test_model_checker_detects_each_kind_of_violation():
    """verify() is what makes the random test able to fail: fed a stream with one defect of
    each kind, it must name each one (and accept the stream without defects)."""
    model = M.Model(MAX_SUBS)
    model.add_job(M.Job("ja", "alice", "hash"))
    model.jobs["ja"].hash = {"userId": "alice", "progress": "5"}
    conn = M.Conn("c1", "alice", False, "ws")
    model.conns["c1"] = conn
    conn.requests["r1"] = ('{"type":"subscribe","jobs":["ja"]}',
                           {"type": "ack", "op": "subscribe", "scope": "jobs", "jobs": ["ja"],
                            "kinds": M.KINDS})
    model.apply_subscribe_jobs(conn, ["ja"], None)

    def pub(uid, job, user, valid=True):
        p = M.Published(uid, f"ai:job:status:{job}".encode(),
                        M.dump({"jobId": job, "userId": user, "n": uid}).encode(), valid, "bad",
                        job=job, user=user, kind="status")
        model.publish(p)
        return p

    p1, p2, p3 = pub(1, "ja", "alice"), pub(2, "ja", "alice"), pub(3, "ja", "alice")
    leak = pub(4, "jb", "bob")
    bad = pub(5, "ja", "alice", valid=False)

    def frame(p, seq):
        return {"msg": M.loads(json.dumps({
            "type": "event", "kind": "status", "jobId": p.job, "userId": p.user,
            "channel": p.channel.decode(), "payload": json.loads(p.payload), "seq": seq})),
            "id": None}

    head = [{"msg": {"type": "welcome", "userId": "alice", "admin": False}, "id": None},
            {"msg": {"type": "ack", "id": "r1", "op": "subscribe", "scope": "jobs",
                     "jobs": ["ja"], "kinds": list(M.KINDS)}, "id": None},
            {"msg": M.loads(json.dumps({"type": "snapshot", "jobId": "ja", "userId": "alice",
                                        "source": "hash", "state": model.jobs["ja"].hash,
                                        "seq": 1})), "id": None}]
    good = head + [frame(p1, 2), frame(p2, 3), frame(p3, 4)]
    assert M.verify(model, conn, good, 0) == []
    cases = {
        "LOST": head + [frame(p1, 2), frame(p3, 3)],
        "DUPLICATE": head + [frame(p1, 2), frame(p2, 3), frame(p2, 4), frame(p3, 5)],
        "ORDER": head + [frame(p2, 2), frame(p1, 3), frame(p3, 4)],
        "LEAK ACROSS USERS": good + [frame(leak, 5)],
        "INVALID INPUT DELIVERED": good + [frame(bad, 5)],
        "seq jumps": head + [frame(p1, 2), frame(p2, 4), frame(p3, 5)],
        "snapshot": [head[0], head[1]] + [frame(p1, 1), frame(p2, 2), frame(p3, 3)],
    }
    for what, log in cases.items():
        found = M.verify(model, conn, log, 0)
        assert any(what in v for v in found), f"{what} not detected; got {found}"
    before = head[:2] + [frame(p1, 1), head[2]] + [frame(p2, 3), frame(p3, 4)]
    before[3] = {"msg": dict(before[3]["msg"], seq=2), "id": None}
    found = M.verify(model, conn, before, 0)
    assert any("ORDER" in v for v in found), f"event before its snapshot not detected: {found}"
