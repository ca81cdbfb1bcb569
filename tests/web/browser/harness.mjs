// Harness for the browser tests: a private redis-server and the real jobwire binary on free
// ports (the node counterpart of tests/integration/conftest.py), Debian's chromium driven by
// playwright-core, and small helpers to write job state the way the AI services do.
//
// Environment: JOBWIRE_BIN (default build/jobwire), REDIS_SERVER (default redis-server),
// REDIS_CLI (default redis-cli), CHROMIUM (default /usr/bin/chromium).
// Every wait polls a condition with a deadline; nothing sleeps in place of a condition.
import { spawn, execFile } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, openSync, closeSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import assert from "node:assert/strict";

const execFileP = promisify(execFile);
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const ARTIFACTS = join(REPO, "tests", "artifacts", "web");
const WAIT_MS = 10_000; // upper bound of one wait

/** Chromium flags: no sandbox (containers), no GPU, and nothing that talks to the network. */
export const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

const usedPorts = new Set();

/** A port the kernel reports free on 127.0.0.1, never handed out twice in this process. */
export async function freePort() {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise((ok, fail) => {
      const srv = createServer();
      srv.once("error", fail);
      srv.listen(0, "127.0.0.1", () => {
        const p = srv.address().port;
        srv.close(() => ok(p));
      });
    });
    if (!usedPorts.has(port)) {
      usedPorts.add(port);
      return port;
    }
  }
  throw new Error("no free port");
}

/** Polls cond() until it returns a truthy value (returned), or fails after timeoutMs. */
export async function waitFor(cond, what, timeoutMs = WAIT_MS, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let lastErr = null;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
        (lastErr ? ` (last error: ${lastErr.message})` : ""));
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function tail(path, lines = 40) {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** A fresh work directory for one test, under the artifacts (logs stay for inspection). */
export function workDir(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const dir = join(ARTIFACTS, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Starts a child process with stdout and stderr in a log file; resolves once spawned. */
function startLogged(cmd, args, logPath, env = process.env) {
  const fd = openSync(logPath, "a");
  const proc = spawn(cmd, args, { stdio: ["ignore", fd, fd], env });
  closeSync(fd);
  proc.exited = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })));
  return proc;
}

async function stopProc(proc, signal = "SIGTERM") {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill("SIGKILL"), WAIT_MS);
  await proc.exited;
  clearTimeout(timer);
}

// ---- redis-server ----------------------------------------------------------------------------

export class Redis {
  constructor(dir) {
    this.dir = join(dir, "redis");
    mkdirSync(this.dir, { recursive: true });
    this.log = join(this.dir, "redis.log");
  }

  /**
   * Starts redis-server (on the same port as before when restarted). With a password, clients
   * without it (jobwire's config has none) are refused until setPassword(null).
   */
  async start({ password = null } = {}) {
    this.port ??= await freePort();
    this.password = password;
    this.proc = startLogged(process.env.REDIS_SERVER || "redis-server",
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
       "--dir", this.dir, "--daemonize", "no", ...(password ? ["--requirepass", password] : [])],
      this.log);
    await waitFor(async () => {
      if (this.proc.exitCode !== null) throw new Error(`redis-server exited:\n${tail(this.log)}`);
      return (await this.cmd("PING")) === "PONG";
    }, `redis-server PING on port ${this.port}`);
    return this;
  }

  /** One Redis command through redis-cli (arguments passed as they are, no shell quoting). */
  async cmd(...args) {
    const env = this.password ? { ...process.env, REDISCLI_AUTH: this.password } : process.env;
    const { stdout } = await execFileP(process.env.REDIS_CLI || "redis-cli",
      ["-h", "127.0.0.1", "-p", String(this.port), ...args.map(String)], { timeout: WAIT_MS, env });
    return stdout.trim();
  }

  /** Changes (null: removes) the password of the running server. */
  async setPassword(password) {
    await this.cmd("CONFIG", "SET", "requirepass", password || "");
    this.password = password;
  }

  /**
   * One job update as the AI services make it: the hash ai:job:{id} first, then the event on
   * ai:job:{kind}:{id} (jobwire's snapshots rely on this order).
   */
  async jobUpdate(jobId, userId, { status, progress, kind = "progress", message, error, startTime, updateTime }) {
    const ts = updateTime || new Date().toISOString();
    const fields = ["status", status, "progress", String(progress), "userId", userId, "updateTime", ts];
    if (startTime) fields.push("startTime", startTime);
    if (message) fields.push("message", message);
    if (error) fields.push("error", error);
    await this.cmd("HSET", `ai:job:${jobId}`, ...fields);
    const payload = { eventType: kind === "complete" ? "job_completed" : kind === "error" ? "job_failed" : "job_status_update",
                      jobId, userId, status, progress, timestamp: ts };
    if (message) payload.message = message;
    if (error) payload.error = error;
    return this.cmd("PUBLISH", `ai:job:${kind}:${jobId}`, JSON.stringify(payload));
  }

  /** A whole job: pending, progress steps, then complete. */
  async runJob(jobId, userId, steps = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]) {
    for (const p of steps) {
      await this.jobUpdate(jobId, userId, { status: p === 0 ? "pending" : "processing", progress: p });
    }
    await this.jobUpdate(jobId, userId, { status: "completed", progress: 100, kind: "complete" });
  }

  async stop() {
    await stopProc(this.proc);
  }

  /** Kills redis-server hard: jobwire loses its subscription at once. */
  async kill() {
    await stopProc(this.proc, "SIGKILL");
  }
}

