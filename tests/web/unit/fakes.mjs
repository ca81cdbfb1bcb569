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
    this.sent.push(JSON.parse(data));
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
    for (;;) {
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
