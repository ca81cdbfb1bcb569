// TypeScript declarations for jobwire.js (the jobwire WebSocket protocol, version 1).
// Reference: docs/WEB.md; wire format: docs/PROTOCOL.md.
//
// Self-contained on purpose: no DOM types (EventTarget, CustomEvent, WebSocket) are named, so
// the declarations compile with `"lib": ["es2020"]` alone, as in React Native projects.
// jobwire.d.cts is a generated copy for CommonJS consumers (tools/build-cjs.mjs).

/** Any JSON value, as a publisher may put in a payload. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Event kinds a `kinds` filter may name ("other": any other channel kind). */
export type Kind = "status" | "progress" | "complete" | "error" | "other";
export const KINDS: readonly Kind[];

/** idle → connecting → live ⇄ paused; reconnecting / offline between attempts; stopped at the end. */
export type ConnectionState =
  | "idle" | "connecting" | "live" | "paused" | "reconnecting" | "offline" | "stopped";
export const STATES: readonly ConnectionState[];

/** Statuses after which a job no longer changes ("completed", "failed", …). */
export const TERMINAL_STATUSES: readonly string[];

export const CloseCodes: Readonly<{
  NORMAL: 1000; GOING_AWAY: 1001; UNSUPPORTED_DATA: 1003; ABNORMAL: 1006; TOO_BIG: 1009;
  TRY_AGAIN_LATER: 1013; SLOW_CONSUMER: 4008; UNAUTHENTICATED: 4401; FORBIDDEN: 4403;
  TOO_MANY: 4429;
}>;

export interface ReconnectOptions {
  /** Ceiling of the first retry delay (ms). Default 500. */
  initialMs?: number;
  /** The ceiling never grows past this (ms). Default 30000. */
  maxMs?: number;
  /** Ceiling growth per failed attempt. Default 2. */
  multiplier?: number;
  /** A connection up this long resets the backoff (ms). Default 10000. */
  resetAfterMs?: number;
  /** Added to the delay after close 4429 or 1013 (ms). Default 5000. */
  throttleMs?: number;
}
export const DEFAULT_RECONNECT: Readonly<Required<ReconnectOptions>>;

/** Where the client learns about the network (default: navigator.onLine + window events). */
export interface NetworkWatcher {
  online(): boolean;
  /** Calls back with true/false when the network comes and goes; returns an unwatch function. */
  watch(callback: (online: boolean) => void): () => void;
}

/**
 * The part of a WebSocket the client uses: the browser's, React Native's, or the `ws`
 * package's. Handlers are declared as methods so that the runtime classes, whose handlers take
 * richer event types, are assignable.
 */