// ---- jobwire ---------------------------------------------------------------------------------

export class Jobwire {
  constructor(dir, redis, overrides = {}) {
    this.dir = dir;
    this.redis = redis;
    this.log = join(dir, "jobwire.log");
    this.bin = resolve(process.env.JOBWIRE_BIN || join(REPO, "build", "jobwire"));
    this.overrides = overrides;
    this.port = null;
  }

  /** Starts the daemon (on the same port as before when restarted) and waits until ready. */
  async start() {
    this.port ??= await freePort();
    const settings = {
      listen_address: "127.0.0.1", listen_port: this.port,
      redis_host: "127.0.0.1", redis_port: this.redis.port,
      dev_auth: "yes", web_root: join(REPO, "web"), log_level: "debug",
      ...this.overrides,
    };
    for (const [k, v] of Object.entries(settings)) if (v == null) delete settings[k];
    this.config = join(this.dir, "jobwire.conf");
    writeFileSync(this.config, "# written by tests/web/browser/harness.mjs\n" +
      Object.entries(settings).map(([k, v]) => `${k} ${v}`).join("\n") + "\n");
    // The daemon reads REDIS_* and JOBWIRE_* from the environment: keep the caller's out.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) =>
      !k.startsWith("JOBWIRE_") && !["REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_USERNAME", "REDIS_PASSWORD"].includes(k)));
    this.proc = startLogged(this.bin, ["--config", this.config], this.log, env);
    await this.waitStatus("/healthz", 200);
    await this.waitStatus("/readyz", 200);
    return this;
  }

  get baseUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  async waitStatus(path, status) {
    try {
      await waitFor(async () => {
        if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
          throw new Error(`jobwire exited (${this.proc.exitCode ?? this.proc.signalCode})`);
        }
        const res = await fetch(this.baseUrl + path, { signal: AbortSignal.timeout(2000) });
        return res.status === status;
      }, `GET ${path} == ${status}`);
    } catch (err) {
      err.message += `\n--- jobwire log ---\n${tail(this.log)}`;
      throw err;
    }
  }

  /** Kills the daemon hard (no goaway, no close frames): the page sees the link drop. */
  async kill() {
    await stopProc(this.proc, "SIGKILL");
  }

  async stop() {
    await stopProc(this.proc);
  }

  logTail(lines = 40) {
    return tail(this.log, lines);
  }

  /** The sum of a metric's samples over all its labels, from /metrics. */
  async metricSum(name) {
    const text = await (await fetch(this.baseUrl + "/metrics", { signal: AbortSignal.timeout(2000) })).text();
    let sum = 0;
    for (const line of text.split("\n")) {
      const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
      if (m && m[1] === name) sum += Number(m[3]);
    }
    return sum;
  }

  /** Waits until jobwire has taken in `n` job events in all (they are processed in order). */
  async waitEvents(n) {
    await waitFor(async () => (await this.metricSum("jobwire_events_received_total")) >= n,
      `jobwire received ${n} events`);
  }
}

