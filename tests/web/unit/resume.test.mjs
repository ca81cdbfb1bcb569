// Resume, per-job state, staleness, duplicates and seq gaps of web/jobwire.js, against
// FakeServer (the protocol with the additions of the protocol-changes spec).
// Run: node --test tests/web/unit/
import { test } from "node:test";
import assert from "node:assert/strict";
import { compareEventIds } from "../../../web/jobwire.js";
import { FakeServer, FakeWebSocket, flush } from "./fakes.mjs";
import { makeClient, lastState, detailsOf } from "./setup.mjs";

/** Connects a client to a server, subscribes to the user scope, and waits for it to be in force. */
async function live(server, opts = {}) {
  const ctx = makeClient(opts);
  ctx.client.connect();
  const sub = ctx.client.subscribe({ scope: "user" });
  await server.accept(opts.accept);
  await sub;
  await flush();
  return ctx;
}

/** Waits out the backoff and lets the server accept the next attempt. */
async function reconnect(ctx, server, opts) {
  await ctx.clock.advance(lastState(ctx.events).delayMs);
  return server.accept(opts);
}

const staleOf = (client) => Object.fromEntries([...client.jobs].map(([id, j]) => [id, j.stale]));

test("compareEventIds orders ids of one epoch exactly (also past 2^53) and refuses other epochs", () => {
  assert.equal(compareEventIds("0a0b0c0d-10", "0a0b0c0d-9"), 1);
  assert.equal(compareEventIds("0a0b0c0d-9", "0a0b0c0d-10"), -1);
  assert.equal(compareEventIds("0a0b0c0d-7", "0a0b0c0d-007"), 0);
  assert.equal(compareEventIds("0a0b0c0d-90071992547409931", "0a0b0c0d-90071992547409930"), 1);
  assert.equal(compareEventIds("0a0b0c0d-5", "ffffffff-1"), null, "other process: no order");
  assert.equal(compareEventIds("not-an-id", "0a0b0c0d-1"), null);
  assert.equal(compareEventIds(null, "0a0b0c0d-1"), null);
});

test("a reconnect resumes from the last eventId: missed events are replayed, no snapshots", async () => {
  const server = new FakeServer();
  const ctx = await live(server);
  const { client, events } = ctx;
  server.publish("j1", "progress", { status: "processing", progress: 10 });
  server.publish("j1", "progress", { status: "processing", progress: 20 });
  await flush();
  assert.equal(client.jobs.get("j1").progress, 20);
  const seenBefore = client.lastEventId;
  assert.equal(seenBefore, `${server.epoch}-2`);

  server.drop(1006);
  assert.equal(client.jobs.get("j1").stale, true, "stale while reconnecting");
  assert.equal(client.synced, false);
  // Meanwhile: j1 goes on, j2 starts and finishes.
  server.publish("j1", "progress", { status: "processing", progress: 50 });
  server.publish("j2", "progress", { status: "processing", progress: 5 });
  server.publish("j2", "complete", { status: "completed", progress: 100 });
  const snapshotsBefore = detailsOf(events, "snapshot").length;

  const ws = await reconnect(ctx, server);
  const resub = ws.sentOf("subscribe");
  assert.equal(resub.length, 1);
  assert.equal(resub[0].scope, "user");
  assert.equal(resub[0].lastEventId, seenBefore, "the re-sent subscribe carries lastEventId");
  await flush();
  assert.equal(detailsOf(events, "snapshot").length, snapshotsBefore, "resumed: no snapshots");
  assert.equal(client.jobs.get("j1").progress, 50);
  const j2 = client.jobs.get("j2");
  assert.equal(j2.status, "completed");
  assert.equal(j2.terminal, true);
  assert.deepEqual(staleOf(client), { j1: false, j2: false });
  assert.equal(client.synced, true);
  assert.equal(client.stats.resumed, 1);
  assert.equal(client.lastEventId, `${server.epoch}-5`);
  client.close();
});