export interface WebSocketLike {
  onopen: { handler(ev: unknown): void }["handler"] | null;
  onmessage: { handler(ev: { data: unknown }): void }["handler"] | null;
  onclose: { handler(ev: { code?: number; reason?: string }): void }["handler"] | null;
  onerror: { handler(ev: unknown): void }["handler"] | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** What getToken may return: a token, or null/undefined for "logged out". */
export type TokenResult = string | null | undefined;

export interface JobwireOptions {
  /** ws:// or wss:// URL of /ws. Default: /ws on the page's own host (browsers only). */
  url?: string;
  /** A fixed token, sent in the first `auth` message. A 4401 close then stops the client. */
  token?: string;
  /**
   * Called on every connect and before the token expires. Resolving to null/undefined, or
   * throwing `LoggedOut`, means the user is logged out: the client stops (`loggedout`).
   * Any other error is retried with the backoff.
   */
  getToken?: () => TokenResult | Promise<TokenResult>;
  /** dev_auth servers only: the user id, sent as ?user= on the WebSocket URL (no token sent). */
  devUser?: string;
  /** dev_auth servers only: ask for the admin role (?admin=1). */
  devAdmin?: boolean;
  reconnect?: ReconnectOptions;
  /** The WebSocket class to use. Default: globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  /** Optional Sec-WebSocket-Protocol ("jobwire.v1"). */
  protocols?: string | string[];
  /** Refresh the token at this fraction of its remaining lifetime. Default 0.8. */
  refreshRatio?: number;
  /** Never refresh sooner than this after the last plan (ms). Default 10000. */
  minRefreshMs?: number;
  /** Ping the server this often (ms; 0: never). Default 25000. */
  pingIntervalMs?: number;
  /** Drop and reconnect a link silent this long after a ping (ms). Default 10000. */
  pongTimeoutMs?: number;
  /** Give up on a connection not welcomed within this time (ms). Default 15000. */
  welcomeTimeoutMs?: number;
  /** Jobs kept in `jobs`; past it the one updated longest ago goes, finished ones first. Default 1000. */
  maxJobs?: number;
  network?: NetworkWatcher;
  onEvent?: (event: JobEvent) => void;
  onSnapshot?: (snapshot: JobSnapshot) => void;
  onState?: (change: StateChange) => void;
  onError?: (error: ErrorInfo) => void;
  onWelcome?: (welcome: Welcome) => void;
  onLive?: (status: LiveStatus) => void;
  onJobs?: (change: JobsChange) => void;
  onLoggedOut?: (info: LoggedOutInfo) => void;
  onGap?: (gap: SeqGap) => void;
  /** Test hooks: the clock and the randomness of the jitter. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  now?: () => number;
  random?: () => number;
}

// ---- server → client messages (docs/PROTOCOL.md), discriminated by `type` ---------------------

export interface Welcome {
  type: "welcome";
  protocol: number;
  connectionId: string;
  userId: string;
  admin: boolean;
  /** false: the server's Redis is away right now (a `status` live:true follows). */
  live?: boolean;
  /** The token's exp (seconds since the epoch); absent without one. */
  expiresAt?: number;
  /** The server process's epoch: the prefix of every eventId it sends. */
  epoch?: string;
}

interface FrameBase {
  /** Per connection; a gap means frames were dropped for this connection (conflation). */
  seq: number;
  /** "<epoch>-<n>": same epoch and larger n = later. Absent from servers before eventIds. */
  eventId?: string;
}

/** A live event. Events of user channels have no jobId. */
export interface JobEvent extends FrameBase {
  type: "event";
  /** status, progress, complete, error, or the channel's own kind (e.g. "recommendation"). */
  kind: string;
  jobId?: string;
  userId?: string;
  channel: string;
  /** The message exactly as the publisher sent it. */
  payload: JsonValue;
}

interface SnapshotBase extends FrameBase {
  type: "snapshot";
  jobId: string;
  userId?: string;
  /** Redis could not be asked (state null); a fresh snapshot follows when it is back. */
  unavailable?: boolean;
  /** The state is too large to send (state null). */
  tooLarge?: boolean;
}
/** A job's state as Redis holds it, by where it was found. */
export type JobSnapshot =
  | (SnapshotBase & { source: "hash"; state: Record<string, string> | null })
  | (SnapshotBase & { source: "string"; state: JsonValue })
  | (SnapshotBase & { source: null; state: null });

export interface Ack {
  type: "ack";
  id: string;
  op: "subscribe" | "unsubscribe" | "auth";
  scope?: "jobs" | "user" | "all";
  jobs?: string[];
  kinds?: Kind[];
  /** Answer to lastEventId: true → the missed events follow; false → snapshots follow. */
  resumed?: boolean;
  /** Scope subscribes: how many snapshots follow. */
  snapshots?: number;
  userId?: string;
  /** op "auth": the new token's exp (seconds). */
  expiresAt?: number;
}

export interface ErrorReply {
  type: "error";
  id?: string;
  code: string;
  message: string;
}

export interface StatusMessage {
  type: "status";
  live: boolean;
  reason?: string;
  /** SSE only: the answer to Last-Event-ID. */
  resumed?: boolean;
}

export interface Goaway {
  type: "goaway";
  reconnectAfterMs: number;
}

export interface Pong {
  type: "pong";
  id?: string;
}

/** Every message the server sends; narrow it with `switch (msg.type)`. */
export type ServerMessage =
  | Welcome | Ack | ErrorReply | JobEvent | JobSnapshot | StatusMessage | Goaway | Pong;

// ---- what the client derives -----------------------------------------------------------------

/** One job as the client knows it, from its snapshots and events. Frozen; replaced on change. */
export interface JobState {
  readonly jobId: string;
  readonly userId: string | null;
  readonly status: string | null;
  /** A number (hash fields arrive as strings and are converted). */
  readonly progress: number | null;
  readonly message: string | null;
  readonly error: string | null;
  /** The status is final (completed, failed, …) or a complete/error event arrived. */
  readonly terminal: boolean;
  /** The snapshot's state fields with the payload fields of later events on top. */
  readonly data: Readonly<Record<string, JsonValue>>;
  /** The kind of the last event applied; null when the last update was a snapshot. */
  readonly kind: string | null;
  /** The eventId of the last event or snapshot applied. */
  readonly eventId: string | null;
  /** ms since the epoch: the state's startTime (or createdAt), else when first seen. */
  readonly startedAt: number;
  /** ms since the epoch: the update's own time (updateTime, timestamp), else when received. */
  readonly updatedAt: number;
  /** ms since the epoch when the job became terminal; null while it runs. */
  readonly finishedAt: number | null;
  /** Updates are interrupted (paused, reconnecting) or the resync has not reached this job yet. */
  readonly stale: boolean;
  /** The last snapshot said Redis could not be asked. */
  readonly unavailable: boolean;
  /** The last snapshot said the state is too large to send. */
  readonly tooLarge: boolean;
}

export interface JobsChange {
  /** All jobs; a new Map after every change. */
  jobs: ReadonlyMap<string, JobState>;
  changed: string[];
  removed: string[];
}

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** reconnecting: the wait before the next attempt, and when it ends (ms since epoch). */
  delayMs?: number;
  retryAt?: number;
  attempt?: number;
  /** The close code and reason that ended the last connection, when one did. */
  code?: number | null;
  reason?: string | null;
  goaway?: boolean;
  throttled?: boolean;
  /** stopped because getToken said the user is logged out. */
  loggedOut?: boolean;
  userId?: string | null;
  admin?: boolean;
}

