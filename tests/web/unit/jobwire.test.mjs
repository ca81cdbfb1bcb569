// Unit tests for web/jobwire.js with a fake WebSocket, a manual clock and a fake network.
// Run: node --test tests/web/unit/
import { test } from "node:test";
import assert from "node:assert/strict";
import { JobwireClient, backoffDelay, DEFAULT_RECONNECT } from "../../../web/jobwire.js";
import { FakeWebSocket, FakeNetwork, flush } from "./fakes.mjs";
import { makeClient, accept, lastState, URL_WS } from "./setup.mjs";

// ---- backoff ---------------------------------------------------------------------------------

test("backoffDelay: full jitter under an exponential ceiling capped at maxMs", () => {
  const cfg = { initialMs: 100, maxMs: 5000, multiplier: 2 };
  const ceilings = [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000];
  ceilings.forEach((ceiling, attempt) => {
    assert.equal(backoffDelay(attempt, cfg, () => 0), 0, "jitter reaches down to 0");
    const top = backoffDelay(attempt, cfg, () => 0.9999);
    assert.ok(top <= ceiling && top >= ceiling * 0.99, `attempt ${attempt}: ${top} vs ${ceiling}`);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(attempt, cfg);
      assert.ok(d >= 0 && d < ceiling, `attempt ${attempt}: ${d} outside [0, ${ceiling})`);
    }
  });
  // The delays spread over the range (full jitter), they do not cluster at the ceiling.
  const many = Array.from({ length: 400 }, () => backoffDelay(6, cfg));
  assert.ok(many.some((d) => d < 1500) && many.some((d) => d > 3500));
});

test("failed attempts back off exponentially within the configured bounds", async () => {
  const { client, clock, events } = makeClient({
    client: { reconnect: { initialMs: 200, maxMs: 3000, multiplier: 3, resetAfterMs: 5000 } },
  });
  client.connect();
  const delays = [];
  for (let i = 0; i < 6; i++) {
    await flush();
    FakeWebSocket.last().serverClose(1006); // refused before any welcome
    const st = lastState(events);
    assert.equal(st.state, "reconnecting");
    delays.push(st.delayMs);
    assert.equal(client.retryInMs, st.delayMs);
    const before = FakeWebSocket.instances.length;
    await clock.advance(st.delayMs - 1);
    assert.equal(FakeWebSocket.instances.length, before, "no attempt before the delay");
    await clock.advance(1);
    assert.equal(FakeWebSocket.instances.length, before + 1, "one attempt after the delay");
  }
  // random() = 0.999: each delay is just under its ceiling 200, 600, 1800, 3000, 3000, 3000.
  const ceilings = [200, 600, 1800, 3000, 3000, 3000];
  delays.forEach((d, i) => assert.ok(d <= ceilings[i] && d >= ceilings[i] * 0.99, `${delays}`));
  client.close();
});

test("the backoff resets after a connection stays up for resetAfterMs, not before", async () => {
  const { client, clock, events } = makeClient({
    client: { reconnect: { initialMs: 100, maxMs: 10000, resetAfterMs: 4000 } },
  });
  client.connect();
  for (let i = 0; i < 4; i++) { // attempts 0..3 fail: the next ceiling is 1600
    await flush();
    FakeWebSocket.last().serverClose(1006);
    await clock.advance(lastState(events).delayMs);
  }
  let ws = await accept();
  await clock.advance(3999); // up, but not long enough
  ws.serverClose(1006);
  let d = lastState(events).delayMs;
  assert.ok(d > 800 && d <= 1600, `short connection keeps growing the backoff: ${d}`);
  await clock.advance(d);
  ws = await accept();
  await clock.advance(4000); // stable
  ws.serverClose(1006);
  d = lastState(events).delayMs;
  assert.ok(d <= 100, `stable connection resets the backoff: ${d}`);
  client.close();
});

// ---- subscriptions --------------------------------------------------------------------------