test("resumed:false: snapshots follow; jobs stay stale until every announced snapshot arrived", async () => {
  const server = new FakeServer({ resume: false });
  const ctx = await live(server);
  const { client, events } = ctx;
  server.publish("j1", "progress", { status: "processing", progress: 10 });
  server.publish("j2", "progress", { status: "processing", progress: 30 });
  server.publish("j3", "progress", { status: "processing", progress: 60 });
  await flush();
  server.drop(1006);
  assert.deepEqual(staleOf(client), { j1: true, j2: true, j3: true });
  server.publish("j1", "complete", { status: "completed", progress: 100 }); // missed

  server.holdSnapshots = true;
  const ws = await reconnect(ctx, server);
  assert.equal(ws.sentOf("subscribe")[0].lastEventId, `${server.epoch}-3`);
  assert.equal(server.held.length, 3, "the ack announced three snapshots");
  assert.deepEqual(staleOf(client), { j1: true, j2: true, j3: true }, "stale until the snapshots come");
  assert.equal(client.synced, false);

  server.releaseSnapshots(1); // the most recent job first: j1
  await flush();
  assert.equal(client.jobs.get("j1").status, "completed", "the snapshot brings the missed completion");
  assert.deepEqual(staleOf(client), { j1: false, j2: true, j3: true });
  assert.equal(client.synced, false, "two announced snapshots are still missing");
  server.releaseSnapshots();
  await flush();
  assert.deepEqual(staleOf(client), { j1: false, j2: false, j3: false });
  assert.equal(client.synced, true);
  assert.deepEqual(detailsOf(events, "sync").map((s) => s.synced), [true, false, true]);
  assert.equal(client.stats.resumed, 0);
  client.close();
});

test("a restarted server (new epoch): old lastEventId sent, resumed:false, new-epoch events count", async () => {
  const server = new FakeServer({ epoch: "aaaaaaaa" });
  const ctx = await live(server);
  const { client } = ctx;
  for (let p = 1; p <= 5; p++) server.publish("j1", "progress", { status: "processing", progress: p * 10 });
  await flush();
  assert.equal(client.lastEventId, "aaaaaaaa-5");
  server.restart("bbbbbbbb"); // counter starts again at 0
  server.publish("j1", "progress", { status: "processing", progress: 70 }); // nobody connected: state only
  const ws = await reconnect(ctx, server);
  assert.equal(ws.sentOf("subscribe")[0].lastEventId, "aaaaaaaa-5");
  await flush();
  assert.equal(client.jobs.get("j1").progress, 70, "snapshot from the new process");
  assert.equal(client.jobs.get("j1").stale, false);
  server.publish("j1", "progress", { status: "processing", progress: 80 }); // bbbbbbbb-2 < 5 but newer
  await flush();
  assert.equal(client.jobs.get("j1").progress, 80, "an event of the new epoch is not a duplicate");
  assert.equal(client.lastEventId, "bbbbbbbb-2");
  assert.equal(client.stats.duplicates, 0);
  client.close();
});

test("duplicate and older events are dropped by eventId; a snapshot covers the events it contains", async () => {
  const { client, events } = makeClient();
  client.connect();
  await flush();
  const ws = FakeWebSocket.last();
  ws.open();
  ws.receive({ type: "welcome", protocol: 1, connectionId: "c1", userId: "alice", admin: false, epoch: "0000000e" });
  const ev = (n, progress, seq, jobId = "j1") => ws.receive({ type: "event", kind: "progress", jobId, userId: "alice",
    channel: `ai:job:progress:${jobId}`, payload: { progress }, eventId: `0000000e-${n}`, seq });
  ev(5, 50, 1);
  ev(5, 51, 2); // the same id again
  ev(4, 40, 3); // older
  assert.equal(client.jobs.get("j1").progress, 50);
  assert.equal(client.stats.duplicates, 2);
  assert.equal(detailsOf(events, "event").length, 1, "duplicates are not passed on");
  // A snapshot at position 10 contains j1's events up to 10; an event 9 of j1 is old news.
  ws.receive({ type: "snapshot", jobId: "j1", userId: "alice", source: "hash",
               state: { status: "processing", progress: "90" }, eventId: "0000000e-10", seq: 4 });
  assert.equal(client.jobs.get("j1").progress, 90);
  ev(9, 89, 5, "j1");
  assert.equal(client.jobs.get("j1").progress, 90, "contained in the snapshot");
  ev(9, 15, 6, "j2"); // another job: 9 is after the last *event* (5), so it is new
  assert.equal(client.jobs.get("j2").progress, 15);
  ev(11, 95, 7, "j1");
  assert.equal(client.jobs.get("j1").progress, 95);
  assert.equal(client.stats.duplicates, 3);
  assert.equal(client.stats.gaps, 0, "dropped duplicates still count in seq: no false gap");
  // A snapshot older than what the job holds does not roll it back.
  ws.receive({ type: "snapshot", jobId: "j1", source: "hash", state: { progress: "70" }, eventId: "0000000e-8", seq: 8 });
  assert.equal(client.jobs.get("j1").progress, 95);
  client.close();
});

