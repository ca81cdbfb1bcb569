"""A reference model of jobwire's delivery promises (docs/PROTOCOL.md, /work/spec additions).

The model knows what is in Redis (each job's hash or JSON string), every connection's
subscriptions, and every message published; from that it derives, per connection, the replies,
snapshots and events the connection must receive, and `verify()` compares that with what the
connection did receive.

Rules modelled (each is a promise of docs/PROTOCOL.md):
- an event reaches a connection when one of its subscriptions matches (job id, `user` scope with
  the event's userId, `all`) with a kinds filter that lets the event's kind through, and the
  connection is an admin or the event's userId is the connection's user; at most once;
- a `subscribe` with jobs of which one is owned (in Redis) by another user is refused whole with
  `forbidden` and changes nothing (the kinds of jobs held before stay as they were);
- every other refusal (bad_job_id, bad_kind, bad_request, unknown_type, bad_json,
  too_many_subscriptions, scope all for a non-admin) changes nothing either;
- an accepted `subscribe` with jobs is answered by an ack and one snapshot per job, before any
  live event of that job published after the subscribe; the snapshot shows the job's state as
  Redis holds it (hash first, else the JSON string), or `state: null` when it names another user
  or no user (non-admins);
- messages that do not fit the channel/payload rules (not UTF-8, NUL or control bytes in ids,
  not JSON, too large, no job id) are dropped; valid JSON passes through unchanged;
- `seq` counts events and snapshots of a connection, 1, 2, 3, ... (a gap means frames were
  dropped, which the model never expects: its traffic puts no pressure on any queue);
- `eventId` (when the server sends it) grows strictly on a connection within one epoch.

The model is deliberately small: `Model` (Redis state, published messages, connections) and
`Conn` (one connection's subscriptions and its expected stream). `verify()` returns a list of
human-readable violations; an empty list means the connection got exactly what it should.
"""

import json
from decimal import Decimal

KINDS = ("status", "progress", "complete", "error", "other")
ALL = frozenset(KINDS)
ID_MAX = 128


def filter_kind(kind):
    """The kinds-filter name of a channel's kind segment."""
    return kind if kind in KINDS[:4] else "other"


def id_valid(s):
    """A job or user id as the protocol allows it: 1-128 bytes, no control bytes."""
    if not isinstance(s, str):
        return False
    b = s.encode("utf-8", "surrogatepass")
    return 0 < len(b) <= ID_MAX and all(c >= 0x20 and c != 0x7f for c in b)


# ------------------------------------------------------------------------------------ JSON text

class PD(dict):
    """A JSON object that remembers its members in order (duplicates too)."""
    pairs = ()


def _pairs_hook(pairs):
    d = PD(pairs)
    d.pairs = tuple(pairs)
    return d


def loads(text):
    """JSON with exact numbers (Decimal for reals, int for integers) and ordered objects."""
    return json.loads(text, parse_float=Decimal, object_pairs_hook=_pairs_hook)


