// Shared set-up of the unit tests: a JobwireClient wired to the fakes, recording what it emits.
import { JobwireClient } from "../../../web/jobwire.js";
import { FakeWebSocket, FakeClock, FakeNetwork, flush } from "./fakes.mjs";

export const URL_WS = "ws://jobs.test/ws";
export const EVENT_TYPES = ["state", "event", "snapshot", "error", "welcome", "live", "job", "jobs",
  "sync", "gap", "loggedout"];

/** A client wired to the fakes; `random` defaults to the top of the jitter range. */
export function makeClient(opts = {}) {
  FakeWebSocket.reset();
  const clock = opts.clock || new FakeClock();
  const network = opts.network || new FakeNetwork(true);
  const events = [];
  const client = new JobwireClient({
    url: URL_WS,
    WebSocket: FakeWebSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    random: () => 0.999,
    network,
    pingIntervalMs: 0,
    ...opts.client,
  });
  for (const type of EVENT_TYPES) {
    client.addEventListener(type, (e) => events.push({ type, detail: e.detail }));
  }
  return { client, clock, network, events };
}

/** Opens and welcomes the newest socket (no server behind it: the test plays the server). */
export async function accept(user = "alice", admin = false) {
  await flush();
  const ws = FakeWebSocket.last();
  ws.open();
  ws.welcome(user, admin);
  await flush();
  return ws;
}

export function lastState(events) {
  return events.filter((e) => e.type === "state").at(-1).detail;
}

/** The details of the recorded events of one type. */
export function detailsOf(events, type) {
  return events.filter((e) => e.type === type).map((e) => e.detail);
}