export interface LiveStatus {
  live: boolean;
  reason: string | null;
}

export interface SeqGap {
  /** The last seq before the gap, and the seq that arrived. */
  after: number;
  seq: number;
  missed: number;
  jobId: string | null;
}

export interface SyncChange {
  /** true: live and every job up to date; false: interrupted or resyncing. */
  synced: boolean;
}

export interface LoggedOutInfo {
  reason: string;
}

export interface ErrorInfo {
  /** A server error code (forbidden, bad_job_id, …) or a client one (token_failed, …). */
  code: string;
  message: string;
  /** The server's error message, when the error is one. */
  reply?: ErrorReply;
  /** The request the error answered: "subscribe", "unsubscribe", "auth", "ping". */
  request?: string | null;
  closeCode?: number;
  error?: unknown;
}

export interface JobwireStats {
  /** seq gaps seen, and the frames they skipped (conflated progress events). */
  gaps: number;
  missed: number;
  /** Events dropped because their eventId was not newer than what was known. */
  duplicates: number;
  /** Reconnects answered with `resumed: true`. */
  resumed: number;
  /** Resync rounds completed (after connects, reconnects and outages). */
  resyncs: number;
}

export type SubscribeSpec =
  | string
  | string[]
  | { jobs: string | string[]; kinds?: Kind[] }
  | { scope: "user" | "all"; kinds?: Kind[] };

/** Thrown/rejected with a protocol or client error code. */
export class JobwireError extends Error {
  code: string;
  reply?: ErrorReply;
  constructor(code: string, message?: string, extra?: object);
}

/** Throw it from getToken() to say "logged out" (as resolving to null does). */
export class LoggedOut extends Error {
  readonly code: "logged_out";
  constructor(message?: string);
}

