// jobwire.js — client for the jobwire WebSocket protocol (version 1, docs/PROTOCOL.md).
//
// A dependency-free ES module for browsers and React Native-style runtimes. It needs only a
// WebSocket class and setTimeout; EventTarget and navigator.onLine are used when present.
//
//   import { JobwireClient } from "./jobwire.js";
//   const jw = new JobwireClient({ url: "wss://jobs.example.com/ws", getToken: fetchToken });
//   jw.on("jobs", ({ jobs }) => render(jobs));      // jobId → { status, progress, stale, … }
//   jw.connect();
//   jw.subscribe({ scope: "user" });
//
// What it does for the application:
// - authenticates with a first `auth` message (the token never goes into the URL);
// - keeps the wanted subscriptions and sends them again after every reconnect with the last
//   eventId it saw, so the server either replays what was missed (`ack.resumed: true`) or sends
//   fresh snapshots: no job state is lost while the link was down;
// - keeps a per-job state table (`jobs`) built from snapshots and events, drops duplicate and
//   older events by eventId, marks every job stale while updates are interrupted and fresh
//   again once the resync is complete;
// - reconnects with exponential backoff and full jitter, resets the backoff after a stable
//   period, honours the server's goaway delay, backs off longer when throttled, and waits for
//   the network to come back instead of spinning while offline;
// - calls getToken() on every connect and again before the token expires (the server says
//   when: `expiresAt`); getToken() resolving to null means "logged out" and stops the client.
// API reference: docs/WEB.md; types: jobwire.d.ts. jobwire.cjs is generated from this file
// (tools/build-cjs.mjs): edit this one.

/** Close codes the server uses (docs/PROTOCOL.md, "Closing"). */
export const CloseCodes = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  ABNORMAL: 1006,
  TOO_BIG: 1009,
  TRY_AGAIN_LATER: 1013,
  SLOW_CONSUMER: 4008,
  UNAUTHENTICATED: 4401,
  FORBIDDEN: 4403,
  TOO_MANY: 4429,
});

/** The event kinds a `kinds` filter may name. */
export const KINDS = Object.freeze(["status", "progress", "complete", "error", "other"]);

/** Connection states, in the order a healthy connection goes through them. */
export const STATES = Object.freeze(
  ["idle", "connecting", "live", "paused", "reconnecting", "offline", "stopped"]);

export const DEFAULT_RECONNECT = Object.freeze({
  initialMs: 500, // ceiling of the first retry delay
  maxMs: 30000, // the ceiling never grows past this
  multiplier: 2, // ceiling growth per failed attempt
  resetAfterMs: 10000, // a connection that stayed up this long resets the backoff
  throttleMs: 5000, // extra wait added after 4429 / 1013 (the server asked us to slow down)
});

/** Job statuses after which a job's state no longer changes. */
export const TERMINAL_STATUSES = Object.freeze(
  ["completed", "complete", "failed", "error", "cancelled", "canceled"]);

const MAX_TIMER_MS = 0x7fffffff; // setTimeout's largest delay (about 24.8 days)
const RESTORE_BATCH = 100; // job ids per subscribe request when resubscribing

// ---- small helpers -------------------------------------------------------------------------

/** Minimal EventTarget for runtimes that lack one (older React Native). */
class MiniEventTarget {
  constructor() {
    this._listeners = new Map();
  }
  addEventListener(type, fn) {
    if (typeof fn !== "function" && !(fn && typeof fn.handleEvent === "function")) return;
    if (!this._listeners.has(type)) this._listeners.set(type, []);
    const list = this._listeners.get(type);
    if (!list.includes(fn)) list.push(fn);
  }
  removeEventListener(type, fn) {
    const list = this._listeners.get(type);
    if (list) this._listeners.set(type, list.filter((f) => f !== fn));
  }
  dispatchEvent(event) {
    for (const fn of (this._listeners.get(event.type) || []).slice()) {
      try {
        if (typeof fn === "function") fn.call(this, event);
        else fn.handleEvent(event);
      } catch (err) {
        reportListenerError(err);
      }
    }
    return true;
  }
}

// The runtime's EventTarget when it has one together with Event (browsers, node, Deno); else
// the small one above, dispatching plain { type, detail } objects.
const EventBase = typeof globalThis.EventTarget === "function" && typeof globalThis.Event === "function"
  ? globalThis.EventTarget : MiniEventTarget;

/** An event object carrying `detail`: CustomEvent where it exists, else the best fallback. */
function makeEvent(type, detail) {
  if (typeof globalThis.CustomEvent === "function") {
    return new globalThis.CustomEvent(type, { detail });
  }
  if (EventBase !== MiniEventTarget) {
    const ev = new globalThis.Event(type);
    Object.defineProperty(ev, "detail", { value: detail });
    return ev;
  }
  return { type, detail };
}

function reportListenerError(err) {
  // A throwing application callback must not break the client's own state machine.
  if (globalThis.console && typeof globalThis.console.error === "function") {
    globalThis.console.error("jobwire: listener failed:", err);
  }
}

/** Decodes base64url without atob (not every runtime has it). Returns a binary string. */
function base64UrlDecode(s) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const ch of s.replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_")) {
    const v = alphabet.indexOf(ch);
    if (v < 0) throw new Error("bad base64url");
    value = (value << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode((value >> bits) & 0xff);
    }
  }
  return out;
}

/**
 * The `exp` claim of a JWT in seconds, or null when the token is not a readable JWT.
 * Only reads the payload: the server verifies the token, the client just plans its refresh
 * (and only when the server did not say `expiresAt`).
 */
export function tokenExpiry(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const bin = base64UrlDecode(parts[1]);
    // UTF-8 bytes → string, so that non-ASCII claims do not break JSON.parse.
    const json = decodeURIComponent(
      Array.from(bin, (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""));
    const claims = JSON.parse(json);
    return typeof claims.exp === "number" && Number.isFinite(claims.exp) ? claims.exp : null;
  } catch {
    return null;
  }
}

/**
 * The retry delay for one attempt: full jitter over an exponential ceiling,
 * `random() * min(maxMs, initialMs * multiplier ** attempt)`.
 */
export function backoffDelay(attempt, cfg, random = Math.random) {
  const ceiling = Math.min(cfg.maxMs, cfg.initialMs * Math.pow(cfg.multiplier, attempt));
  return Math.floor(random() * ceiling);
}