test("seq gaps (conflation) are reported with an event and counted", async () => {
  const server = new FakeServer();
  const { client, events } = await live(server);
  server.publish("j1", "progress", { progress: 10 });
  server.conflate(3); // three progress frames superseded under back-pressure
  server.publish("j1", "progress", { progress: 60 });
  server.publish("j1", "progress", { progress: 70 });
  await flush();
  assert.deepEqual(detailsOf(events, "gap"), [{ after: 1, seq: 5, missed: 3, jobId: "j1" }]);
  assert.equal(client.stats.gaps, 1);
  assert.equal(client.stats.missed, 3);
  assert.equal(client.jobs.get("j1").progress, 70, "the newest progress still arrives");
  assert.equal(client.lastSeq, 6);
  client.close();
});

test("events of user channels (no jobId) pass through as events and make no job", async () => {
  const server = new FakeServer();
  const { client, events } = await live(server);
  server.publishUser("alice", "recommendation", { items: ["a", "b"] });
  server.publish("j1", "progress", { progress: 10 });
  await flush();
  const got = detailsOf(events, "event");
  assert.equal(got.length, 2);
  assert.equal(got[0].kind, "recommendation");
  assert.equal(got[0].jobId, undefined);
  assert.deepEqual(got[0].payload, { items: ["a", "b"] });
  assert.deepEqual([...client.jobs.keys()], ["j1"]);
  assert.equal(client.lastEventId, `${server.epoch}-2`);
  client.close();
});

test("a scope subscribe lists the recent jobs from its snapshots (state fields made usable)", async () => {
  const server = new FakeServer();
  const t0 = Date.parse("2026-01-01T10:00:00Z");
  const iso = (s) => new Date(t0 + s * 1000).toISOString();
  server.publish("old", "complete", {}, { state: { status: "completed", progress: 100, startTime: iso(0),
    updateTime: iso(90), message: "done" } });
  server.publish("mid", "error", {}, { state: { status: "failed", progress: 40, startTime: iso(100),
    updateTime: iso(130), error: "model timeout" } });
  server.publish("new", "progress", {}, { state: { status: "processing", progress: 55, startTime: iso(200),
    updateTime: iso(230) } });
  server.publish("bobs", "progress", {}, { userId: "bob", state: { status: "processing", progress: 1 } });
  const { client, events } = await live(server);
  const acks = server.conn.ws.sentOf("subscribe");
  assert.equal(acks.length, 1);
  assert.equal(acks[0].lastEventId, undefined, "a first subscribe does not resume");
  assert.deepEqual([...client.jobs.keys()].sort(), ["mid", "new", "old"], "bob's job is not listed");
  const old = client.jobs.get("old");
  assert.equal(old.status, "completed");
  assert.equal(old.progress, 100, "hash strings become numbers");
  assert.equal(old.terminal, true);
  assert.equal(old.startedAt, t0);
  assert.equal(old.updatedAt, t0 + 90_000);
  assert.equal(old.finishedAt, t0 + 90_000);
  assert.equal(old.message, "done");
  assert.equal(old.data.message, "done");
  assert.equal(client.jobs.get("mid").error, "model timeout");
  const running = client.jobs.get("new");
  assert.equal(running.terminal, false);
  assert.equal(running.finishedAt, null);
  assert.equal(running.stale, false);
  assert.ok(Object.isFrozen(running));
  assert.equal(client.synced, true);
  assert.ok(detailsOf(events, "jobs").length >= 1);
  client.close();
});

test("status live:false marks every job stale; the resync after live:true makes them fresh", async () => {
  const server = new FakeServer();
  const ctx = await live(server);
  const { client } = ctx;
  const subJob = client.subscribe({ jobs: ["watched"] });
  await flush();
  await subJob;
  server.publish("watched", "progress", { progress: 10 });
  server.publish("other", "progress", { progress: 20 });
  await flush();
  server.redisDown();
  assert.equal(client.state, "paused");
  assert.deepEqual(staleOf(client), { watched: true, other: true });
  server.publish("watched", "complete", { status: "completed" }); // lost, but in "Redis"
  server.holdSnapshots = true;
  server.redisBack();
  assert.equal(client.state, "live");
  assert.deepEqual(staleOf(client), { watched: true, other: true }, "live again, resync not done");
  server.releaseSnapshots(1); // the job subscription's snapshot
  await flush();
  assert.equal(client.jobs.get("watched").status, "completed");
  assert.equal(client.jobs.get("watched").stale, false);
  // The client expected one snapshot per job subscription; with that in, the round is over.
  assert.equal(client.jobs.get("other").stale, false);
  assert.equal(client.synced, true);
  server.releaseSnapshots();
  await flush();
  client.close();
});