test("every subscription is sent again after a reconnect; unsubscribed ones are not", async () => {
  const { client, clock, events } = makeClient();
  client.connect();
  let ws = await accept();
  const pScope = client.subscribe({ scope: "user" });
  const pJobs = client.subscribe({ jobs: ["j1", "j2", "j3"], kinds: ["progress", "complete"] });
  const pOne = client.subscribe("j9");
  ws.ackAll();
  await Promise.all([pScope, pJobs, pOne]);
  const pUnsub = client.unsubscribe({ jobs: ["j2"] });
  ws.ackAll();
  assert.equal((await pUnsub).op, "unsubscribe");
  assert.deepEqual(Object.keys(client.subscriptions.jobs).sort(), ["j1", "j3", "j9"]);

  ws.serverClose(4008); // slow consumer: reconnect and resubscribe
  assert.equal(lastState(events).state, "reconnecting");
  await clock.advance(lastState(events).delayMs);
  ws = await accept();
  const subs = ws.sentOf("subscribe");
  assert.deepEqual(subs.find((m) => m.scope).scope, "user");
  const jobSubs = subs.filter((m) => m.jobs);
  const byKinds = Object.fromEntries(jobSubs.map((m) => [String(m.kinds || "*"), m.jobs.sort()]));
  assert.deepEqual(byKinds, { "complete,progress": ["j1", "j3"], "*": ["j9"] });
  // The server answers with acks and fresh snapshots; snapshots reach the application.
  ws.ackAll();
  ws.receive({ type: "snapshot", jobId: "j1", source: "hash", state: { status: "completed" }, seq: 1 });
  await flush();
  const snap = events.find((e) => e.type === "snapshot");
  assert.equal(snap.detail.state.status, "completed");
  client.close();
});

test("a subscribe made while disconnected is sent after the welcome and resolves then", async () => {
  const { client, clock, events } = makeClient();
  client.connect();
  let ws = await accept();
  ws.serverClose(1006);
  const p = client.subscribe({ jobs: ["late"] });
  let settled = false;
  p.then(() => (settled = true));
  await clock.advance(lastState(events).delayMs);
  ws = await accept();
  assert.deepEqual(ws.sentOf("subscribe")[0].jobs, ["late"]);
  assert.equal(settled, false);
  ws.ackAll();
  await flush();
  assert.equal(settled, true);
  client.close();
});

test("a refused subscribe rejects with the server's code and is not restored", async () => {
  const { client, clock, events } = makeClient();
  client.connect();
  let ws = await accept();
  const p = client.subscribe({ scope: "all" });
  const req = ws.sentOf("subscribe")[0];
  ws.receive({ type: "error", id: req.id, code: "forbidden", message: "needs admin" });
  await assert.rejects(p, (err) => err.code === "forbidden");
  assert.deepEqual(client.subscriptions.scopes, {});
  assert.ok(events.some((e) => e.type === "error" && e.detail.code === "forbidden"));
  ws.serverClose(1006);
  await clock.advance(lastState(events).delayMs);
  ws = await accept();
  assert.equal(ws.sentOf("subscribe").length, 0);
  client.close();
});

// ---- server hints and close codes ------------------------------------------------------------

test("goaway.reconnectAfterMs decides when to come back after close 1001", async () => {
  const { client, clock, events } = makeClient();
  client.connect();
  const ws = await accept();
  ws.receive({ type: "goaway", reconnectAfterMs: 2350 });
  ws.serverClose(1001, "shutting down");
  const st = lastState(events);
  assert.equal(st.state, "reconnecting");
  assert.equal(st.delayMs, 2350);
  assert.equal(st.goaway, true);
  await clock.advance(2349);
  assert.equal(FakeWebSocket.instances.length, 1);
  await clock.advance(1);
  assert.equal(FakeWebSocket.instances.length, 2);
  client.close();
});