function normaliseKinds(kinds) {
  if (kinds == null) return null;
  if (!Array.isArray(kinds)) throw new TypeError("kinds must be an array");
  for (const k of kinds) {
    if (!KINDS.includes(k)) throw new TypeError(`unknown kind ${JSON.stringify(k)}`);
  }
  return [...new Set(kinds)].sort();
}

/** The network watcher from browser globals: navigator.onLine and window online/offline. */
function browserNetwork() {
  const nav = globalThis.navigator;
  const target = globalThis;
  return {
    online: () => !(nav && nav.onLine === false),
    watch(callback) {
      if (typeof target.addEventListener !== "function") return () => {};
      const on = () => callback(true);
      const off = () => callback(false);
      target.addEventListener("online", on);
      target.addEventListener("offline", off);
      return () => {
        target.removeEventListener("online", on);
        target.removeEventListener("offline", off);
      };
    },
  };
}

/** ws(s)://host/ws of the page that loaded this module, when there is a page. */
function defaultUrl() {
  const loc = globalThis.location;
  if (!loc || !loc.host) throw new TypeError("JobwireClient needs a url outside a browser page");
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws`;
}

/** An Error with a protocol `code` (and the server message that caused it, if any). */
export class JobwireError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = "JobwireError";
    this.code = code;
    Object.assign(this, extra);
  }
}

/**
 * Thrown by getToken() (or resolved as null) to say "the user is logged out": the client stops
 * for good, emits `loggedout`, and never asks for a token again until connect() is called.
 */
export class LoggedOut extends Error {
  constructor(message = "logged out") {
    super(message);
    this.name = "LoggedOut";
    this.code = "logged_out";
  }
}

function isLoggedOut(err) {
  return err instanceof LoggedOut || (!!err && (err.name === "LoggedOut" || err.code === "logged_out"));
}

// ---- event ids ------------------------------------------------------------------------------
// An eventId is "<epoch>-<n>": epoch = 8 hex digits per server process, n = a decimal counter.
// Only ids of one epoch can be ordered. n is kept as a string and compared by length, then
// lexically, so it stays exact past 2^53.

/** "<epoch>-<n>" → { epoch, n } (n without leading zeros), or null when not an eventId. */
function parseEventId(id) {
  if (typeof id !== "string") return null;
  const m = /^([0-9a-f]{8})-([0-9]{1,30})$/.exec(id);
  return m ? { epoch: m[1], n: m[2].replace(/^0+(?=\d)/, "") } : null;
}

/** 1 when a is later than b, -1 when earlier, 0 when equal; null when not comparable. */
export function compareEventIds(a, b) {
  const x = typeof a === "string" ? parseEventId(a) : a;
  const y = typeof b === "string" ? parseEventId(b) : b;
  if (!x || !y || x.epoch !== y.epoch) return null;
  if (x.n.length !== y.n.length) return x.n.length > y.n.length ? 1 : -1;
  return x.n === y.n ? 0 : x.n > y.n ? 1 : -1;
}

/** True when a is at or before b (same epoch); false when later or not comparable. */
function notAfter(a, b) {
  const c = compareEventIds(a, b);
  return c === 0 || c === -1;
}

// ---- per-job state --------------------------------------------------------------------------

const TERMINAL = new Set(TERMINAL_STATUSES);

/** Milliseconds since the epoch from an ISO date, seconds or milliseconds; null if unreadable. */
function parseTime(v) {
  if (typeof v === "string" && /^\d+(\.\d+)?$/.test(v)) v = Number(v);
  if (typeof v === "number") return Number.isFinite(v) && v > 0 ? (v < 1e11 ? v * 1000 : v) : null;
  if (typeof v !== "string") return null;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

function firstTime(obj, names) {
  for (const name of names) {
    const t = parseTime(obj[name]);
    if (t != null) return t;
  }
  return null;
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const text = (v) => (v == null || v === "" || typeof v === "object" ? null : String(v));
function number(v) {
  if (v == null || v === "" || typeof v === "object") return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

const START_FIELDS = ["startTime", "startedAt", "createdAt", "created_at"];
const UPDATE_FIELDS = ["updateTime", "updatedAt", "timestamp", "updated_at"];
const END_FIELDS = ["endTime", "finishedAt", "completedAt", "finished_at"];

/**
 * The jobs the client knows: jobId → a frozen JobState, replaced (never mutated) on every
 * change so that a UI can compare states by reference. Bounded by maxJobs: the job updated
 * longest ago goes first, finished ones before running ones.
 */
class JobTable {
  constructor(maxJobs) {
    this.maxJobs = maxJobs;
    this._jobs = new Map();
    this._view = null; // the Map handed out by `jobs`; rebuilt on the first read after a change
    this._changed = new Map(); // jobId → JobState | null (removed) since the last take()
  }

  get(jobId) {
    return this._jobs.get(jobId);
  }

  view() {
    if (!this._view) this._view = new Map(this._jobs);
    return this._view;
  }

  values() {
    return this._jobs.values();
  }

  take() {
    const changes = this._changed;
    this._changed = new Map();
    return changes;
  }

  put(job) {
    const isNew = !this._jobs.has(job.jobId);
    this._jobs.set(job.jobId, Object.freeze(job));
    this._changed.set(job.jobId, job);
    this._view = null;
    if (isNew && this._jobs.size > this.maxJobs) this._evict();
    return job;
  }

  remove(jobId) {
    if (!this._jobs.delete(jobId)) return false;
    this._changed.set(jobId, null);
    this._view = null;
    return true;
  }

  clear() {
    for (const id of [...this._jobs.keys()]) this.remove(id);
  }

  setStale(job, stale) {
    if (job.stale !== stale) this.put({ ...job, stale });
  }

  _evict() {
    let victim = null;
    for (const j of this._jobs.values()) {
      if (!victim || (j.terminal && !victim.terminal) ||
          (j.terminal === victim.terminal && j.updatedAt < victim.updatedAt)) victim = j;
    }
    if (victim) this.remove(victim.jobId);
  }

  /** A job as it starts: nothing known yet. */
  static blank(jobId, at) {
    return {
      jobId, userId: null, status: null, progress: null, message: null, error: null,
      terminal: false, data: Object.freeze({}), kind: null, eventId: null,
      startedAt: at, updatedAt: at, finishedAt: null,
      stale: false, unavailable: false, tooLarge: false,
    };
  }

  /** Applies a live event's payload on top of what is known. */
  event(msg, at, stale) {
    const prev = this._jobs.get(msg.jobId) || JobTable.blank(msg.jobId, at);
    const p = isObject(msg.payload) ? msg.payload : {};
    const job = { ...prev, data: Object.freeze({ ...prev.data, ...p }), kind: msg.kind ?? null,
                  stale, unavailable: false };
    job.userId = text(msg.userId) ?? text(p.userId) ?? prev.userId;
    job.status = text(p.status) ?? prev.status;
    job.progress = number(p.progress) ?? prev.progress;
    job.message = text(p.message) ?? prev.message;
    if (msg.kind === "complete") {
      job.status = text(p.status) ?? "completed";
      job.progress = number(p.progress) ?? 100;
      job.message = text(p.message); // the last step's text no longer applies
    } else if (msg.kind === "error") {
      job.status = text(p.status) ?? "failed";
      job.error = text(p.error) ?? text(p.errorMessage) ?? text(p.message) ?? "failed";
    }
    if (typeof msg.eventId === "string") job.eventId = msg.eventId;
    job.updatedAt = firstTime(p, UPDATE_FIELDS) ?? at;
    return this.put(finish(job, prev, p));
  }

  /**
   * Applies a snapshot. Its state replaces what is known, unless the job already holds a later
   * eventId (then only its staleness changes). Snapshots without state keep the known fields.
   */
  snapshot(msg, at, stale) {
    const prev = this._jobs.get(msg.jobId) || JobTable.blank(msg.jobId, at);
    if (compareEventIds(prev.eventId, msg.eventId) === 1) { // we know a later state
      return this.put({ ...prev, stale });
    }
    const job = { ...prev, stale, unavailable: !!msg.unavailable, tooLarge: !!msg.tooLarge, kind: null };
    if (typeof msg.eventId === "string") job.eventId = msg.eventId;
    job.userId = text(msg.userId) ?? prev.userId;
    const s = msg.state;
    if (isObject(s)) {
      job.data = Object.freeze({ ...s });
      job.userId = job.userId ?? text(s.userId);
      job.status = text(s.status);
      job.progress = number(s.progress);
      job.message = text(s.message);
      job.error = text(s.error) ?? text(s.errorMessage) ??
        (job.status === "failed" || job.status === "error" ? job.message : null);
      job.startedAt = firstTime(s, START_FIELDS) ?? prev.startedAt;
      job.updatedAt = firstTime(s, UPDATE_FIELDS) ?? at;
    } else if (s != null) {
      job.data = Object.freeze({ value: s }); // a JSON string state that is not an object
    }
    return this.put(finish(job, prev, isObject(s) ? s : {}));
  }
}

/** Derives terminal/finishedAt and keeps the times consistent. */
function finish(job, prev, fields) {
  job.terminal = TERMINAL.has(String(job.status).toLowerCase()) ||
    job.kind === "complete" || job.kind === "error";
  if (job.terminal) job.finishedAt = firstTime(fields, END_FIELDS) ?? prev.finishedAt ?? job.updatedAt;
  else job.finishedAt = null;
  job.startedAt = firstTime(fields, START_FIELDS) ?? Math.min(prev.startedAt, job.updatedAt);
  return job;
}

// ---- the client ----------------------------------------------------------------------------

export class JobwireClient extends EventBase {
  /** Options: JobwireOptions in jobwire.d.ts, and docs/WEB.md. */
  constructor(options = {}) {
    super();
    const o = options;
    this.url = o.url || defaultUrl();
    this._staticToken = o.token == null ? null : String(o.token);
    this._getToken = typeof o.getToken === "function" ? o.getToken : null;
    this._devUser = o.devUser == null ? null : String(o.devUser);
    this._devAdmin = !!o.devAdmin;
    this._WS = o.WebSocket || globalThis.WebSocket;
    if (typeof this._WS !== "function") throw new TypeError("no WebSocket class available");
    this._protocols = o.protocols;
    this.reconnect = { ...DEFAULT_RECONNECT, ...(o.reconnect || {}) };
    this._refreshRatio = o.refreshRatio ?? 0.8;
    this._minRefreshMs = o.minRefreshMs ?? 10000;
    this._pingIntervalMs = o.pingIntervalMs ?? 25000;
    this._pongTimeoutMs = o.pongTimeoutMs ?? 10000;
    this._welcomeTimeoutMs = o.welcomeTimeoutMs ?? 15000;
    this._network = o.network || browserNetwork();
    this._callbacks = {
      event: o.onEvent, snapshot: o.onSnapshot, state: o.onState, error: o.onError,
      welcome: o.onWelcome, live: o.onLive, jobs: o.onJobs, loggedout: o.onLoggedOut, gap: o.onGap,
    };
    // Clock and randomness, replaceable for tests.
    this._setTimeout = o.setTimeout || ((fn, ms) => globalThis.setTimeout(fn, ms));
    this._clearTimeout = o.clearTimeout || ((t) => globalThis.clearTimeout(t));
    this._now = o.now || (() => Date.now());
    this._random = o.random || Math.random;

    this._state = "idle";
    this._ws = null;
    this._gen = 0; // connection generation: callbacks of an older socket are ignored
    this._attempt = 0; // failed attempts since the last stable connection
    this._welcomedAt = 0; // when the current connection was welcomed (0: not yet)
    this._paused = false; // the server said live:false (its Redis is away) on this connection
    this._goawayMs = null; // reconnectAfterMs of a goaway received on this connection
    this._retryAt = 0;
    this._currentToken = null; // the token the live connection authenticated with
    this._expiresAt = null; // when it expires (seconds), as the server (or the token) says
    this._timers = { retry: null, refresh: null, ping: null, pong: null, welcome: null };
    this._nextId = 1;
    this._requests = new Map(); // id → in-flight request on the current connection
    this._waiters = new Set(); // subscribe() promises, kept across reconnects until settled
    this._jobs = new Map(); // jobId → { kinds, confirmed }: the subscriptions we want
    this._scopes = new Map(); // "user" | "all" → { kinds, confirmed }
    this._table = new JobTable(o.maxJobs ?? 1000);
    // Resume point: the latest eventId seen (events and snapshots) — sent as lastEventId.
    this._resume = null;
    // The latest eventId of an *event*: on one connection they strictly increase, so an event
    // at or before it (same epoch) is a duplicate (e.g. replayed by a resume).
    this._lastEvent = null;
    // The resync under way (null: none). It ends when every re-sent subscribe is acked and
    // every announced snapshot has arrived; until then jobs without fresh data stay stale.
    this._sync = null;
    this._synced = false;
    this._stats = { gaps: 0, missed: 0, duplicates: 0, resumed: 0, resyncs: 0 };
    this.userId = null;
    this.admin = false;
    this.connectionId = null;
    this.epoch = null;
    this.lastSeq = 0;
    this._unwatchNetwork = null;
  }

  // ---- public API ---------------------------------------------------------------------------

  /** The connection state: idle, connecting, live, paused, reconnecting, offline, stopped. */
  get state() {
    return this._state;
  }

  /** True while the connection is welcomed and the server's Redis link is live. */
  get live() {
    return this._state === "live";
  }

  /** True while live and every job is up to date (no resync under way). */
  get synced() {
    return this._synced;
  }

  /** Milliseconds until the next reconnect attempt (0 when none is scheduled). */
  get retryInMs() {
    return this._state === "reconnecting" ? Math.max(0, this._retryAt - this._now()) : 0;
  }

  /** The subscriptions the client holds (and restores after every reconnect). */
  get subscriptions() {
    const jobs = {};
    for (const [id, s] of this._jobs) jobs[id] = s.kinds;
    const scopes = {};
    for (const [sc, s] of this._scopes) scopes[sc] = s.kinds;
    return { jobs, scopes };
  }

  /** jobId → JobState. The same Map until something changes, then a new one. */
  get jobs() {
    return this._table.view();
  }

  /** The latest eventId seen (sent as lastEventId when resubscribing), or null. */
  get lastEventId() {
    return this._resume ? `${this._resume.epoch}-${this._resume.n}` : null;
  }

  /** Counters: seq gaps and the frames they skipped, duplicates dropped, resumes, resyncs. */
  get stats() {
    return { ...this._stats };
  }

  /** When the current token expires (seconds since the epoch), or null when unknown. */
  get expiresAt() {
    return this._expiresAt;
  }

  /** Starts connecting (again, after close()). Returns the client. */
  connect() {
    if (this._state !== "idle" && this._state !== "stopped") return this;
    this._attempt = 0;
    if (!this._unwatchNetwork) {
      this._unwatchNetwork = this._network.watch((online) => this._onNetwork(online));
    }
    this._open();
    return this;
  }

  /**
   * Closes the connection for good (no reconnect). Pending promises are rejected; the wanted
   * subscriptions, the jobs and the resume point are kept, so connect() later resumes.
   */
  close(code = 1000, reason = "client closed") {
    this._detachSocket(code, reason);
    this._stop({ reason }, "closed", "the client was closed");
  }

  /**
   * The application is in the foreground again (visibilitychange, AppState "active"): a
   * scheduled reconnect happens now, and a connection that looks alive is checked with a ping
   * (a socket that died in the background is only found this way or by the next heartbeat).
   */
  wake() {
    if (this._state === "reconnecting" || this._state === "offline") {
      this._attempt = 0;
      this._open();
    } else if (this._welcomedAt && this._timers.pong == null) {
      this._sendRaw({ type: "ping" });
      this._startTimer("pong", this._pongTimeoutMs || 10000, () => this._dropSocket(4000, "ping timeout"));
    }
    return this;
  }

  /**
   * Subscribes to job ids (`{jobs, kinds}`) or a scope (`{scope: "user" | "all", kinds}`).
   * The subscription is remembered and sent again after every reconnect. Resolves with the
   * server's ack once it is in force (after a reconnect if the link is down now); rejects with
   * a JobwireError carrying the server's error code when refused, and the refused
   * subscription is then forgotten.
   */
  subscribe(spec) {
    const { jobs, scope, kinds } = this._parseSpec(spec);
    const keys = [];
    if (scope) {
      const prev = this._scopes.get(scope);
      this._scopes.set(scope, { kinds, confirmed: false, prev: prev || null });
      keys.push("scope:" + scope);
    } else {
      for (const id of jobs) {
        const prev = this._jobs.get(id);
        this._jobs.set(id, { kinds, confirmed: false, prev: prev || null });
        keys.push("job:" + id);
      }
    }
    const promise = new Promise((resolve, reject) => {
      this._waiters.add({ keys: new Set(keys), resolve, reject });
    });
    if (this._welcomedAt) {
      // A new subscription wants the job's state, not a replay: no lastEventId here.
      this._send(scope ? { type: "subscribe", scope, kinds } : { type: "subscribe", jobs, kinds },
        { op: "subscribe", keys });
    }
    return promise;
  }

  /**
   * Unsubscribes from job ids or a scope. Forgotten at once (not restored after a reconnect);
   * resolves with the ack, or at once when not connected. The jobs stay in `jobs`.
   */
  unsubscribe(spec) {
    const { jobs, scope } = this._parseSpec(spec);
    const keys = scope ? ["scope:" + scope] : jobs.map((id) => "job:" + id);
    if (scope) this._scopes.delete(scope);
    else for (const id of jobs) this._jobs.delete(id);
    // A subscribe still waiting for these keys is answered: the caller changed its mind.
    this._settleWaiters(keys, null, new JobwireError("unsubscribed", "unsubscribed before the ack"));
    if (!this._welcomedAt) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const msg = scope ? { type: "unsubscribe", scope } : { type: "unsubscribe", jobs };
      this._send(msg, { op: "unsubscribe", keys, resolve, reject, resolveOnDrop: true });
    });
  }

  /** Removes a job from `jobs` (it comes back with its next event or snapshot). */
  forgetJob(jobId) {
    const removed = this._table.remove(jobId);
    this._flushJobs();
    return removed;
  }

  /**
   * Sends a newer token (`refresh` message) so the server does not close the connection when
   * the current one expires. Without an argument the token comes from getToken(); null from
   * it (or a LoggedOut error) stops the client (`loggedout`). Called by the client itself
   * before `expiresAt` when getToken is set.
   */
  async refresh(token) {
    if (!this._welcomedAt) throw new JobwireError("not_connected", "not connected");
    const gen = this._gen;
    const fresh = token != null ? String(token) : await this._fetchToken();
    if (gen !== this._gen || !this._welcomedAt) {
      throw new JobwireError("disconnected", "the connection closed during the refresh");
    }
    if (fresh == null) {
      if (this._getToken) {
        this._logout("getToken returned no token");
        throw new JobwireError("logged_out", "logged out");
      }
      throw new JobwireError("no_token", "no token to refresh with");
    }
    return new Promise((resolve, reject) => {
      this._send({ type: "refresh", token: fresh },
        { op: "auth", token: fresh, resolve, reject });
    });
  }

  /** Sends a ping; resolves with the pong. */
  ping() {
    if (!this._welcomedAt) return Promise.reject(new JobwireError("not_connected", "not connected"));
    return new Promise((resolve, reject) => {
      this._send({ type: "ping" }, { op: "ping", resolve, reject });
    });
  }

  /** addEventListener that returns a function removing the listener again. */
  on(type, fn) {
    const listener = (ev) => fn(ev.detail, ev);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  // ---- connecting -------------------------------------------------------------------------

  /** Opens one connection attempt (after the token is at hand). */
  async _open() {
    this._clearTimer("retry");
    const gen = ++this._gen;
    if (!this._network.online()) {
      this._setState("offline", { reason: "the network is offline" });
      return;
    }
    this._setState("connecting", { attempt: this._attempt });
    let token = null;
    try {
      // Dev mode names the user in the URL and sends no token.
      if (this._devUser == null) token = await this._fetchToken();
    } catch (err) {
      if (gen !== this._gen) return;
      this._emit("error", { code: "token_failed", message: String(err && err.message || err), error: err });
      this._scheduleReconnect(backoffDelay(this._attempt++, this.reconnect, this._random),
        { reason: "getToken failed" });
      return;
    }
    if (gen !== this._gen || this._state !== "connecting") return; // closed meanwhile
    if (token == null && this._getToken && this._devUser == null) {
      this._logout("getToken returned no token");
      return;
    }
    let ws;
    try {
      ws = this._protocols ? new this._WS(this._socketUrl(), this._protocols)
                           : new this._WS(this._socketUrl());
    } catch (err) {
      this._emit("error", { code: "socket_failed", message: String(err && err.message || err), error: err });
      this._scheduleReconnect(backoffDelay(this._attempt++, this.reconnect, this._random),
        { reason: "cannot create the WebSocket" });
      return;
    }
    this._ws = ws;
    this._welcomedAt = 0;
    this._paused = false;
    this._goawayMs = null;
    this._currentToken = token;
    this.lastSeq = 0;
    ws.onopen = () => {
      if (gen !== this._gen) return;
      // The token travels in the first message, never in the URL (proxies log URLs).
      if (token != null) this._sendRaw({ type: "auth", id: "auth", token });
    };
    ws.onmessage = (m) => {
      if (gen === this._gen) this._onMessage(m.data);
    };
    ws.onerror = () => {}; // a close event always follows; it carries what we need
    ws.onclose = (ev) => {
      if (gen === this._gen) this._onClose(ev && ev.code, ev && ev.reason);
    };
    // A server that accepts the socket but never welcomes us counts as a failed attempt.
    this._startTimer("welcome", this._welcomeTimeoutMs, () => {
      this._dropSocket(4000, "no welcome from the server");
    });
  }

  /** The WebSocket URL: the configured one, plus ?user=&admin= in dev mode only. */
  _socketUrl() {
    if (this._devUser == null) return this.url;
    const params = "user=" + encodeURIComponent(this._devUser) + (this._devAdmin ? "&admin=1" : "");
    return this.url + (this.url.includes("?") ? "&" : "?") + params;
  }

  /**
   * getToken() on every connect (a fresh token each time), else the static token. null means
   * logged out (getToken resolved to null or undefined, or threw LoggedOut).
   */
  async _fetchToken() {
    if (!this._getToken) return this._staticToken;
    let t;
    try {
      t = await this._getToken();
    } catch (err) {
      if (isLoggedOut(err)) return null;
      throw err;
    }
    return t == null ? null : String(t);
  }

  // ---- receiving ----------------------------------------------------------------------------

  _onMessage(data) {
    let msg;
    try {
      msg = JSON.parse(typeof data === "string" ? data : String(data));
    } catch {
      this._emit("error", { code: "bad_server_message", message: "the server sent invalid JSON" });
      return;
    }
    if (!msg || typeof msg !== "object") return;
    this._clearTimer("pong"); // any message shows the link is alive
    this._emit("message", msg);
    switch (msg.type) {
      case "welcome": this._onWelcome(msg); break;
      case "ack": this._onAck(msg); break;
      case "error": this._onError(msg); break;
      case "event": this._onEvent(msg); break;
      case "snapshot": this._onSnapshot(msg); break;
      case "status": this._onStatus(msg); break;
      case "goaway":
        if (typeof msg.reconnectAfterMs === "number" && msg.reconnectAfterMs >= 0) {
          this._goawayMs = msg.reconnectAfterMs;
        }
        break;
      case "pong": {
        const req = this._takeRequest(msg.id);
        if (req && req.resolve) req.resolve(msg);
        break;
      }
      default: break; // unknown types are ignored (the protocol may grow)
    }
    this._flushJobs();
  }

  _onWelcome(msg) {
    this._clearTimer("welcome");
    this._welcomedAt = this._now();
    this.userId = msg.userId ?? null;
    this.admin = !!msg.admin;
    this.connectionId = msg.connectionId ?? null;
    this.epoch = typeof msg.epoch === "string" ? msg.epoch : null;
    // live:false: the server's Redis is away right now; a status live:true follows later.
    this._paused = msg.live === false;
    this._setState(this._paused ? "paused" : "live", {
      userId: this.userId, admin: this.admin, reason: this._paused ? "redis unavailable" : null,
    });
    this._emit("welcome", msg);
    if (this._paused) this._emit("live", { live: false, reason: "redis unavailable" });
    this._sync = { acks: new Set(), jobs: new Set(), count: 0 };
    this._restore();
    this._planRefresh(typeof msg.expiresAt === "number" ? msg.expiresAt : tokenExpiry(this._currentToken));
    this._schedulePing();
    this._checkSync();
  }

  /**
   * Sends every wanted subscription again: scopes first, then jobs grouped by kinds filter.
   * Those that were in force on an earlier connection carry lastEventId (resume); those never
   * acked yet do not, since they want a snapshot, not a replay.
   */
  _restore() {
    const resume = this.lastEventId;
    const send = (msg, keys, confirmed) => {
      if (confirmed && resume) msg.lastEventId = resume;
      this._sync.acks.add(this._send(msg, { op: "subscribe", keys, restore: true }));
    };
    for (const [scope, s] of this._scopes) {
      send({ type: "subscribe", scope, kinds: s.kinds }, ["scope:" + scope], s.confirmed);
    }
    const groups = new Map();
    for (const [id, s] of this._jobs) {
      const key = (s.confirmed ? "+" : "-") + (s.kinds ? s.kinds.join() : "*");
      if (!groups.has(key)) groups.set(key, { kinds: s.kinds, confirmed: s.confirmed, ids: [] });
      groups.get(key).ids.push(id);
    }
    for (const { kinds, confirmed, ids } of groups.values()) {
      for (let i = 0; i < ids.length; i += RESTORE_BATCH) {
        const jobs = ids.slice(i, i + RESTORE_BATCH);
        send({ type: "subscribe", jobs, kinds }, jobs.map((j) => "job:" + j), confirmed);
      }
    }
  }

  _onAck(msg) {
    const req = this._takeRequest(msg.id);
    if (!req) return;
    if (req.op === "subscribe") {
      for (const key of req.keys) {
        const entry = this._entry(key);
        if (entry) {
          entry.confirmed = true;
          entry.prev = null;
        }
      }
      if (this._sync && this._sync.acks.delete(String(msg.id))) this._syncAck(req, msg);
      this._settleWaiters(req.keys, msg, null);
    } else if (req.op === "auth") {
      this._currentToken = req.token;
      this._planRefresh(typeof msg.expiresAt === "number" ? msg.expiresAt : tokenExpiry(req.token));
    }
    if (req.resolve) req.resolve(msg);
  }

  _onError(msg) {
    const req = this._takeRequest(msg.id);
    const err = new JobwireError(msg.code || "error", msg.message, { reply: msg });
    if (req && req.op === "subscribe") {
      // The request had no effect on the server: forget what it added, restore what it replaced.
      for (const key of req.keys) {
        const entry = this._entry(key);
        if (entry && !entry.confirmed) {
          if (entry.prev) Object.assign(entry, entry.prev);
          else this._deleteEntry(key);
        }
      }
      if (this._sync) this._sync.acks.delete(String(msg.id));
      this._settleWaiters(req.keys, null, err);
      this._checkSync();
    } else if (req && req.op === "auth") {
      // A refused refresh keeps the current token in force; try once more a bit later.
      this._planRefresh(this._expiresAt, true);
    }
    if (req && req.reject) req.reject(err);
    this._emit("error", { code: err.code, message: err.message, reply: msg, request: req ? req.op : null });
  }

  /** Notes `seq` per connection; a jump means the server dropped frames for us (conflation). */
  _noteSeq(msg) {
    if (typeof msg.seq !== "number") return;
    if (msg.seq > this.lastSeq + 1) {
      const missed = msg.seq - this.lastSeq - 1;
      this._stats.gaps++;
      this._stats.missed += missed;
      this._emit("gap", { after: this.lastSeq, seq: msg.seq, missed, jobId: msg.jobId ?? null });
    }
    if (msg.seq > this.lastSeq) this.lastSeq = msg.seq;
  }

  /** Moves the resume point forward (or to a new epoch: a new server process). */
  _noteResume(pos) {
    if (!notAfter(pos, this._resume)) this._resume = pos;
  }

  _onEvent(msg) {
    this._noteSeq(msg); // a dropped duplicate still took its place in seq
    const pos = parseEventId(msg.eventId);
    const hasJob = typeof msg.jobId === "string" && msg.jobId !== "";
    const known = hasJob ? this._table.get(msg.jobId) : undefined;
    if (pos) {
      if (notAfter(pos, this._lastEvent) || (known && notAfter(pos, known.eventId))) {
        this._stats.duplicates++; // already seen, or contained in a newer snapshot
        return;
      }
      this._lastEvent = pos;
      this._noteResume(pos);
    }
    // Events without a jobId (user channels) are passed on; they have no job state. A known
    // job keeps its staleness (the resync decides it); a new one is stale until the resync ends.
    if (hasJob) this._table.event(msg, this._now(), known ? known.stale : !this._synced || this._paused);
    this._emit("event", msg);
  }

  _onSnapshot(msg) {
    const pos = parseEventId(msg.eventId);
    if (pos) this._noteResume(pos);
    this._noteSeq(msg);
    if (typeof msg.jobId === "string" && msg.jobId !== "") {
      // Fresh unless Redis could not be asked (a fresh snapshot follows when it is back).
      this._table.snapshot(msg, this._now(), this._paused || !!msg.unavailable);
      const sync = this._sync;
      if (sync && !sync.jobs.delete(msg.jobId) && sync.count > 0) sync.count--;
    }
    this._emit("snapshot", msg);
    this._checkSync();
  }

  _onStatus(msg) {
    const live = msg.live !== false;
    if (this._welcomedAt) {
      const wasPaused = this._paused;
      this._paused = !live;
      this._setState(live ? "live" : "paused", { reason: msg.reason || null });
      if (!live) {
        this._markAllStale();
      } else if (wasPaused) {
        // The server resyncs by itself after live:true: one snapshot per job subscription (and,
        // from servers that count them, `snapshots` in all). Requests still unanswered from the
        // reconnect stay part of this round.
        const acks = this._sync ? this._sync.acks : new Set();
        if (typeof msg.snapshots === "number") {
          this._sync = { acks, jobs: new Set(), count: msg.snapshots };
        } else {
          const jobs = new Set([...this._jobs].filter(([, s]) => s.confirmed).map(([id]) => id));
          this._sync = { acks, jobs, count: 0 };
        }
        this._checkSync();
      }
    }
    this._emit("live", { live, reason: msg.reason || null });
  }

  /** What a reconnect's ack says: resumed (the missed events follow) or snapshots follow. */
  _syncAck(req, msg) {
    if (msg.resumed === true) {
      this._stats.resumed++;
      // Nothing was missed that is not on its way now: the covered jobs are current.
      if (!this._paused) {
        for (const key of req.keys) {
          if (key.startsWith("job:")) {
            const job = this._table.get(key.slice(4));
            if (job) this._table.setStale(job, false);
          } else {
            for (const job of [...this._table.values()]) {
              if (key === "scope:all" || job.userId == null || job.userId === this.userId) {
                this._table.setStale(job, false);
              }
            }
          }
        }
      }
    } else {
      for (const key of req.keys) {
        if (key.startsWith("job:")) this._sync.jobs.add(key.slice(4));
        else this._sync.count += Math.max(0, number(msg.snapshots) ?? 0);
      }
    }
    this._checkSync();
  }

  /** Ends the resync round once nothing announced is outstanding (never while paused). */
  _checkSync() {
    const sync = this._sync;
    if (!sync || this._paused || !this._welcomedAt) return;
    if (sync.acks.size || sync.jobs.size || sync.count > 0) return;
    this._sync = null;
    this._stats.resyncs++;
    // Jobs the server sent nothing for: it holds no newer state for them than we do.
    for (const job of [...this._table.values()]) {
      if (job.stale && !job.unavailable) this._table.setStale(job, false);
    }
    this._setSynced(true);
  }

  _markAllStale() {
    for (const job of [...this._table.values()]) this._table.setStale(job, true);
    this._setSynced(false);
  }

  _setSynced(synced) {
    if (this._synced === synced) return;
    this._synced = synced;
    this._emit("sync", { synced });
  }

  /** Emits `job` for each job changed since the last call, then one `jobs`. */
  _flushJobs() {
    const changes = this._table.take();
    if (!changes.size) return;
    const changed = [];
    const removed = [];
    for (const [id, job] of changes) {
      if (job) {
        changed.push(id);
        this._emit("job", job);
      } else {
        removed.push(id);
      }
    }
    this._emit("jobs", { jobs: this._table.view(), changed, removed });
  }

  // ---- closing and reconnecting ------------------------------------------------------------

  _onClose(code, reason) {
    const welcomedAt = this._welcomedAt;
    this._ws = null;
    this._welcomedAt = 0;
    this._paused = false;
    this._sync = null;
    this._clearTimer("ping");
    this._clearTimer("pong");
    this._clearTimer("welcome");
    this._clearTimer("refresh");
    this._failRequests(new JobwireError("disconnected", "the connection closed"));
    this._markAllStale();
    this._flushJobs();
    if (this._state === "stopped") return;

    // A connection that stayed up long enough proves the server is fine: start over.
    if (welcomedAt && this._now() - welcomedAt >= this.reconnect.resetAfterMs) this._attempt = 0;
    const info = { code: code ?? null, reason: reason || null };
    const cfg = this.reconnect;

    if (code === CloseCodes.FORBIDDEN) {
      // The token is revoked: retrying cannot help. The application must sign in again.
      this._emit("error", { code: "forbidden", message: "the server refused the token (revoked)", closeCode: code });
      this._stop({ ...info, reason: reason || "forbidden" });
      return;
    }
    if (code === CloseCodes.UNAUTHENTICATED) {
      this._emit("error", { code: "unauthenticated", message: reason || "not authenticated", closeCode: code });
      if (!this._getToken) {
        // A fixed token that the server refused will be refused again.
        this._stop({ ...info, reason: reason || "unauthenticated" });
        return;
      }
      // The token expired on a working connection: get a new one and come back at once.
      // A token refused straight away (or right after the welcome) backs off like any failed
      // attempt, so a source of bad tokens cannot make us spin.
      const expired = welcomedAt && this._now() - welcomedAt >= 1000;
      const delay = expired ? 0 : backoffDelay(this._attempt++, cfg, this._random);
      this._scheduleReconnect(delay, info);
      return;
    }
    if (this._goawayMs !== null) {
      // Graceful shutdown: the server chose when we come back, spread over its clients.
      const delay = this._goawayMs;
      this._goawayMs = null;
      this._attempt = 0;
      this._scheduleReconnect(delay, { ...info, goaway: true });
      return;
    }
    if (code === CloseCodes.TOO_MANY || code === CloseCodes.TRY_AGAIN_LATER) {
      // The server is overloaded or throttling us: wait longer than a plain failure.
      const delay = cfg.throttleMs + backoffDelay(this._attempt++, cfg, this._random);
      this._scheduleReconnect(delay, { ...info, throttled: true });
      return;
    }
    // 4008 (slow consumer), 1001 without goaway, 1006 (network) and the rest: plain backoff.
    // The resubscription after the reconnect resumes or brings fresh snapshots.
    this._scheduleReconnect(backoffDelay(this._attempt++, cfg, this._random), info);
  }

  _scheduleReconnect(delayMs, info = {}) {
    this._clearTimer("retry");
    if (!this._network.online()) {
      // No point in trying while offline; the "online" event reconnects at once.
      this._setState("offline", { ...info, reason: "the network is offline" });
      return;
    }
    const delay = Math.max(0, Math.round(delayMs));
    this._retryAt = this._now() + delay;
    this._setState("reconnecting", { ...info, delayMs: delay, retryAt: this._retryAt, attempt: this._attempt });
    this._startTimer("retry", delay, () => this._open());
  }

  /** Stops for good: no timers, no network watching, pending promises rejected. */
  _stop(info, code = "stopped", message = info.reason || "stopped") {
    this._gen++; // a getToken() still running must not open a socket afterwards
    this._clearAllTimers();
    this._welcomedAt = 0;
    this._sync = null;
    this._failRequests(new JobwireError(code, message));
    for (const w of this._waiters) w.reject(new JobwireError(code, message));
    this._waiters.clear();
    if (this._unwatchNetwork) {
      this._unwatchNetwork();
      this._unwatchNetwork = null;
    }
    this._markAllStale();
    this._setState("stopped", info);
    this._flushJobs();
  }

  /**
   * getToken() said the user is logged out: close, forget that user's jobs and resume point,
   * and never retry (connect() starts again, e.g. after the next sign-in).
   */
  _logout(reason) {
    this._detachSocket(1000, "logged out");
    this._stop({ reason: "logged out", loggedOut: true });
    this._table.clear();
    this._resume = null;
    this._lastEvent = null;
    this._flushJobs();
    this._emit("loggedout", { reason });
  }

  _onNetwork(online) {
    if (online) {
      // Back online: a reconnect at once beats waiting out a long backoff.
      if (this._state === "offline" || this._state === "reconnecting") {
        this._attempt = 0;
        this._open();
      }
    } else if (this._state === "reconnecting") {
      this._clearTimer("retry");
      this._setState("offline", { reason: "the network is offline" });
    }
    // A live socket is left alone when "offline" fires: the event is often a false alarm, and
    // a socket that really died is found by its close event or the ping timeout.
  }

  /** Ends the current socket from our side and handles it like a close from the server. */
  _dropSocket(code, reason) {
    this._detachSocket(code, reason);
    this._onClose(code, reason);
  }

  _detachSocket(code, reason) {
    const ws = this._ws;
    this._gen++; // ignore whatever the old socket still reports
    this._ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    try {
      ws.close(code, reason);
    } catch {
      /* already closed */
    }
  }

  // ---- token refresh and heartbeat ---------------------------------------------------------

  /**
   * Plans the next refresh from the token's expiry (seconds; the server's `expiresAt`, else the
   * JWT's exp): at refreshRatio (80 %) of the remaining lifetime, at half of it for a retry,
   * and never sooner than minRefreshMs from now, so a token that is already (or, by a skewed
   * clock, seemingly) expired cannot make the client refresh in a loop. Only with getToken.
   */
  _planRefresh(expiresAt, retry = false) {
    this._clearTimer("refresh");
    this._expiresAt = typeof expiresAt === "number" && Number.isFinite(expiresAt) ? expiresAt : null;
    if (!this._getToken || this._expiresAt == null || !this._welcomedAt) return;
    const remaining = this._expiresAt * 1000 - this._now();
    const delay = Math.max(this._minRefreshMs, remaining * (retry ? 0.5 : this._refreshRatio));
    this._refreshAt(this._now() + delay);
  }

  /** Runs refresh() at a wall-clock time, in timer-sized steps when it is far away. */
  _refreshAt(when) {
    const wait = when - this._now();
    if (wait > MAX_TIMER_MS) {
      this._startTimer("refresh", MAX_TIMER_MS, () => this._refreshAt(when));
      return;
    }
    this._startTimer("refresh", Math.max(0, wait), () => {
      this.refresh().catch((err) => {
        // A server refusal was reported and replanned by _onError; a closed link replans at
        // the next welcome; a logout is final. What is left is getToken() failing: retry later.
        if (!this._welcomedAt || (err && (err.reply || err.code === "logged_out"))) return;
        this._emit("error", { code: "refresh_failed", message: String(err && err.message || err), error: err });
        this._planRefresh(this._expiresAt, true);
      });
    });
  }

  /** Pings now and then; a link that stays silent after a ping is dropped and reconnected. */
  _schedulePing() {
    if (!this._pingIntervalMs) return;
    this._startTimer("ping", this._pingIntervalMs, () => {
      if (!this._welcomedAt) return;
      this._sendRaw({ type: "ping" });
      this._startTimer("pong", this._pongTimeoutMs, () => this._dropSocket(4000, "ping timeout"));
      this._schedulePing();
    });
  }

  // ---- bookkeeping -------------------------------------------------------------------------

  _parseSpec(spec) {
    if (typeof spec === "string" || Array.isArray(spec)) spec = { jobs: spec };
    if (!spec || typeof spec !== "object") throw new TypeError("subscribe needs {jobs} or {scope}");
    const kinds = normaliseKinds(spec.kinds);
    if (spec.scope != null) {
      if (spec.jobs != null) throw new TypeError("give jobs or scope, not both");
      if (spec.scope !== "user" && spec.scope !== "all") throw new TypeError('scope is "user" or "all"');
      return { scope: spec.scope, jobs: null, kinds };
    }
    const jobs = typeof spec.jobs === "string" ? [spec.jobs] : spec.jobs;
    if (!Array.isArray(jobs) || jobs.length === 0 || !jobs.every((j) => typeof j === "string" && j)) {
      throw new TypeError("jobs must be a non-empty array of job ids");
    }
    return { scope: null, jobs: [...new Set(jobs)], kinds };
  }

  _entry(key) {
    return key.startsWith("scope:") ? this._scopes.get(key.slice(6)) : this._jobs.get(key.slice(4));
  }

  _deleteEntry(key) {
    if (key.startsWith("scope:")) this._scopes.delete(key.slice(6));
    else this._jobs.delete(key.slice(4));
  }

  /** Resolves (ack) or rejects (err) the subscribe() promises waiting for any of these keys. */
  _settleWaiters(keys, ack, err) {
    for (const w of [...this._waiters]) {
      let hit = false;
      for (const k of keys) if (w.keys.delete(k)) hit = true;
      if (!hit) continue;
      if (err) {
        this._waiters.delete(w);
        w.reject(err);
      } else if (w.keys.size === 0) {
        this._waiters.delete(w);
        w.resolve(ack);
      }
    }
  }

  /** Sends a request with a fresh id and remembers it until its answer arrives. */
  _send(msg, req) {
    const id = String(this._nextId++);
    this._requests.set(id, req);
    this._sendRaw({ ...msg, id });
    return id;
  }

  _sendRaw(msg) {
    if (!this._ws) return;
    if (msg.kinds === null) delete msg.kinds;
    try {
      this._ws.send(JSON.stringify(msg));
    } catch {
      /* the close event follows */
    }
  }

  _takeRequest(id) {
    if (id == null) return null;
    const req = this._requests.get(String(id));
    if (req) this._requests.delete(String(id));
    return req || null;
  }

  /** Ends the in-flight requests of a connection that closed. Subscribe waiters stay. */
  _failRequests(err) {
    for (const req of this._requests.values()) {
      if (req.resolveOnDrop && req.resolve) req.resolve(null);
      else if (req.reject) req.reject(err);
    }
    this._requests.clear();
  }

  _setState(state, info = {}) {
    const previous = this._state;
    this._state = state;
    this._emit("state", { state, previous, ...info });
  }

  _emit(type, detail) {
    const cb = this._callbacks[type];
    if (typeof cb === "function") {
      try {
        cb(detail);
      } catch (err) {
        reportListenerError(err);
      }
    }
    this.dispatchEvent(makeEvent(type, detail));
  }

  _startTimer(name, ms, fn) {
    this._clearTimer(name);
    this._timers[name] = this._setTimeout(() => {
      this._timers[name] = null;
      fn();
    }, ms);
  }

  _clearTimer(name) {
    if (this._timers[name] != null) {
      this._clearTimeout(this._timers[name]);
      this._timers[name] = null;
    }
  }

  _clearAllTimers() {
    for (const name of Object.keys(this._timers)) this._clearTimer(name);
  }
}

export default JobwireClient;