def canon(v):
    """A hashable form of a JSON value in which every textual difference of the value shows:
    member order, duplicate members, 1.0 vs 1.00, 1e3 vs 1000."""
    if isinstance(v, PD):
        return ("{", tuple((k, canon(x)) for k, x in v.pairs))
    if isinstance(v, dict):
        return ("{", tuple((k, canon(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("[", tuple(canon(x) for x in v))
    if isinstance(v, Decimal):
        return ("d", str(v))
    if isinstance(v, bool) or v is None:
        return ("c", v)
    if isinstance(v, int):
        return ("i", v)
    return ("s", v)


def value_eq(a, b):
    """JSON value equality (numbers by value, members in any order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(value_eq(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(value_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal)):
        return Decimal(a) == Decimal(b)
    return type(a) is type(b) and a == b


def dump(v, indent=None):
    """JSON text; Decimal is written as its literal (so 1.5e300 stays 1.5e300)."""
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return json.dumps(v, ensure_ascii=False)
    nl = "" if indent is None else "\n"
    if isinstance(v, list):
        return "[" + nl + ("," + nl).join(dump(x, indent) for x in v) + nl + "]"
    return "{" + nl + ("," + nl).join(
        (indent or "") + json.dumps(k, ensure_ascii=False) + ": " + dump(x, indent)
        for k, x in v.items()) + nl + "}"


def short(v, n=160):
    s = v if isinstance(v, str) else repr(v)
    return s if len(s) <= n else s[:n] + "…"


# ------------------------------------------------------------------------------ Redis and jobs

class Job:
    """One job id and what Redis holds for it: `store` is how its state is kept
    ("hash", "string", "none": never written, "hash_noowner": a hash without userId)."""

    def __init__(self, job_id, owner, store):
        self.id, self.owner, self.store = job_id, owner, store
        self.hash = None         # dict of str -> str, as HGETALL returns it
        self.string = None       # the JSON text of ai:job:status:{id}

    def redis_owner(self):
        """The owner jobwire must read from Redis: the hash's userId, else the JSON string's
        userId (string or integer), else None."""
        if self.hash is not None:
            return self.hash.get("userId")
        if self.string is not None:
            v = loads(self.string)
            if isinstance(v, dict):
                u = v.get("userId")
                if isinstance(u, str):
                    return u if id_valid(u) else None
                if isinstance(u, int) and not isinstance(u, bool):
                    return str(u)
        return None

    def snapshot(self):
        """(source, state) of the snapshot jobwire must send when the state is visible."""
        if self.hash is not None:
            return "hash", dict(self.hash)
        if self.string is not None:
            return "string", loads(self.string)
        return None, None


class Published:
    """One PUBLISH: its bytes, and what jobwire must make of it."""

    def __init__(self, uid, channel, payload, valid, why="", job=None, user=None, kind=None,
                 note=""):
        self.uid, self.channel, self.payload = uid, channel, payload
        self.valid, self.why = valid, why
        self.job, self.user, self.kind, self.note = job, user, kind, note
        self.canon = None
        try:
            self.canon = canon(loads(payload.decode("utf-8")))
        except (UnicodeDecodeError, ValueError):
            pass

    def describe(self):
        return (f"#{self.uid} PUBLISH {short(self.channel)} {short(self.payload, 120)}"
                + (f" ({self.note})" if self.note else ""))


# -------------------------------------------------------------------------------- connections

class Conn:
    """One client connection as the model sees it."""

    def __init__(self, name, user, admin, transport):
        self.name, self.user, self.admin, self.transport = name, user, admin, transport
        self.jobs = {}           # job id -> frozenset of kinds-filter names
        self.user_scope = None   # frozenset of kinds, or None when not subscribed
        self.all_scope = None
        self.expected = []       # ("event", uid) | ("snapshot", job id, ExpectedSnapshot)
        self.requests = {}       # request id -> (what was sent, expected answer)
        self.anonymous_errors = []  # expected errors without id (bad_json)
        self.open = True
        self.refused_stream = None  # SSE: the error code the stream must end with
        self.refused_why = ""
        self.refused_log = []    # (last uid published before, request, code) of refused requests
        self.retired = None      # why the model stopped following this connection
        self.died = False
        self.history = [(0, self.describe())]  # (last uid published before, subscriptions)

    def changed(self, uid):
        """Records the subscriptions in force from publication uid+1 on."""
        self.history.append((uid, self.describe()))

    def state_at(self, uid):
        """The subscriptions in force when publication uid was published."""
        desc = self.history[0][1]
        for u, d in self.history:
            if u < uid:
                desc = d
        return desc

    def hint(self, p):
        """Refused requests of this connection that named p's job before p was published."""
        names = [f"{short(dump(r))} (refused: {code}, sent after #{uid})"
                 for uid, r, code in self.refused_log
                 if uid < p.uid and p.job in (r.get("jobs") or ())]
        return f"; earlier refused requests naming job {p.job!r}: {names[-2:]}" if names else ""

    def receives(self, p):
        if not p.valid:
            return False
        if not (self.admin or (p.user is not None and p.user == self.user)):
            return False
        k = filter_kind(p.kind)
        if p.job in self.jobs and k in self.jobs[p.job]:
            return True
        if self.user_scope is not None and p.user == self.user and k in self.user_scope:
            return True
        return self.all_scope is not None and k in self.all_scope

    def describe(self):
        subs = ", ".join(f"{j!r}:{sorted(k)}" for j, k in self.jobs.items())
        return (f"{self.name} ({self.transport}, user {self.user!r}{', admin' if self.admin else ''}"
                f"; jobs {{{subs}}}; user scope {sorted(self.user_scope) if self.user_scope else '-'}"
                f"; all scope {sorted(self.all_scope) if self.all_scope else '-'})")


class ExpectedSnapshot:
    def __init__(self, job, visible, source, state, owner, stored=""):
        self.job, self.visible, self.source, self.state, self.owner = (
            job, visible, source, state, owner)
        self.stored = stored  # what Redis holds, for the failure message


class Model:
    def __init__(self, max_subscriptions):
        self.max_subs = max_subscriptions
        self.jobs = {}
        self.conns = {}
        self.published = []
        self.by_canon = {}       # canonical payload -> Published (payloads are unique)
        self.by_n = {}           # payload "n" -> Published, to explain an altered payload

    # ------------------------------------------------------------------ jobs and publications

    def add_job(self, job):
        self.jobs[job.id] = job
        return job

    def publish(self, p):
        """Records a publication and appends it to the expected stream of every receiver."""
        self.published.append(p)
        if p.canon is not None:
            assert p.canon not in self.by_canon, "model bug: payloads must be unique"
            self.by_canon[p.canon] = p
        try:
            v = loads(p.payload.decode("utf-8"))
            if isinstance(v, dict) and isinstance(v.get("n"), int):
                self.by_n[v["n"]] = p
        except (UnicodeDecodeError, ValueError):
            pass
        receivers = [c for c in self.conns.values() if c.open and c.receives(p)]
        for c in receivers:
            c.expected.append(("event", p.uid))
        return receivers

    # ---------------------------------------------------------------------------- requests

    def subscribe_jobs_answer(self, conn, jobs, kinds):
        """The answer a subscribe with these (well-formed) jobs must get: "ack" or an error
        code. Checks in the order: ids, kinds, count, owners."""
        if any(not id_valid(j) for j in jobs):
            return "bad_job_id"
        if kinds is not None and any(k not in KINDS for k in kinds):
            return "bad_kind"
        new = [j for j in dict.fromkeys(jobs) if j not in conn.jobs]
        if len(conn.jobs) + len(new) > self.max_subs:
            return "too_many_subscriptions"
        if not conn.admin:
            for j in jobs:
                job = self.jobs.get(j)
                owner = job.redis_owner() if job else None
                if owner is not None and owner != conn.user:
                    return "forbidden"
        return "ack"

    def why_forbidden(self, conn, jobs):
        """Which jobs of a request belong to another user, and what Redis holds for them."""
        out = []
        for j in jobs:
            job = self.jobs.get(j)
            owner = job.redis_owner() if job else None
            if owner is not None and owner != conn.user and not conn.admin:
                held = (f"hash {job.hash}" if job.hash is not None
                        else f"string {job.string}")
                out.append(f"job {j!r} belongs to {owner!r} (Redis: {short(held, 240)})")
        return "; ".join(out)

    def apply_subscribe_jobs(self, conn, jobs, kinds):
        """An accepted subscribe: new filters, and the snapshots that must follow the ack."""
        ks = ALL if kinds is None else frozenset(kinds)
        snaps = []
        for j in jobs:
            conn.jobs[j] = ks
            snaps.append(self.expected_snapshot(conn, j))
        for s in snaps:
            conn.expected.append(("snapshot", s.job, s))
        conn.changed(self.last_uid())
        return snaps

    def last_uid(self):
        return self.published[-1].uid if self.published else 0

    def expected_snapshot(self, conn, job_id):
        job = self.jobs.get(job_id)
        owner = job.redis_owner() if job else None
        source, state = job.snapshot() if job else (None, None)
        visible = conn.admin or (owner is not None and owner == conn.user)
        if source is None:
            visible = True  # nothing to hide: source null, state null
        stored = ""
        if job is not None and job.hash is not None:
            stored = f"hash ai:job:{job_id} = {job.hash}"
        elif job is not None and job.string is not None:
            stored = f"string ai:job:status:{job_id} = {job.string}"
        return ExpectedSnapshot(job_id, visible, source, state, owner, stored)

    def apply_unsubscribe_jobs(self, conn, jobs):
        for j in jobs:
            conn.jobs.pop(j, None)
        conn.changed(self.last_uid())

    def scope_answer(self, conn, scope, kinds):
        if kinds is not None and any(k not in KINDS for k in kinds):
            return "bad_kind"
        if scope == "all" and not conn.admin:
            return "forbidden"
        return "ack"

    def apply_scope(self, conn, scope, kinds, on=True):
        ks = (ALL if kinds is None else frozenset(kinds)) if on else None
        if scope == "user":
            conn.user_scope = ks
        else:
            conn.all_scope = ks
        conn.changed(self.last_uid())

    def marker_route(self, conn):
        """(job id, kind-filter name) of an event this connection receives when it names the
        connection's user, or None when the connection receives nothing."""
        for scope in (conn.all_scope, conn.user_scope):
            if scope:
                return f"zz:mark:{conn.name}", sorted(scope)[0]
        for j, ks in conn.jobs.items():
            if ks:
                return j, sorted(ks)[0]
        return None


# ------------------------------------------------------------------------------ verification

def _ev_key(msg):
    return msg.get("jobId")


def verify(model, conn, log, seed):
    """Violations of the promises in what `conn` received (`log`: the client's records, each
    {"msg": frame, "id": SSE id line or None} or {"closed": code, "by": "server"|"client"} or
    {"protocol_error": text})."""
    out = []

    def bad(what):
        out.append(f"[seed {seed}] {conn.name}: {what}")

    frames = [e for e in log if "msg" in e]
    conn.died = conn.died or any(e.get("closed") is not None and e.get("by") != "client"
                                 for e in log)
    for e in log:
        if "protocol_error" in e:
            bad(f"protocol error on the stream: {e['protocol_error']}")
        if e.get("closed") is not None and e.get("by") == "server" and conn.refused_stream is None:
            bad(f"the server closed the connection (code {e['closed']!r}, reason "
                f"{e.get('reason')!r}) although nothing called for it")

    # ---- welcome, then (SSE) the ack of the query or the refusal
    if not frames or frames[0]["msg"].get("type") != "welcome":
        bad(f"first message is not the welcome: {short(frames[0]['msg']) if frames else 'nothing'}")
        return out
    welcome = frames[0]["msg"]
    if welcome.get("userId") != conn.user or bool(welcome.get("admin")) != conn.admin:
        bad(f"welcome names user {welcome.get('userId')!r} admin {welcome.get('admin')!r}, "
            f"expected {conn.user!r} admin {conn.admin}")
    epoch = welcome.get("epoch")

    # ---- seq, eventId, SSE id lines
    last_seq, last_n, seq_gaps = 0, None, []
    for e in frames:
        m = e["msg"]
        if m.get("type") not in ("event", "snapshot"):
            if e.get("id") is not None:
                bad(f"SSE id line {e['id']!r} on a {m.get('type')} message")
            continue
        seq = m.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            bad(f"{m.get('type')} without an integer seq: {short(m)}")
            continue
        if seq != last_seq + 1:
            if seq > last_seq + 1:
                seq_gaps.append((last_seq, seq, m))
            else:
                bad(f"seq {seq} after {last_seq} (not increasing) at {short(m)}")
        last_seq = seq
        eid = m.get("eventId")
        if conn.transport == "sse":
            want = eid if eid is not None else str(seq)
            if e.get("id") != want:
                bad(f"SSE id line {e.get('id')!r} where {want!r} was due (seq {seq}, "
                    f"eventId {eid!r})")
        if eid is not None:
            ep, _, n = str(eid).partition("-")
            if epoch is not None and ep != epoch:
                bad(f"eventId {eid!r} of another epoch than the welcome's {epoch!r}")
            if m.get("type") == "event":
                if not n.isdigit():
                    bad(f"eventId {eid!r} is not <epoch>-<n>")
                else:
                    if last_n is not None and (ep != last_n[0] or int(n) <= last_n[1]):
                        bad(f"eventId {eid!r} after {last_n[0]}-{last_n[1]}: not strictly "
                            f"increasing within one epoch")
                    last_n = (ep, int(n))
    for before, after, m in seq_gaps:
        bad(f"seq jumps from {before} to {after} at {short(m)}: {after - before - 1} frame(s) "
            f"dropped for this connection (conflation without back-pressure, or a loss)")

    # ---- a refused SSE stream: error, close, and nothing else
    if conn.refused_stream is not None:
        types = [e["msg"].get("type") for e in frames[1:]]
        errs = [e["msg"] for e in frames if e["msg"].get("type") == "error"]
        closes = [e["msg"] for e in frames if e["msg"].get("type") == "close"]
        if not errs or errs[0].get("code") != conn.refused_stream:
            bad(f"refused stream: expected an error {conn.refused_stream}"
                f"{' because ' + conn.refused_why if conn.refused_why else ''}, got "
                f"{short(types, 200)}")
        if not closes or closes[-1].get("code") not in (1008, 4403):
            bad(f"refused stream: expected a last close event with code 1008 (or 4403), got "
                f"{[short(c) for c in closes] or types}")
        leaked = [short(e["msg"]) for e in frames
                  if e["msg"].get("type") in ("event", "snapshot", "ack")]
        if leaked:
            bad(f"refused stream sent {leaked[:3]} before ending (the request must have no effect)")
        if not any(e.get("closed") is not None for e in log):
            bad("refused stream was not ended by the server")
        return out

    # ---- replies (an SSE stream's query is request None: its ack has no id)
    replies = {}
    anonymous = []
    for e in frames:
        m = e["msg"]
        if m.get("type") in ("ack", "error", "pong"):
            rid = m.get("id")
            if rid is None and conn.transport == "ws":
                anonymous.append(m)
                continue
            if rid in replies:
                bad(f"two replies to request {rid!r}: {short(replies[rid])} and {short(m)}")
            replies[rid] = m
    for rid, (sent, want) in conn.requests.items():
        got = replies.pop(rid, None)
        if got is None and conn.died:
            continue  # the connection's death is reported
        if got is None:
            bad(f"no answer to request {short(sent)} (expected {want['type']}"
                f"{' ' + want.get('code', '') if want['type'] == 'error' else ''})")
            continue
        if got.get("type") != want["type"] or (
                want["type"] == "error" and got.get("code") != want["code"]):
            bad(f"request {short(sent)} answered {short(got)}, expected "
                f"{want['type']} {want.get('code', '')}".rstrip()
                + (f" because {want['why']}" if want.get("why") else "")
                + f"; the connection then held {conn.state_at(want.get('at', 0) + 1)}")
            continue
        if want["type"] == "ack":
            for field in ("op", "scope", "jobs"):
                if field in want and got.get(field) != want[field]:
                    bad(f"ack of {short(sent)} has {field}={got.get(field)!r}, expected "
                        f"{want[field]!r}")
            if "kinds" in want and set(got.get("kinds") or ()) != set(want["kinds"]):
                bad(f"ack of {short(sent)} has kinds={got.get('kinds')!r}, expected "
                    f"{sorted(want['kinds'])}")
    for m in replies.values():
        bad(f"reply to a request never sent: {short(m)}")
    want_anon = list(conn.anonymous_errors)
    for m in anonymous:
        if m.get("type") == "error" and want_anon and m.get("code") == want_anon[0]:
            want_anon.pop(0)
        else:
            bad(f"unexpected reply without id: {short(m)}")
    for code in ([] if conn.died else want_anon):
        bad(f"no error {code} for a request without id")

    for e in frames:
        t = e["msg"].get("type")
        if t in ("status", "close", "goaway"):
            bad(f"unexpected {t} message (no outage, no shutdown): {short(e['msg'])}")

    # ---- events and snapshots
    scope_snaps_left = 0
    actual = []   # ("event", uid, msg) | ("snapshot", job, msg) | ("scope-snapshot", job, msg)
    for e in frames:
        m = e["msg"]
        t = m.get("type")
        if t == "ack" and m.get("scope") in ("user", "all") and isinstance(m.get("snapshots"), int):
            scope_snaps_left = m["snapshots"]
        elif t in ("ack", "error", "pong"):
            scope_snaps_left = 0
        if t == "snapshot":
            if scope_snaps_left > 0:
                scope_snaps_left -= 1
                actual.append(("scope-snapshot", m.get("jobId"), m))
            else:
                actual.append(("snapshot", m.get("jobId"), m))
        elif t == "event":
            p = model.by_canon.get(canon(m.get("payload"))) if "payload" in m else None
            if p is None:
                pl = m.get("payload")
                guess = model.by_n.get(pl.get("n")) if isinstance(pl, dict) else None
                if guess is not None:
                    bad(f"payload altered: published {short(guess.payload, 300)} on "
                        f"{short(guess.channel)}, received {short(dump(pl), 300)}")
                    actual.append(("event", guess.uid, m))
                else:
                    bad(f"event that nobody published (or altered beyond recognition): "
                        f"{short(m, 300)}")
                continue
            actual.append(("event", p.uid, m))

    pubs = {p.uid: p for p in model.published}
    expected_uids = [x[1] for x in conn.expected if x[0] == "event"]
    want = set(expected_uids)
    got_count = {}
    for kind, uid, m in actual:
        if kind != "event":
            continue
        got_count[uid] = got_count.get(uid, 0) + 1
        p = pubs[uid]
        if got_count[uid] == 2:
            bad(f"DUPLICATE: {p.describe()} delivered {sum(1 for a in actual if a[:2] == ('event', uid))} times")
        if uid not in want:
            if not p.valid:
                bad(f"INVALID INPUT DELIVERED (must be dropped: {p.why}): {p.describe()} "
                    f"arrived as {short(m, 240)}")
            elif not (conn.admin or p.user == conn.user):
                bad(f"LEAK ACROSS USERS: {p.describe()} (userId {p.user!r}) reached "
                    f"{conn.state_at(p.uid)}")
            else:
                bad(f"event not subscribed or filtered out by kinds, yet delivered: "
                    f"{p.describe()} (kind {p.kind!r}, job {p.job!r}) to {conn.state_at(p.uid)}"
                    f"{conn.hint(p)}")
            continue
        # the frame's fields
        chan = p.channel.decode("utf-8", "replace")
        checks = [("type", "event"), ("kind", p.kind), ("jobId", p.job), ("channel", chan)]
        for f, v in checks:
            if m.get(f) != v:
                bad(f"{p.describe()}: field {f}={m.get(f)!r}, expected {v!r}")
        if (m.get("userId") if "userId" in m else None) != p.user:
            bad(f"{p.describe()}: userId {m.get('userId')!r}, expected "
                f"{'absent' if p.user is None else repr(p.user)}")
    lost = [uid for uid in expected_uids if uid not in got_count]
    if conn.retired:
        return out  # its subscriptions are unknown from here on: no loss/order verdicts
    if conn.died:
        if lost:
            bad(f"{len(lost)} expected events did not arrive before the connection died "
                f"(see why above), e.g. {pubs[lost[0]].describe()}")
    else:
        for uid in lost:
            bad(f"LOST: {pubs[uid].describe()} never arrived at "
                f"{conn.state_at(uid)}{conn.hint(pubs[uid])}")

    # ---- per job: snapshots and events in the modelled order
    exp_by_job, got_by_job = {}, {}
    for x in conn.expected:
        if x[0] == "event":
            j = pubs[x[1]].job
            if x[1] in got_count:
                exp_by_job.setdefault(j, []).append(("E", x[1]))
        else:
            exp_by_job.setdefault(x[1], []).append(("S", x[2]))
    for kind, key, m in actual:
        if kind == "event":
            if key in want:
                got_by_job.setdefault(pubs[key].job, []).append(("E", key))
        elif kind == "snapshot":
            got_by_job.setdefault(key, []).append(("S", m))
        else:  # a scope snapshot (spec addition): it must not leak another user's state
            st = m.get("state")
            if st is not None and not conn.admin:
                job = model.jobs.get(key)
                owner = job.redis_owner() if job else None
                if owner != conn.user:
                    bad(f"LEAK: scope snapshot of job {key!r} (owner {owner!r}) with its state: "
                        f"{short(m)}")
    for j in sorted(set(exp_by_job) | set(got_by_job), key=str):
        exp, got = exp_by_job.get(j, []), got_by_job.get(j, [])
        es = [x for x in exp if x[0] == "S"]
        gs = [x for x in got if x[0] == "S"]
        if len(es) != len(gs):
            bad(f"job {j!r}: {len(gs)} snapshot(s) received, {len(es)} expected "
                f"(one per accepted subscribe naming the job)")
        for (_, want_s), (_, m) in zip(es, gs):
            out.extend(f"[seed {seed}] {conn.name}: {v}"
                       for v in check_snapshot(conn, want_s, m))
        # order: compare the shapes (S / event uid) of both sequences
        e_shape = ["S" if x[0] == "S" else x[1] for x in exp]
        g_shape = ["S" if x[0] == "S" else x[1] for x in got]
        if len(es) == len(gs) and e_shape != g_shape and sorted(map(str, e_shape)) == sorted(map(str, g_shape)):
            i = next(k for k, (a, b) in enumerate(zip(e_shape, g_shape)) if a != b)
            bad(f"job {j!r}: ORDER differs from publish order (S = snapshot, numbers = "
                f"publications) from position {i}: expected {e_shape[i:i + 8]}, "
                f"got {g_shape[i:i + 8]}")
    return out


def check_snapshot(conn, want, m):
    out = []
    what = f"snapshot of job {want.job!r} (Redis: {short(want.stored, 300) or 'nothing'})"
    if m.get("unavailable"):
        out.append(f"{what} says unavailable (Redis is up): {short(m)}")
        return out
    if not want.visible:
        if m.get("state") is not None:
            out.append(f"LEAK: {what} (owner {want.owner!r}) shows its state to user "
                       f"{conn.user!r}: {short(m, 240)}")
        return out
    if m.get("source") != want.source:
        out.append(f"{what}: source {m.get('source')!r}, expected {want.source!r} "
                   f"(state {short(m.get('state'))})")
    elif not value_eq(m.get("state"), want.state):
        out.append(f"{what}: state {short(dump(m.get('state')) if m.get('state') is not None else None, 300)}, "
                   f"expected {short(dump(want.state) if want.state is not None else None, 300)}")
    if want.owner is not None and m.get("userId") != want.owner:
        out.append(f"{what}: userId {m.get('userId')!r}, expected {want.owner!r}")
    return out