// ---- tokens ----------------------------------------------------------------------------------

/** A random HS256 secret that fits a config line (jobwire wants at least 32 bytes). */
export function newSecret() {
  return randomBytes(36).toString("base64url");
}

/** An HS256 JWT signed with node's crypto (no JWT library needed for tests). */
export function signJwt(claims, secret) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = `${enc({ alg: "HS256", typ: "JWT" })}.${enc(claims)}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

// ---- chromium --------------------------------------------------------------------------------

/**
 * Launches Debian's chromium (never a downloaded browser) with a fresh profile directory.
 * Returns the playwright BrowserContext; close() also removes the profile.
 */
export async function launchBrowser() {
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(join(tmpdir(), "jobwire-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 700 },
    timeout: 20_000,
  });
  const close = context.close.bind(context);
  context.close = async () => {
    await close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  return context;
}

/**
 * Opens the dashboard in a new page and records the page's JavaScript errors and console
 * errors in page.problems (the tests assert it stays empty).
 */
export async function openDashboard(context, jobwire, query, { viewport } = {}) {
  const page = await context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  page.problems = [];
  page.on("pageerror", (err) => page.problems.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    // Chromium itself logs a refused WebSocket as a console error: expected while jobwire is
    // down, so those lines are not problems of the page.
    if (msg.type() === "error" && !/WebSocket connection to .* failed/.test(msg.text())) {
      page.problems.push(`console: ${msg.text()}`);
    }
  });
  await page.goto(`${jobwire.baseUrl}/?${query}`, { waitUntil: "domcontentloaded" });
  return page;
}

/** Saves a screenshot as a test artifact (tests/artifacts/web/NAME.png). */
export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** The selector of a job's row, optionally with attribute conditions. */
export function row(jobId, attrs = {}) {
  return `tr[data-job="${jobId}"]` + Object.entries(attrs).map(([k, v]) => `[data-${k}="${v}"]`).join("");
}

// ---- one test's stack ------------------------------------------------------------------------

/** Options of page waits: long enough for a loaded machine, short enough to fail fast. */
export const WAIT = { timeout: 10_000 };

/**
 * Runs body({ redis, jobwire, open, dir }) with a fresh redis-server and jobwire; on failure the
 * jobwire log tail is added to the error. Pages opened with open(query, options) are checked
 * for JavaScript errors and closed afterwards.
 */
export async function withStack(browser, name, body, overrides = {}) {
  const dir = workDir(name);
  const redis = await new Redis(dir).start();
  const jobwire = new Jobwire(dir, redis, overrides);
  const pages = [];
  try {
    await jobwire.start();
    const open = async (query, options) => {
      const page = await openDashboard(browser, jobwire, query, options);
      pages.push(page);
      return page;
    };
    await body({ redis, jobwire, open, dir });
    for (const page of pages) assert.deepEqual(page.problems, [], "the page logged errors");
  } catch (err) {
    err.message += `\n--- jobwire log (${name}) ---\n${jobwire.logTail()}`;
    throw err;
  } finally {
    for (const page of pages) await page.close().catch(() => {});
    await jobwire.stop();
    await redis.stop();
  }
}

/** Waits until the page is live and its scope subscription is in force on the server. */
export async function ready(page, scope = "user") {
  await page.waitForSelector('#link[data-state="live"]', WAIT);
  await page.waitForSelector(`body[data-following="${scope}"]`, WAIT);
}

/**
 * Waits until the page follows a running job as well as it can before an outage: against a
 * server without scope snapshots (body[data-follow-by-id="true"]) that is the job's own
 * subscription, in force on the server; otherwise the scope covers it already.
 */
export async function followed(page, jobId) {
  if ((await page.getAttribute("body", "data-follow-by-id")) === "true") {
    await page.waitForSelector(`tr[data-job="${jobId}"][data-followed="true"]`, WAIT);
  }
}

/** The job ids of the dashboard's rows, top to bottom. */
export function rowOrder(page) {
  return page.$$eval("#jobs tbody tr", (trs) => trs.map((tr) => tr.dataset.job));
}
