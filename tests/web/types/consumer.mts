// An ES module consumer of jobwire-client, resolved through the package's "import" condition.
// Type-checked by unit/package.test.mjs with and without the DOM lib. Every @ts-expect-error
// line must be an error, and the IsAny checks fail when a type degrades to `any`.
import JobwireDefault, {
  JobwireClient, LoggedOut, compareEventIds, KINDS,
  type JobState, type JobsChange, type ServerMessage, type SubscribeSpec,
} from "jobwire-client";

type IsAny<T> = 0 extends 1 & T ? true : false;
type Expect<T extends false> = T;

const client = new JobwireClient({
  url: "wss://jobs.example.com/ws",
  getToken: async () => {
    if (Math.random() > 2) throw new LoggedOut();
    return null; // logged out
  },
  onJobs: (change: JobsChange) => change.jobs.size,
  maxJobs: 200,
});
const sameClass: typeof JobwireClient = JobwireDefault;
const firstKind: "status" | "progress" | "complete" | "error" | "other" | undefined = KINDS[0];
const order: 1 | -1 | 0 | null = compareEventIds(client.lastEventId, "0a0b0c0d-1");

client.on("event", (ev, raw) => {
  type _payload = Expect<IsAny<typeof ev.payload>>;
  type _raw = Expect<IsAny<typeof raw>>;
  const jobId: string | undefined = ev.jobId; // user-channel events have none
  const id: string | undefined = ev.eventId;
  const seq: number = ev.seq;
  // @ts-expect-error the payload is JSON: narrow it before reading fields
  ev.payload.progress;
  if (ev.payload !== null && typeof ev.payload === "object" && !Array.isArray(ev.payload)) {
    const progress = ev.payload["progress"];
    type _field = Expect<IsAny<typeof progress>>;
  }
  return [jobId, id, seq];
});

function describe(m: ServerMessage): string {
  switch (m.type) {
    case "welcome": return `${m.userId} ${m.expiresAt ?? "no exp"} ${m.epoch ?? ""} ${m.live ?? true}`;
    case "ack": return `${m.op} resumed=${m.resumed ?? "-"} snapshots=${m.snapshots ?? 0}`;
    case "snapshot":
      if (m.source === "hash" && m.state) {
        const progress: string | undefined = m.state["progress"];
        return progress ?? "";
      }
      return `${m.jobId} tooLarge=${m.tooLarge ?? false} unavailable=${m.unavailable ?? false}`;
    case "event": return m.kind;
    case "status": return String(m.live);
    case "error": return m.code;
    case "goaway": return String(m.reconnectAfterMs);
    case "pong": return "pong";
    // @ts-expect-error not a message type of the protocol
    case "nonsense": return "";
  }
}
client.on("message", (m) => describe(m));

client.on("jobs", ({ jobs, changed, removed }) => {
  for (const [id, job] of jobs) {
    const p: number | null = job.progress;
    const stale: boolean = job.stale;
    const started: number = job.startedAt;
    type _data = Expect<IsAny<(typeof job.data)[string]>>;
    if (id === "" && p === null && stale && started > 0) break;
  }
  return changed.length + removed.length;
});
client.on("gap", ({ missed }) => missed);
client.on("loggedout", ({ reason }) => reason);
client.on("state", ({ state, loggedOut }) => (state === "stopped" ? loggedOut : false));
client.addEventListener("sync", (ev) => ev.detail.synced);

const job: JobState | undefined = client.jobs.get("job_1");
if (job) {
  // @ts-expect-error a JobState is read-only (replaced by the client, never patched)
  job.progress = 5;
}
// @ts-expect-error no such event
client.on("nonsense", () => {});
// @ts-expect-error getToken gives a token, null or undefined
new JobwireClient({ getToken: () => 42 });
// @ts-expect-error a scope is "user" or "all"
const badSpec: SubscribeSpec = { scope: "everyone" };

const spec: SubscribeSpec = { jobs: ["job_1"], kinds: ["progress", "complete"] };
client.connect().subscribe(spec).then((ack) => ack.resumed);
client.wake();

export { sameClass, firstKind, order, badSpec };