/** Event name → `detail` type. */
export interface JobwireEventMap {
  event: JobEvent;
  snapshot: JobSnapshot;
  message: ServerMessage;
  job: JobState;
  jobs: JobsChange;
  state: StateChange;
  live: LiveStatus;
  sync: SyncChange;
  gap: SeqGap;
  error: ErrorInfo;
  welcome: Welcome;
  loggedout: LoggedOutInfo;
}

/** What a listener receives: a CustomEvent in browsers, a { type, detail } object elsewhere. */
export interface JobwireEvent<T> {
  readonly type: string;
  readonly detail: T;
}

export class JobwireClient {
  constructor(options?: JobwireOptions);
  readonly url: string;
  readonly reconnect: Required<ReconnectOptions>;
  /** Set by the welcome of the current (or last) connection. */
  readonly userId: string | null;
  readonly admin: boolean;
  readonly connectionId: string | null;
  readonly epoch: string | null;
  /** `seq` of the last event or snapshot on the current connection. */
  readonly lastSeq: number;
  /** The latest eventId seen; sent as lastEventId when resubscribing after a reconnect. */
  readonly lastEventId: string | null;
  readonly state: ConnectionState;
  /** True while welcomed and the server's Redis link is live. */
  readonly live: boolean;
  /** True while live and no resync is under way (no job is stale for lack of news). */
  readonly synced: boolean;
  /** Milliseconds until the next reconnect attempt (0 when none is scheduled). */
  readonly retryInMs: number;
  /** When the current token expires (seconds since the epoch), when known. */
  readonly expiresAt: number | null;
  /** jobId → JobState; the same Map until something changes. */
  readonly jobs: ReadonlyMap<string, JobState>;
  readonly stats: JobwireStats;
  /** What the client holds and restores after every reconnect (null kinds: all kinds). */
  readonly subscriptions: {
    jobs: Record<string, Kind[] | null>;
    scopes: Partial<Record<"user" | "all", Kind[] | null>>;
  };

  /** Starts connecting; again after close() or a stop. */
  connect(): this;
  /** Closes for good; subscriptions, jobs and the resume point are kept for a later connect(). */
  close(code?: number, reason?: string): void;
  /** Back in the foreground: reconnect now if waiting, else check the link with a ping. */
  wake(): this;
  /** Resolves with the ack once in force (after a reconnect if need be); rejects when refused. */
  subscribe(spec: SubscribeSpec): Promise<Ack>;
  /** Resolves with the ack, or null when not connected (then nothing was subscribed). */
  unsubscribe(spec: SubscribeSpec): Promise<Ack | null>;
  /** Removes a job from `jobs`; true when it was there. */
  forgetJob(jobId: string): boolean;
  /** Sends a newer token (default: from getToken()). */
  refresh(token?: string): Promise<Ack>;
  ping(): Promise<Pong>;
  /** addEventListener for `detail`; returns a function that removes the listener. */
  on<K extends keyof JobwireEventMap>(type: K, fn: (detail: JobwireEventMap[K], ev: JobwireEvent<JobwireEventMap[K]>) => void): () => void;

  addEventListener<K extends keyof JobwireEventMap>(type: K, listener: (ev: JobwireEvent<JobwireEventMap[K]>) => void): void;
  removeEventListener<K extends keyof JobwireEventMap>(type: K, listener: (ev: JobwireEvent<JobwireEventMap[K]>) => void): void;
  dispatchEvent(event: { readonly type: string }): boolean;
}

/** The `exp` claim (seconds) of a JWT, or null; the payload is read, not verified. */
export function tokenExpiry(token: string | null | undefined): number | null;
/** Full-jitter delay: random() * min(maxMs, initialMs * multiplier ** attempt). */
export function backoffDelay(attempt: number, cfg: Required<Pick<ReconnectOptions, "initialMs" | "maxMs" | "multiplier">>, random?: () => number): number;
/** Orders two eventIds: 1 (a later), -1 (a earlier), 0 (equal), null (other epochs or not ids). */
export function compareEventIds(a: string | null | undefined, b: string | null | undefined): 1 | -1 | 0 | null;

export default JobwireClient;
