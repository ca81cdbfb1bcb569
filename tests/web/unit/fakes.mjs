// Test doubles for web/jobwire.js: a WebSocket class driven by the test, a manual clock, and a
// network switch. No real sockets or timers are involved, so every test is deterministic.

/** A WebSocket stand-in. Each instance is recorded in FakeWebSocket.instances. */
export class FakeWebSocket {
  static instances = [];

  static reset() {
    FakeWebSocket.instances = [];
  }

  static last() {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.sent = []; // parsed JSON of every message the client sent
    this.readyState = 0;
    this.closedWith = null; // [code, reason] when the client closed it
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeWebSocket.instances.push(this);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error("not open");
    const msg = JSON.parse(data);
    this.sent.push(msg);
    // A FakeServer attached by accept() answers after send() returns, as a real peer would.
    if (this.peer) queueMicrotask(() => this.peer.handle(this, msg));
  }

  close(code, reason) {
    this.closedWith = [code, reason];
    this.readyState = 3;
  }

  // ---- driven by the test ----
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }

  welcome(user = "alice", admin = false) {
    this.receive({ type: "welcome", protocol: 1, connectionId: "c1", userId: user, admin });
  }

  serverClose(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** The sent messages of one type. */
  sentOf(type) {
    return this.sent.filter((m) => m.type === type);
  }

  /** Answers every subscribe/unsubscribe not answered yet with an ack. */
  ackAll() {
    this._acked ??= new Set();
    for (const m of this.sent) {
      if ((m.type === "subscribe" || m.type === "unsubscribe") && !this._acked.has(m.id)) {
        this._acked.add(m.id);
        this.receive({ type: "ack", id: m.id, op: m.type, scope: m.scope || "jobs", jobs: m.jobs });
      }
    }
  }
}

/** A clock whose timers run only when the test advances it. */
export class FakeClock {
  constructor(start = 1_700_000_000_000) {
    this.time = start;
    this.timers = new Map();
    this.nextId = 1;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.time + Math.max(0, ms || 0), fn, ms });
      return id;
    };
    this.clearTimeout = (id) => this.timers.delete(id);
    this.now = () => this.time;
  }

  /** Delays of the timers pending now, sorted. */
  pending() {
    return [...this.timers.values()].map((t) => t.at - this.time).sort((a, b) => a - b);
  }

  /** Moves time forward, running due timers in order and letting promises settle between. */
  async advance(ms) {
    const end = this.time + ms;
    await flush();
    // A timer that keeps re-arming itself without time passing is a busy loop: fail, not hang.
    for (let ran = 0; ; ran++) {
      if (ran > 10_000) throw new Error("FakeClock: over 10000 timers in one advance (a timer loop?)");
      let next = null;
      for (const [id, t] of this.timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
      if (!next) break;
      this.timers.delete(next[0]);
      this.time = Math.max(this.time, next[1].at);
      next[1].fn();
      await flush();
    }
    this.time = end;
    await flush();
  }
}