test("a server whose Redis is down at connect (welcome live:false): paused, stale until live:true", async () => {
  const server = new FakeServer();
  server.publish("j1", "progress", { status: "processing", progress: 10 });
  server.redisUp = false;
  const { client } = await live(server);
  assert.equal(client.state, "paused");
  assert.equal(client.live, false);
  assert.equal(client.jobs.get("j1")?.stale, true, "an unavailable snapshot does not make it fresh");
  assert.equal(client.jobs.get("j1").unavailable, true);
  assert.equal(client.synced, false);
  server.redisBack();
  await flush();
  assert.equal(client.state, "live");
  assert.equal(client.jobs.get("j1").progress, 10);
  assert.equal(client.jobs.get("j1").stale, false);
  assert.equal(client.jobs.get("j1").unavailable, false);
  assert.equal(client.synced, true);
  client.close();
});

test("with a server before eventIds (legacy): job snapshots resync, no lastEventId, no duplicates", async () => {
  const server = new FakeServer({ legacy: true });
  const ctx = await live(server);
  const { client } = ctx;
  await client.subscribe({ jobs: ["j1"] });
  server.publish("j1", "progress", { progress: 10 });
  server.publish("j2", "progress", { progress: 20 }); // scope only
  await flush();
  assert.equal(client.lastEventId, null);
  server.drop(1006);
  server.publish("j1", "complete", { status: "completed" });
  const ws = await reconnect(ctx, server);
  assert.ok(ws.sentOf("subscribe").every((m) => m.lastEventId === undefined));
  await flush();
  assert.equal(client.jobs.get("j1").status, "completed");
  // The scope ack announced no snapshots: the round ends with j1's, j2 is fresh too.
  assert.deepEqual(staleOf(client), { j1: false, j2: false });
  assert.equal(client.synced, true);
  client.close();
});

test("a subscription first made while disconnected is sent without lastEventId (it wants a snapshot)", async () => {
  const server = new FakeServer();
  const ctx = await live(server);
  const { client } = ctx;
  server.publish("j1", "progress", { progress: 10 });
  await flush();
  server.drop(1006);
  const later = client.subscribe({ jobs: ["late"], kinds: ["complete"] });
  server.publish("late", "progress", { progress: 30 }, { state: { status: "processing", progress: 30 } });
  const ws = await reconnect(ctx, server);
  await later;
  const subs = ws.sentOf("subscribe");
  assert.equal(subs.find((m) => m.scope === "user").lastEventId, `${server.epoch}-1`);
  const late = subs.find((m) => m.jobs);
  assert.deepEqual(late.jobs, ["late"]);
  assert.equal(late.lastEventId, undefined);
  await flush();
  assert.equal(client.jobs.get("late").progress, 30, "its snapshot arrived");
  client.close();
});

test("jobs view: a new Map and frozen states on change, job/jobs events, maxJobs evicts finished first", async () => {
  const server = new FakeServer();
  const { client, clock, events } = await live(server, { client: { maxJobs: 3 } });
  const before = client.jobs;
  assert.equal(client.jobs, before, "the same Map while nothing changes");
  server.publish("a", "complete", { status: "completed" });
  await clock.advance(1000);
  server.publish("b", "progress", { progress: 1 });
  await clock.advance(1000);
  server.publish("c", "progress", { progress: 2 });
  await flush();
  const mid = client.jobs;
  assert.notEqual(mid, before);
  assert.equal(before.size, 0, "an old view is not changed afterwards");
  const bState = client.jobs.get("b");
  server.publish("c", "progress", { progress: 3 });
  await flush();
  assert.equal(client.jobs.get("b"), bState, "an unchanged job keeps its object");
  server.publish("d", "progress", { progress: 4 }); // a fourth job: the finished "a" goes
  await flush();
  assert.deepEqual([...client.jobs.keys()].sort(), ["b", "c", "d"]);
  const last = detailsOf(events, "jobs").at(-1);
  assert.deepEqual(last.changed, ["d"]);
  assert.deepEqual(last.removed, ["a"]);
  assert.equal(detailsOf(events, "job").at(-1).jobId, "d");
  assert.equal(client.forgetJob("b"), true);
  assert.equal(client.jobs.has("b"), false);
  assert.equal(client.forgetJob("b"), false);
  client.close();
});

