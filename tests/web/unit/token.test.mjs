// Token refresh driven by the server's expiresAt, logout through getToken, and wake().
// Run: node --test tests/web/unit/
import { test } from "node:test";
import assert from "node:assert/strict";
import { LoggedOut, tokenExpiry } from "../../../web/jobwire.js";
import { FakeServer, FakeClock, FakeWebSocket, fakeJwt, flush } from "./fakes.mjs";
import { makeClient, accept, lastState, detailsOf } from "./setup.mjs";

/** A token source handing out t1, t2, … with the lifetimes the test gives the server. */
function tokenSource(clock, server, lifetimeS = 600) {
  const src = { calls: 0, next: null };
  src.getToken = () => {
    if (src.next) return src.next();
    const t = `t${++src.calls}`;
    server.tokens[t] = { userId: "alice", expiresAt: Math.floor(clock.time / 1000) + lifetimeS };
    return t;
  };
  return src;
}

test("tokenExpiry reads a JWT's exp and nothing else", () => {
  assert.equal(tokenExpiry(fakeJwt({ exp: 1234 })), 1234);
  assert.equal(tokenExpiry(fakeJwt({ sub: "x" })), null);
  assert.equal(tokenExpiry("opaque"), null);
  assert.equal(tokenExpiry(null), null);
});

test("refresh at 80 % of the lifetime the welcome's expiresAt leaves, then from the ack's", async () => {
  const clock = new FakeClock();
  const server = new FakeServer({ tokens: {} });
  const src = tokenSource(clock, server, 600);
  const { client } = makeClient({ clock, client: { getToken: src.getToken } });
  client.connect();
  const ws = await server.accept();
  assert.equal(client.state, "live");
  assert.equal(client.expiresAt, Math.floor(clock.time / 1000) + 600);
  await clock.advance(480_000 - 1);
  assert.equal(ws.sentOf("refresh").length, 0, "not before 80 % of 600 s");
  await clock.advance(1);
  assert.deepEqual(ws.sentOf("refresh").map((m) => m.token), ["t2"]);
  await flush();
  // The ack says t2 expires 600 s after it was made, i.e. 600 s from now: next at +480 s.
  assert.equal(client.expiresAt, Math.floor(clock.time / 1000) + 600);
  await clock.advance(480_000 - 1);
  assert.equal(ws.sentOf("refresh").length, 1);
  await clock.advance(1);
  assert.equal(ws.sentOf("refresh").length, 2);
  assert.equal(client.state, "live");
  client.close();
});

test("the server's expiresAt wins over the token's own exp", async () => {
  const clock = new FakeClock();
  const nowS = Math.floor(clock.time / 1000);
  const jwt = fakeJwt({ exp: nowS + 3600 }); // the token says an hour…
  const server = new FakeServer({ tokens: { [jwt]: { userId: "alice", expiresAt: nowS + 100 } } }); // …the server 100 s
  const { client } = makeClient({ clock, client: { getToken: () => jwt } });
  client.connect();
  const ws = await server.accept();
  await clock.advance(80_000);
  assert.equal(ws.sentOf("refresh").length, 1);
  client.close();
});

test("servers without expiresAt: the JWT's exp plans the refresh", async () => {
  const clock = new FakeClock();
  const nowS = Math.floor(clock.time / 1000);
  const { client } = makeClient({ clock, client: { getToken: () => fakeJwt({ exp: nowS + 1000 }) } });
  client.connect();
  const ws = await accept();
  await clock.advance(799_999);
  assert.equal(ws.sentOf("refresh").length, 0);
  await clock.advance(1);
  assert.equal(ws.sentOf("refresh").length, 1);
  client.close();
});

test("never a tight loop: a token that is (or seems) already expired refreshes at most every minRefreshMs", async () => {
  const clock = new FakeClock();
  const server = new FakeServer({ tokens: {} });
  const src = tokenSource(clock, server, -30); // expiresAt 30 s in the past (a skewed clock)
  const { client } = makeClient({ clock, client: { getToken: src.getToken, minRefreshMs: 10_000 } });
  client.connect();
  const ws = await server.accept();
  await clock.advance(60_000);
  const n = ws.sentOf("refresh").length;
  assert.ok(n >= 5 && n <= 6, `${n} refreshes in 60 s`);
  client.close();
});

test("a refused refresh keeps the connection and retries at half the remaining time", async () => {
  const clock = new FakeClock();
  const server = new FakeServer({ tokens: {} });
  const src = tokenSource(clock, server, 1000);
  const { client, events } = makeClient({ clock, client: { getToken: src.getToken } });
  client.connect();
  const ws = await server.accept();
  const p = client.refresh("not-a-valid-token");
  await assert.rejects(p, (e) => e.code === "bad_token");
  assert.equal(client.state, "live");
  assert.ok(detailsOf(events, "error").some((e) => e.code === "bad_token" && e.request === "auth"));
  await clock.advance(500_000 - 1); // half of the 1000 s left
  assert.equal(ws.sentOf("refresh").length, 1);
  await clock.advance(1);
  assert.equal(ws.sentOf("refresh").length, 2);
  assert.equal(ws.sentOf("refresh")[1].token, "t2");
  client.close();
});