/** Lets pending promise callbacks run. */
export async function flush() {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** A network whose online state the test switches. */
export class FakeNetwork {
  constructor(online = true) {
    this.isOnline = online;
    this.callbacks = new Set();
  }
  online() {
    return this.isOnline;
  }
  watch(cb) {
    this.callbacks.add(cb);
    return () => this.callbacks.delete(cb);
  }
  set(online) {
    this.isOnline = online;
    for (const cb of [...this.callbacks]) cb(online);
  }
}

/** An unsigned JWT-shaped token with the given claims (the client only reads exp). */
export function fakeJwt(claims) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${enc({ alg: "HS256", typ: "JWT" })}.${enc(claims)}.c2ln`;
}

/**
 * A jobwire server stand-in: the protocol of docs/PROTOCOL.md with the additions of the
 * protocol-changes spec (eventId on events and snapshots, welcome live/expiresAt/epoch,
 * subscribe lastEventId → ack.resumed, scope subscribes followed by `ack.snapshots` snapshots).
 * It holds the jobs' state (what Redis would), numbers events, keeps a bounded window of them
 * for resumes, and serves the newest FakeWebSocket through accept(). `legacy: true` behaves
 * like the server before the additions (no eventIds, no resume, no scope snapshots).
 */
export class FakeServer {
  constructor({ epoch = "0a0b0c0d", resume = true, legacy = false, window = 1000, tokens = null } = {}) {
    this.epoch = epoch;
    this.canResume = resume;
    this.legacy = legacy;
    this.window = window;
    this.tokens = tokens; // token → { userId, admin?, expiresAt? } | undefined (refused); null: dev
    this.n = 0;
    this.log = []; // published events (frames without seq), at most `window`
    this.jobs = new Map(); // jobId → { userId, state: { field: string }, n }
    this.conn = null;
    this.redisUp = true;
    this.holdSnapshots = false;
    this.held = [];
    this.connections = 0;
  }

  /** Opens the newest socket and serves it (dev_auth: welcome at once when no auth comes). */
  async accept({ user = "alice", admin = false } = {}) {
    await flush();
    const ws = FakeWebSocket.last();
    this.conn = { ws, seq: 0, user, admin, welcomed: false, jobs: new Set(), scopes: new Set() };
    this.connections++;
    ws.peer = this;
    ws.open();
    queueMicrotask(() => {
      if (this.conn && this.conn.ws === ws && !this.conn.welcomed && !this.tokens) this._welcome(user, admin);
    });
    await flush();
    return ws;
  }

  _welcome(userId, admin, expiresAt) {
    const c = this.conn;
    c.welcomed = true;
    c.user = userId;
    c.admin = admin;
    const w = { type: "welcome", protocol: 1, connectionId: `c${this.connections}`, userId, admin };
    if (!this.legacy) {
      w.live = this.redisUp;
      w.epoch = this.epoch;
      if (expiresAt != null) w.expiresAt = expiresAt;
    }
    this.send(w);
  }

  send(msg) {
    if (this.conn && this.conn.ws.readyState === 1) this.conn.ws.receive(msg);
  }

  /** Frames that count in seq: events and snapshots. */
  _frame(frame) {
    const out = { ...frame, seq: ++this.conn.seq };
    if (this.legacy) delete out.eventId;
    this.send(out);
  }

  handle(ws, m) {
    if (!this.conn || this.conn.ws !== ws || ws.readyState !== 1) return;
    const c = this.conn;
    const reply = (x) => this.send(m.id != null ? { ...x, id: String(m.id) } : x);
    if (m.type === "auth" || m.type === "refresh") {
      const t = this.tokens && this.tokens[m.token];
      if (!t) {
        if (c.welcomed) return reply({ type: "error", code: "bad_token", message: "bad_signature" });
        reply({ type: "error", code: "unauthenticated", message: "bad_signature" });
        return ws.serverClose(4401, "bad_signature");
      }
      if (!c.welcomed) return this._welcome(t.userId, !!t.admin, t.expiresAt);
      const ack = { type: "ack", op: "auth", userId: t.userId };
      if (!this.legacy && t.expiresAt != null) ack.expiresAt = t.expiresAt;
      return reply(ack);
    }
    if (!c.welcomed) return reply({ type: "error", code: "unauthenticated", message: "auth first" });
    if (m.type === "ping") return reply({ type: "pong" });
    if (m.type === "unsubscribe") {
      if (m.scope) c.scopes.delete(m.scope);
      else for (const j of m.jobs) c.jobs.delete(j);
      return reply({ type: "ack", op: "unsubscribe", scope: m.scope || "jobs", ...(m.jobs ? { jobs: m.jobs } : {}) });
    }
    if (m.type !== "subscribe") return reply({ type: "error", code: "unknown_type", message: m.type });
    if (m.scope === "all" && !c.admin) return reply({ type: "error", code: "forbidden", message: "admins only" });
    const ack = { type: "ack", op: "subscribe", scope: m.scope || "jobs", ...(m.jobs ? { jobs: m.jobs } : {}) };
    let resumed = false;
    if (!this.legacy && m.lastEventId != null) {
      resumed = this.canResume && this._inWindow(m.lastEventId);
      ack.resumed = resumed;
    }
    const recent = m.scope ? this._recent(m.scope) : [];
    if (m.scope && !this.legacy && !resumed) ack.snapshots = recent.length;
    if (m.scope) c.scopes.add(m.scope);
    else for (const j of m.jobs) c.jobs.add(j);
    reply(ack);
    if (resumed) {
      const after = Number(m.lastEventId.split("-")[1]);
      const sub = m.scope ? { scope: m.scope } : { jobs: new Set(m.jobs) };
      for (const ev of this.log) if (ev.n > after && this._matches(ev.frame, sub)) this._frame(ev.frame);
    } else {
      for (const jobId of m.scope ? (this.legacy ? [] : recent) : m.jobs) this._snapshot(jobId);
    }
  }

  _inWindow(id) {
    const [epoch, n] = id.split("-");
    if (epoch !== this.epoch) return false;
    const oldest = this.log.length ? this.log[0].n : this.n + 1;
    return Number(n) >= oldest - 1 && Number(n) <= this.n;
  }

  _matches(frame, sub) {
    const c = this.conn;
    if (!c.admin && frame.userId !== c.user) return false;
    if (sub.jobs) return sub.jobs.has(frame.jobId);
    return sub.scope === "all" || frame.userId === c.user;
  }

  /** The jobs a scope's snapshots cover, most recent first. */
  _recent(scope) {
    return [...this.jobs.entries()]
      .filter(([, j]) => scope === "all" || j.userId === this.conn.user)
      .sort(([, a], [, b]) => b.n - a.n).map(([id]) => id);
  }

  _snapshot(jobId) {
    const job = this.jobs.get(jobId);
    const snap = { type: "snapshot", jobId, eventId: `${this.epoch}-${this.n}` };
    if (!this.redisUp) Object.assign(snap, { source: null, state: null, unavailable: true });
    else if (!job) Object.assign(snap, { source: null, state: null });
    else Object.assign(snap, { userId: job.userId, source: "hash", state: { ...job.state } });
    if (this.holdSnapshots) this.held.push(snap);
    else this._frame(snap);
  }

  /** Sends up to k held snapshots. */
  releaseSnapshots(k = Infinity) {
    while (k-- > 0 && this.held.length) this._frame(this.held.shift());
  }

  /**
   * One job update as the AI services make it: the state first (hash fields as strings), then
   * the event; the event is lost while Redis is down (nothing is subscribed).
   */
  publish(jobId, kind, payload = {}, { userId = "alice", state } = {}) {
    const job = this.jobs.get(jobId) || { userId, state: {}, n: 0 };
    for (const [k, v] of Object.entries({ userId, ...(state || payload) })) job.state[k] = String(v);
    this.jobs.set(jobId, job);
    if (!this.redisUp) return null;
    const n = ++this.n;
    job.n = n;
    const frame = { type: "event", kind, jobId, userId, channel: `ai:job:${kind}:${jobId}`,
                    payload: { jobId, userId, ...payload }, eventId: `${this.epoch}-${n}` };
    this._log(n, frame);
    return frame;
  }

  /** An event of a user channel (no jobId), e.g. ai:recommendations:{userId}. */
  publishUser(userId, kind, payload = {}) {
    const n = ++this.n;
    const frame = { type: "event", kind, userId, channel: `ai:${kind}s:${userId}`, payload,
                    eventId: `${this.epoch}-${n}` };
    this._log(n, frame);
    return frame;
  }

  _log(n, frame) {
    this.log.push({ n, frame });
    if (this.log.length > this.window) this.log.shift();
    const c = this.conn;
    if (!c || !c.welcomed) return;
    const viaJob = frame.jobId != null && c.jobs.has(frame.jobId) && (c.admin || frame.userId === c.user);
    const viaScope = (c.scopes.has("all") && c.admin) || (c.scopes.has("user") && frame.userId === c.user);
    if (viaJob || viaScope) this._frame(frame);
  }

  /** Conflation: k frames of this connection were dropped (seq skips k numbers). */
  conflate(k) {
    this.conn.seq += k;
  }

  /** The server's Redis goes away: live updates pause. */
  redisDown() {
    this.redisUp = false;
    this.send({ type: "status", live: false, reason: "redis unavailable" });
  }

  /** Redis is back: live:true, then fresh snapshots of job and (new servers) scope subscriptions. */
  redisBack() {
    this.redisUp = true;
    this.send({ type: "status", live: true });
    const c = this.conn;
    if (!c) return;
    const ids = new Set(c.jobs);
    if (!this.legacy) for (const sc of c.scopes) for (const id of this._recent(sc)) ids.add(id);
    for (const id of ids) this._snapshot(id);
  }

  /** The connection drops (network, 4008, …). */
  drop(code = 1006, reason = "") {
    const c = this.conn;
    this.conn = null;
    if (c) c.ws.serverClose(code, reason);
  }

  /** The token expired: the error frame, then close 4401. */
  expireToken() {
    this.send({ type: "error", code: "unauthenticated", message: "token expired" });
    this.drop(4401, "token expired");
  }

  /** A new server process (or another replica): new epoch, counter from 0, empty window. */
  restart(epoch = "1f2e3d4c") {
    this.drop(1006);
    this.epoch = epoch;
    this.n = 0;
    this.log = [];
  }
}