test("4401: getToken is called again and the new token goes in the auth message", async () => {
  let n = 0;
  const getToken = async () => `token-${++n}`;
  const { client, clock, events } = makeClient({ client: { getToken } });
  client.connect();
  await flush();
  let ws = FakeWebSocket.last();
  assert.equal(ws.url, URL_WS, "no token in the URL");
  ws.open();
  assert.deepEqual(ws.sent[0], { type: "auth", id: "auth", token: "token-1" });
  ws.welcome();
  await clock.advance(60_000); // a long-lived connection whose token then expires
  ws.serverClose(4401, "token expired");
  assert.equal(lastState(events).state, "reconnecting");
  assert.equal(lastState(events).delayMs, 0, "an expired token is replaced at once");
  await clock.advance(0);
  ws = FakeWebSocket.last();
  assert.equal(FakeWebSocket.instances.length, 2);
  ws.open();
  assert.equal(n, 2);
  assert.deepEqual(ws.sent[0], { type: "auth", id: "auth", token: "token-2" });
  assert.ok(!ws.url.includes("token"));
  // Refused again before any welcome: now it backs off instead of spinning.
  ws.serverClose(4401, "bad_signature");
  assert.ok(lastState(events).delayMs > 0);
  client.close();
});

test("4401 with a fixed token stops (the same token would be refused again)", async () => {
  const { client, clock, events } = makeClient({ client: { token: "fixed" } });
  client.connect();
  const ws = await accept();
  ws.serverClose(4401, "token expired");
  assert.equal(client.state, "stopped");
  await clock.advance(120_000);
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.ok(events.some((e) => e.type === "error" && e.detail.code === "unauthenticated"));
});

test("4403 stops and reports; no reconnect", async () => {
  const { client, clock, events } = makeClient({ client: { getToken: () => "t" } });
  client.connect();
  const ws = await accept();
  ws.serverClose(4403, "token revoked");
  assert.equal(client.state, "stopped");
  assert.ok(events.some((e) => e.type === "error" && e.detail.code === "forbidden"));
  await clock.advance(600_000);
  assert.equal(FakeWebSocket.instances.length, 1);
});

test("4429 and 1013 back off longer than a plain failure", async () => {
  for (const code of [4429, 1013]) {
    const { client, events } = makeClient({
      client: { reconnect: { initialMs: 100, throttleMs: 7000 } },
    });
    client.connect();
    const ws = await accept();
    ws.serverClose(code);
    const st = lastState(events);
    assert.equal(st.throttled, true);
    assert.ok(st.delayMs >= 7000 && st.delayMs <= 7100, `${code}: ${st.delayMs}`);
    client.close();
  }
});

// ---- token refresh ---------------------------------------------------------------------------

test("no refresh is planned for a token without a readable exp", async () => {
  const { client, clock } = makeClient({ client: { getToken: () => "opaque-token" } });
  client.connect();
  const ws = await accept();
  await clock.advance(10 * 3600_000);
  assert.equal(ws.sentOf("refresh").length, 0);
  client.close();
});

// ---- network awareness -----------------------------------------------------------------------

test("offline: no attempts while offline; online reconnects at once", async () => {
  const { client, clock, network, events } = makeClient();
  client.connect();
  const ws = await accept();
  network.set(false); // a live socket is left alone
  assert.equal(client.state, "live");
  ws.serverClose(1006);
  assert.equal(client.state, "offline");
  await clock.advance(600_000);
  assert.equal(FakeWebSocket.instances.length, 1, "no spinning while offline");
  assert.equal(clock.pending().length, 0, "no timer left running");
  network.set(true);
  await flush();
  assert.equal(FakeWebSocket.instances.length, 2, "reconnects as soon as it is back");
  assert.equal(lastState(events).state, "connecting");
  client.close();
});

test("going offline during a backoff wait cancels it; connect() while offline waits", async () => {
  const network = new FakeNetwork(false);
  const { client, clock } = makeClient({ network });
  client.connect();
  assert.equal(client.state, "offline");
  assert.equal(FakeWebSocket.instances.length, 0);
  network.set(true);
  await flush();
  FakeWebSocket.last().serverClose(1006);
  assert.equal(client.state, "reconnecting");
  network.set(false);
  assert.equal(client.state, "offline");
  await clock.advance(100_000);
  assert.equal(FakeWebSocket.instances.length, 1);
  client.close();
});

// ---- the rest of the protocol ----------------------------------------------------------------

test("dev mode puts user and admin in the URL and sends no auth message", async () => {
  const { client } = makeClient({ client: { devUser: "ops team", devAdmin: true, token: "ignored" } });
  client.connect();
  const ws = await accept("ops team", true);
  assert.equal(ws.url, URL_WS + "?user=ops%20team&admin=1");
  assert.equal(ws.sentOf("auth").length, 0);
  assert.equal(client.admin, true);
  client.close();
});

