// TypeScript declarations for jobwire.js (the jobwire WebSocket protocol, version 1).
// Reference: docs/WEB.md; wire format: docs/PROTOCOL.md.

/** Event kinds a `kinds` filter may name ("other": any other channel kind). */
export type Kind = "status" | "progress" | "complete" | "error" | "other";
export const KINDS: readonly Kind[];

/** idle → connecting → live ⇄ paused; reconnecting / offline between attempts; stopped at the end. */
export type ConnectionState =
  | "idle" | "connecting" | "live" | "paused" | "reconnecting" | "offline" | "stopped";
export const STATES: readonly ConnectionState[];

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

/** A WebSocket class: the browser's, React Native's, or the `ws` package's. */
export interface WebSocketLike {
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface JobwireOptions {
  /** ws:// or wss:// URL of /ws. Default: /ws on the page's own host (browsers only). */
  url?: string;
  /** A fixed token, sent in the first `auth` message. A 4401 close then stops the client. */
  token?: string;
  /** Called on every connect (and before each refresh) for a current token. */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>;
  /** dev_auth servers only: the user id, sent as ?user= on the WebSocket URL (no token sent). */
  devUser?: string;
  /** dev_auth servers only: ask for the admin role (?admin=1). */
  devAdmin?: boolean;
  reconnect?: ReconnectOptions;
  /** The WebSocket class to use. Default: globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  /** Optional Sec-WebSocket-Protocol ("jobwire.v1"). */
  protocols?: string | string[];
  /** Refresh the token this long before its exp (ms). Default 60000. */
  refreshMarginMs?: number;
  /** Ping the server this often (ms; 0: never). Default 25000. */
  pingIntervalMs?: number;
  /** Drop and reconnect a link silent this long after a ping (ms). Default 10000. */
  pongTimeoutMs?: number;
  /** Give up on a connection not welcomed within this time (ms). Default 15000. */
  welcomeTimeoutMs?: number;
  network?: NetworkWatcher;
  onEvent?: (event: JobEvent) => void;
  onSnapshot?: (snapshot: JobSnapshot) => void;
  onState?: (change: StateChange) => void;
  onError?: (error: ErrorInfo) => void;
  onWelcome?: (welcome: Welcome) => void;
  onLive?: (status: LiveStatus) => void;
  /** Test hooks: the clock and the randomness of the jitter. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  now?: () => number;
  random?: () => number;
}

export interface Welcome {
  type: "welcome"; protocol: number; connectionId: string; userId: string; admin: boolean;
}

export interface JobEvent {
  type: "event";
  kind: Kind | string;
  jobId: string;
  userId?: string;
  channel: string;
  /** The message exactly as the publisher sent it (JSON). */
  payload: any;
  seq: number;
}

export interface JobSnapshot {
  type: "snapshot";
  jobId: string;
  userId?: string;
  /** "hash": fields of ai:job:{id} (string values); "string": JSON at ai:job:status:{id}; null: none. */
  source: "hash" | "string" | null;
  state: Record<string, any> | null;
  /** Redis could not be asked; a fresh snapshot follows when it is back. */
  unavailable?: boolean;
  seq: number;
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
  userId?: string | null;
  admin?: boolean;
}

export interface LiveStatus {
  live: boolean;
  reason: string | null;
}

export interface ErrorInfo {
  /** A server error code (forbidden, bad_job_id, …) or a client one (token_failed, …). */
  code: string;
  message: string;
  /** The server's error message, when the error is one. */
  reply?: { type: "error"; id?: string; code: string; message: string };
  /** The request the error answered: "subscribe", "unsubscribe", "auth", "ping". */
  request?: string | null;
  closeCode?: number;
  error?: unknown;
}

export interface Ack {
  type: "ack";
  id: string;
  op: "subscribe" | "unsubscribe" | "auth";
  scope?: "jobs" | "user" | "all";
  jobs?: string[];
  kinds?: Kind[];
  userId?: string;
  expiresAt?: number;
}

export type SubscribeSpec =
  | string
  | string[]
  | { jobs: string | string[]; kinds?: Kind[] }
  | { scope: "user" | "all"; kinds?: Kind[] };

/** Thrown/rejected with a protocol or client error code. */
export class JobwireError extends Error {
  code: string;
  reply?: ErrorInfo["reply"];
  constructor(code: string, message?: string, extra?: object);
}

interface JobwireEventMap {
  event: CustomEvent<JobEvent>;
  snapshot: CustomEvent<JobSnapshot>;
  state: CustomEvent<StateChange>;
  error: CustomEvent<ErrorInfo>;
  welcome: CustomEvent<Welcome>;
  live: CustomEvent<LiveStatus>;
}

export class JobwireClient extends EventTarget {
  constructor(options?: JobwireOptions);
  readonly url: string;
  readonly reconnect: Required<ReconnectOptions>;
  /** Set by the welcome of the current (or last) connection. */
  readonly userId: string | null;
  readonly admin: boolean;
  readonly connectionId: string | null;
  /** `seq` of the last event or snapshot on the current connection. */
  readonly lastSeq: number;
  readonly state: ConnectionState;
  /** True while welcomed and the server's Redis link is live. */
  readonly live: boolean;
  /** Milliseconds until the next reconnect attempt (0 when none is scheduled). */
  readonly retryInMs: number;
  /** What the client holds and restores after every reconnect (null kinds: all kinds). */
  readonly subscriptions: {
    jobs: Record<string, Kind[] | null>;
    scopes: Partial<Record<"user" | "all", Kind[] | null>>;
  };

  /** Starts connecting; again after close() or a stop. */
  connect(): this;
  /** Closes for good; subscriptions are kept for a later connect(). */
  close(code?: number, reason?: string): void;
  /** Resolves with the ack once in force (after a reconnect if need be); rejects when refused. */
  subscribe(spec: SubscribeSpec): Promise<Ack>;
  /** Resolves with the ack, or null when not connected (then nothing was subscribed). */
  unsubscribe(spec: SubscribeSpec): Promise<Ack | null>;
  /** Sends a newer token (default: from getToken()). */
  refresh(token?: string): Promise<Ack>;
  ping(): Promise<{ type: "pong"; id: string }>;
  /** addEventListener for `detail`; returns a function that removes the listener. */
  on<K extends keyof JobwireEventMap>(type: K, fn: (detail: JobwireEventMap[K]["detail"], ev: JobwireEventMap[K]) => void): () => void;

  addEventListener<K extends keyof JobwireEventMap>(type: K, listener: (ev: JobwireEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof JobwireEventMap>(type: K, listener: (ev: JobwireEventMap[K]) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/** The `exp` claim (seconds) of a JWT, or null; the payload is read, not verified. */
export function tokenExpiry(token: string | null | undefined): number | null;
/** Full-jitter delay: random() * min(maxMs, initialMs * multiplier ** attempt). */
export function backoffDelay(attempt: number, cfg: Required<Pick<ReconnectOptions, "initialMs" | "maxMs" | "multiplier">>, random?: () => number): number;

export default JobwireClient;