test("getToken failing during a refresh is reported and retried; the connection stays", async () => {
  const clock = new FakeClock();
  const server = new FakeServer({ tokens: {} });
  const src = tokenSource(clock, server, 100);
  const { client, events } = makeClient({ clock, client: { getToken: src.getToken } });
  client.connect();
  const ws = await server.accept();
  src.next = () => Promise.reject(new Error("token endpoint down"));
  await clock.advance(80_000);
  assert.ok(detailsOf(events, "error").some((e) => e.code === "refresh_failed"));
  assert.equal(client.state, "live");
  src.next = null;
  await clock.advance(10_000); // the retry: max(minRefreshMs, 20 s left / 2)
  assert.equal(ws.sentOf("refresh").length, 1);
  client.close();
});

test("getToken resolving to null on connect: logged out, stopped, never retried", async () => {
  let calls = 0;
  const { client, clock, events } = makeClient({ client: { getToken: async () => (calls++, null) } });
  client.connect();
  const sub = client.subscribe({ scope: "user" }).catch((e) => e);
  await flush();
  assert.equal(client.state, "stopped");
  assert.equal(lastState(events).loggedOut, true);
  assert.deepEqual(detailsOf(events, "loggedout"), [{ reason: "getToken returned no token" }]);
  assert.equal((await sub).code, "stopped", "a waiting subscribe is rejected");
  assert.equal(FakeWebSocket.instances.length, 0, "no socket was opened");
  await clock.advance(3_600_000);
  assert.equal(calls, 1, "getToken is not asked again");
  assert.equal(clock.pending().length, 0, "no timer left");
});

test("getToken throwing LoggedOut at a refresh: the socket closes, jobs are forgotten, no reconnect", async () => {
  const clock = new FakeClock();
  const server = new FakeServer({ tokens: {} });
  const src = tokenSource(clock, server, 100);
  const { client, events } = makeClient({ clock, client: { getToken: src.getToken } });
  client.connect();
  client.subscribe({ scope: "user" });
  const ws = await server.accept();
  server.publish("j1", "progress", { progress: 5 });
  await flush();
  assert.equal(client.jobs.size, 1);
  src.next = () => { throw new LoggedOut("signed out in another tab"); };
  await clock.advance(80_000);
  assert.equal(client.state, "stopped");
  assert.deepEqual(ws.closedWith, [1000, "logged out"]);
  assert.equal(detailsOf(events, "loggedout").length, 1);
  assert.equal(client.jobs.size, 0, "the logged-out user's jobs are gone");
  assert.equal(client.lastEventId, null);
  await clock.advance(3_600_000);
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.equal(src.calls, 1);
});

test("4401 (token expired): a new token at once; getToken null then means logged out", async () => {
  const clock = new FakeClock();
  const server = new FakeServer({ tokens: {} });
  const src = tokenSource(clock, server, 3600);
  const { client, events } = makeClient({ clock, client: { getToken: src.getToken } });
  client.connect();
  await server.accept();
  await clock.advance(5_000);
  server.expireToken();
  assert.equal(lastState(events).delayMs, 0);
  await clock.advance(0);
  const ws2 = await server.accept();
  assert.equal(ws2.sent[0].token, "t2");
  assert.equal(client.state, "live");
  await clock.advance(5_000);
  src.next = () => null;
  server.expireToken();
  await clock.advance(0);
  await flush();
  assert.equal(client.state, "stopped");
  assert.equal(detailsOf(events, "loggedout").length, 1);
  assert.equal(FakeWebSocket.instances.length, 2);
});

test("wake(): a waiting reconnect happens now; a live link is checked with a ping", async () => {
  const server = new FakeServer();
  const { client, clock, events } = makeClient({
    client: { reconnect: { initialMs: 60_000, maxMs: 60_000 }, pongTimeoutMs: 4000 },
  });
  client.connect();
  await server.accept();
  server.drop(1006);
  assert.equal(client.state, "reconnecting");
  assert.ok(lastState(events).delayMs > 50_000);
  client.wake(); // back in the foreground: no need to wait a minute
  const ws = await server.accept();
  assert.equal(client.state, "live");
  assert.equal(FakeWebSocket.instances.length, 2);

  client.wake(); // live: the ping is answered, nothing happens
  await flush();
  assert.equal(ws.sentOf("ping").length, 1);
  await clock.advance(5000);
  assert.equal(client.state, "live");
  // A socket that died silently in the background: the ping goes unanswered.
  ws.peer = null;
  client.wake();
  await clock.advance(3999);
  assert.equal(client.state, "live");
  await clock.advance(1);
  assert.deepEqual(ws.closedWith, [4000, "ping timeout"]);
  assert.equal(client.state, "reconnecting");
  client.close();
});