test("events, snapshots, status and welcome reach callbacks and EventTarget listeners", async () => {
  const seen = [];
  const { client, events } = makeClient({
    client: { onEvent: (m) => seen.push(["cb-event", m.seq]), onLive: (s) => seen.push(["cb-live", s.live]) },
  });
  const off = client.on("event", (m) => seen.push(["on-event", m.jobId]));
  client.connect();
  const ws = await accept();
  assert.ok(events.some((e) => e.type === "welcome" && e.detail.userId === "alice"));
  ws.receive({ type: "event", kind: "progress", jobId: "j1", payload: { progress: 5 }, seq: 1 });
  ws.receive({ type: "status", live: false, reason: "redis unavailable" });
  assert.equal(client.state, "paused");
  assert.equal(lastState(events).reason, "redis unavailable");
  ws.receive({ type: "status", live: true });
  assert.equal(client.state, "live");
  off();
  ws.receive({ type: "event", kind: "progress", jobId: "j1", payload: { progress: 6 }, seq: 2 });
  assert.deepEqual(seen, [["cb-event", 1], ["on-event", "j1"], ["cb-live", false], ["cb-live", true], ["cb-event", 2]]);
  assert.equal(client.lastSeq, 2);
  ws.receive({ type: "future-type", x: 1 }); // ignored
  client.close();
  assert.equal(client.state, "stopped");
});

test("a silent link is detected by the ping timeout and reconnected", async () => {
  const { client, clock, events } = makeClient({ client: { pingIntervalMs: 20_000, pongTimeoutMs: 5_000 } });
  client.connect();
  const ws = await accept();
  await clock.advance(20_000);
  assert.equal(ws.sentOf("ping").length, 1);
  ws.receive({ type: "pong" });
  await clock.advance(20_000);
  assert.equal(ws.sentOf("ping").length, 2);
  await clock.advance(5_000); // no answer this time
  assert.deepEqual(ws.closedWith, [4000, "ping timeout"]);
  assert.equal(lastState(events).state, "reconnecting");
  client.close();
});

test("a server that never sends welcome counts as a failed attempt", async () => {
  const { client, clock, events } = makeClient({ client: { welcomeTimeoutMs: 3000 } });
  client.connect();
  await flush();
  FakeWebSocket.last().open();
  await clock.advance(3000);
  assert.equal(lastState(events).state, "reconnecting");
  client.close();
});

test("defaults match the documented values", () => {
  assert.deepEqual({ ...DEFAULT_RECONNECT },
    { initialMs: 500, maxMs: 30000, multiplier: 2, resetAfterMs: 10000, throttleMs: 5000 });
});

test("works without EventTarget, Event, CustomEvent, location and navigator (React Native-style)", async () => {
  const { execFile } = await import("node:child_process");
  const { promisify } = await import("node:util");
  const script = `
    for (const name of ["EventTarget", "Event", "CustomEvent", "WebSocket", "location", "navigator"]) {
      delete globalThis[name];
    }
    const { JobwireClient } = await import(${JSON.stringify(new URL("../../../web/jobwire.js", import.meta.url).href)});
    const { FakeWebSocket } = await import(${JSON.stringify(new URL("./fakes.mjs", import.meta.url).href)});
    const got = [];
    const c = new JobwireClient({ url: "ws://x/ws", WebSocket: FakeWebSocket, onEvent: (m) => got.push("cb:" + m.seq) });
    c.addEventListener("event", (e) => got.push("ev:" + e.detail.seq));
    c.connect();
    await new Promise((r) => setTimeout(r, 10));
    const ws = FakeWebSocket.last();
    ws.open(); ws.welcome();
    ws.receive({ type: "event", kind: "progress", jobId: "j", payload: {}, seq: 1 });
    c.close();
    console.log(JSON.stringify({ got, state: c.state, hasET: typeof globalThis.EventTarget }));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script]);
  assert.deepEqual(JSON.parse(stdout), { got: ["cb:1", "ev:1"], state: "stopped", hasET: "undefined" });
});
