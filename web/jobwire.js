// jobwire.js — client for the jobwire WebSocket protocol (version 1, docs/PROTOCOL.md).
//
// A dependency-free ES module for browsers and React Native-style runtimes. It needs only a
// WebSocket class and setTimeout; EventTarget and navigator.onLine are used when present.
//
//   import { JobwireClient } from "./jobwire.js";
//   const jw = new JobwireClient({ url: "wss://jobs.example.com/ws", getToken: fetchToken });
//   jw.addEventListener("event", (e) => console.log(e.detail));
//   jw.connect();
//   jw.subscribe({ scope: "user" });
//
// What it does for the application:
// - authenticates with a first `auth` message (the token never goes into the URL);
// - keeps the wanted subscriptions and sends them again after every reconnect, so the server
//   answers with fresh snapshots and no job state is missed while the link was down;
// - reconnects with exponential backoff and full jitter, resets the backoff after a stable
//   period, honours the server's goaway delay, backs off longer when throttled, and waits for
//   the network to come back instead of spinning while offline;
// - calls getToken() on every connect and refreshes the token before it expires.
// API reference: docs/WEB.md; types: jobwire.d.ts.

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
 * Only reads the payload: the server verifies the token, the client just plans its refresh.
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

function sameKinds(a, b) {
  return a === b || (a !== null && b !== null && a.join() === b.join());
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

// ---- the client ----------------------------------------------------------------------------

export class JobwireClient extends EventBase {
  /** @param {import("./jobwire").JobwireOptions} options */
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
    this._refreshMarginMs = o.refreshMarginMs ?? 60000;
    this._pingIntervalMs = o.pingIntervalMs ?? 25000;
    this._pongTimeoutMs = o.pongTimeoutMs ?? 10000;
    this._welcomeTimeoutMs = o.welcomeTimeoutMs ?? 15000;
    this._network = o.network || browserNetwork();
    this._callbacks = {
      event: o.onEvent, snapshot: o.onSnapshot, state: o.onState, error: o.onError,
      welcome: o.onWelcome, live: o.onLive,
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
    this._goawayMs = null; // reconnectAfterMs of a goaway received on this connection
    this._retryAt = 0;
    this._currentToken = null; // the token the live connection authenticated with
    this._timers = { retry: null, refresh: null, ping: null, pong: null, welcome: null };
    this._nextId = 1;
    this._requests = new Map(); // id → in-flight request on the current connection
    this._waiters = new Set(); // subscribe() promises, kept across reconnects until settled
    this._jobs = new Map(); // jobId → { kinds, confirmed }: the subscriptions we want
    this._scopes = new Map(); // "user" | "all" → { kinds, confirmed }
    this.userId = null;
    this.admin = false;
    this.connectionId = null;
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
   * subscriptions are kept, so connect() later restores them.
   */
  close(code = 1000, reason = "client closed") {
    this._clearAllTimers();
    if (this._unwatchNetwork) {
      this._unwatchNetwork();
      this._unwatchNetwork = null;
    }
    this._detachSocket(code, reason);
    this._failRequests(new JobwireError("closed", "the client was closed"));
    for (const w of this._waiters) w.reject(new JobwireError("closed", "the client was closed"));
    this._waiters.clear();
    this._setState("stopped", { reason });
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
      this._send(scope ? { type: "subscribe", scope, kinds } : { type: "subscribe", jobs, kinds },
        { op: "subscribe", keys });
    }
    return promise;
  }

  /**
   * Unsubscribes from job ids or a scope. Forgotten at once (not restored after a reconnect);
   * resolves with the ack, or at once when not connected.
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

  /**
   * Sends a newer token (`refresh` message) so the server does not close the connection when
   * the current one expires. Without an argument the token comes from getToken(). Called by
   * the client itself ahead of the token's `exp` when getToken is set.
   */
  async refresh(token) {
    if (!this._welcomedAt) throw new JobwireError("not_connected", "not connected");
    const gen = this._gen;
    const fresh = token != null ? String(token) : await this._fetchToken();
    if (fresh == null) throw new JobwireError("no_token", "no token to refresh with");
    if (gen !== this._gen || !this._welcomedAt) {
      throw new JobwireError("disconnected", "the connection closed during the refresh");
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

  /** getToken() on every connect (a fresh token each time), else the static token. */
  async _fetchToken() {
    if (this._getToken) {
      const t = await this._getToken();
      return t == null ? null : String(t);
    }
    return this._staticToken;
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
    switch (msg.type) {
      case "welcome": return this._onWelcome(msg);
      case "ack": return this._onAck(msg);
      case "error": return this._onError(msg);
      case "event":
      case "snapshot":
        if (typeof msg.seq === "number") this.lastSeq = msg.seq;
        return this._emit(msg.type, msg);
      case "status": return this._onStatus(msg);
      case "goaway":
        if (typeof msg.reconnectAfterMs === "number" && msg.reconnectAfterMs >= 0) {
          this._goawayMs = msg.reconnectAfterMs;
        }
        return;
      case "pong": {
        const req = this._takeRequest(msg.id);
        if (req && req.resolve) req.resolve(msg);
        return;
      }
      default: return; // unknown types are ignored (the protocol may grow)
    }
  }

  _onWelcome(msg) {
    this._clearTimer("welcome");
    this._welcomedAt = this._now();
    this.userId = msg.userId ?? null;
    this.admin = !!msg.admin;
    this.connectionId = msg.connectionId ?? null;
    this._setState("live", { userId: this.userId, admin: this.admin });
    this._emit("welcome", msg);
    this._restore();
    this._scheduleRefresh(tokenExpiry(this._currentToken));
    this._schedulePing();
  }

  /** Sends every wanted subscription again: scopes first, then jobs grouped by kinds filter. */
  _restore() {
    for (const [scope, s] of this._scopes) {
      this._send({ type: "subscribe", scope, kinds: s.kinds }, { op: "subscribe", keys: ["scope:" + scope] });
    }
    const groups = new Map();
    for (const [id, s] of this._jobs) {
      const key = s.kinds ? s.kinds.join() : "*";
      if (!groups.has(key)) groups.set(key, { kinds: s.kinds, ids: [] });
      groups.get(key).ids.push(id);
    }
    for (const { kinds, ids } of groups.values()) {
      for (let i = 0; i < ids.length; i += RESTORE_BATCH) {
        const jobs = ids.slice(i, i + RESTORE_BATCH);
        this._send({ type: "subscribe", jobs, kinds }, { op: "subscribe", keys: jobs.map((j) => "job:" + j) });
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
      this._settleWaiters(req.keys, msg, null);
    } else if (req.op === "auth") {
      this._currentToken = req.token;
      const exp = typeof msg.expiresAt === "number" ? msg.expiresAt : tokenExpiry(req.token);
      this._scheduleRefresh(exp);
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
      this._settleWaiters(req.keys, null, err);
    } else if (req && req.op === "auth") {
      // A refused refresh keeps the current token in force; try once more a bit later.
      const exp = tokenExpiry(this._currentToken);
      if (exp) this._scheduleRefresh(exp, true);
    }
    if (req && req.reject) req.reject(err);
    this._emit("error", { code: err.code, message: err.message, reply: msg, request: req ? req.op : null });
  }

  _onStatus(msg) {
    const live = msg.live !== false;
    if (this._welcomedAt) {
      this._setState(live ? "live" : "paused", { reason: msg.reason || null });
    }
    this._emit("live", { live, reason: msg.reason || null });
  }

  // ---- closing and reconnecting ------------------------------------------------------------

  _onClose(code, reason) {
    const welcomedAt = this._welcomedAt;
    this._ws = null;
    this._welcomedAt = 0;
    this._clearTimer("ping");
    this._clearTimer("pong");
    this._clearTimer("welcome");
    this._clearTimer("refresh");
    this._failRequests(new JobwireError("disconnected", "the connection closed"));
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
    // The resubscription after the reconnect brings fresh snapshots, so nothing stays missed.
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

  _stop(info) {
    this._clearAllTimers();
    this._failRequests(new JobwireError("closed", "the client stopped"));
    for (const w of this._waiters) w.reject(new JobwireError("stopped", info.reason || "stopped"));
    this._waiters.clear();
    if (this._unwatchNetwork) {
      this._unwatchNetwork();
      this._unwatchNetwork = null;
    }
    this._setState("stopped", info);
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
   * Plans the next refresh from a token's exp (seconds): refreshMarginMs before it, or at half
   * the remaining time for short-lived tokens. Only with getToken (a source of new tokens).
   */
  _scheduleRefresh(expSeconds, retry = false) {
    this._clearTimer("refresh");
    if (!this._getToken || !expSeconds) return;
    const remaining = expSeconds * 1000 - this._now();
    if (remaining <= 0) return; // the server closes with 4401; we reconnect with a new token
    const margin = this._refreshMarginMs;
    const delay = retry || remaining <= 2 * margin ? remaining / 2 : remaining - margin;
    if (retry && delay < 1000) return; // too late to retry; the reconnect will do it
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
        if (err && err.code !== "disconnected" && err.code !== "closed") {
          this._emit("error", { code: "refresh_failed", message: err.message, error: err });
        }
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
    if (msg.kinds === null) delete msg.kinds;
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