test("snapshots with tooLarge or no state keep what is known", async () => {
  const { client } = makeClient();
  client.connect();
  await flush();
  const ws = FakeWebSocket.last();
  ws.open();
  ws.welcome();
  ws.receive({ type: "event", kind: "progress", jobId: "big", payload: { status: "processing", progress: 33 }, seq: 1 });
  ws.receive({ type: "snapshot", jobId: "big", source: null, state: null, tooLarge: true, seq: 2 });
  const big = client.jobs.get("big");
  assert.equal(big.tooLarge, true);
  assert.equal(big.progress, 33);
  assert.equal(big.stale, false);
  ws.receive({ type: "snapshot", jobId: "nothing-yet", source: null, state: null, seq: 3 });
  assert.equal(client.jobs.get("nothing-yet").status, null, "a watched job that has not started is listed");
  client.close();
});

test("status live:true with a snapshot count: the resync ends after that many snapshots", async () => {
  const { client } = makeClient();
  client.connect();
  await flush();
  const ws = FakeWebSocket.last();
  ws.open();
  ws.receive({ type: "welcome", protocol: 1, connectionId: "c1", userId: "alice", admin: false, epoch: "0000000f" });
  const snap = (jobId, n, seq) => ws.receive({ type: "snapshot", jobId, userId: "alice", source: "hash",
    state: { status: "processing", progress: String(n) }, eventId: `0000000f-${n}`, seq });
  snap("a", 1, 1);
  snap("b", 2, 2);
  snap("c", 3, 3);
  ws.receive({ type: "status", live: false, reason: "redis unavailable" });
  assert.deepEqual(staleOf(client), { a: true, b: true, c: true });
  ws.receive({ type: "status", live: true, snapshots: 2 });
  assert.equal(client.synced, false, "two snapshots announced");
  snap("a", 4, 4);
  assert.deepEqual(staleOf(client), { a: false, b: true, c: true });
  snap("b", 5, 5);
  assert.deepEqual(staleOf(client), { a: false, b: false, c: false }, "the round is over: c has nothing newer");
  assert.equal(client.synced, true);
  client.close();
});

test("close() then connect() (an app put in the background) resumes from where it was", async () => {
  const server = new FakeServer();
  const { client } = await live(server);
  server.publish("j1", "progress", { progress: 10 });
  await flush();
  client.close();
  assert.equal(client.state, "stopped");
  assert.equal(client.jobs.get("j1").stale, true);
  server.drop(1000); // the server notices the close
  server.publish("j1", "progress", { progress: 90 });
  client.connect();
  const ws = await server.accept();
  assert.equal(ws.sentOf("subscribe")[0].lastEventId, `${server.epoch}-1`);
  await flush();
  assert.equal(client.jobs.get("j1").progress, 90);
  assert.equal(client.jobs.get("j1").stale, false);
  assert.equal(client.stats.resumed, 1);
  client.close();
});

test("a scope resume makes only the jobs it covers fresh; a job subscription's snapshot the rest", async () => {
  const server = new FakeServer();
  const ctx = await live(server, { accept: { user: "ops", admin: true } });
  const { client } = ctx;
  await client.subscribe({ jobs: ["bobs"] });
  server.publish("mine", "progress", { progress: 1 }, { userId: "ops" });
  server.publish("bobs", "progress", { progress: 2 }, { userId: "bob" });
  await flush();
  server.drop(1006);
  // While disconnected the job subscription is replaced by a new one: sent without
  // lastEventId, it is answered with a snapshot, not a replay.
  client.unsubscribe({ jobs: ["bobs"] });
  client.subscribe({ jobs: ["bobs"] });
  server.holdSnapshots = true;
  const ws = await reconnect(ctx, server, { user: "ops", admin: true });
  assert.equal(ws.sentOf("subscribe").find((m) => m.jobs).lastEventId, undefined);
  // The user scope resumed: ops's own job is current; bob's job waits for its snapshot.
  assert.deepEqual(staleOf(client), { mine: false, bobs: true });
  server.releaseSnapshots();
  await flush();
  assert.deepEqual(staleOf(client), { mine: false, bobs: false });
  client.close();
});
