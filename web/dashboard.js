// The jobwire dashboard: a live table of jobs on top of jobwire.js.
//
// Page parameters:
//   ?token=JWT           production: the token goes to JobwireClient, which sends it in the
//                        first `auth` message (never in the WebSocket URL)
//   ?user=alice          dev_auth servers only: the user id (default alice when no token)
//   &admin=1             dev_auth: an admin, who sees every user's jobs (scope "all")
//   &ws=URL              another WebSocket endpoint (default: /ws of this page's host)
//
// How it stays correct across reconnects: the page subscribes to the "user" scope (or "all")
// for new jobs, and to the ids of the jobs it shows that are still running. The client library
// resubscribes both after every reconnect and the server answers the job subscriptions with
// snapshots, so a job that finished while the link was down shows its final state.
import { JobwireClient } from "./jobwire.js";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const admin = !token && (params.get("admin") === "1" || params.get("admin") === "true");
const devUser = token ? null : params.get("user") || "alice";
if (token) {
  // The token is in the page URL only because the demo put it there: drop it from the address
  // bar and history so it is not bookmarked or shared by accident.
  params.delete("token");
  history.replaceState(null, "", location.pathname + (params.toString() ? "?" + params : "") + location.hash);
}

const MAX_ROWS = 200; // rows kept on screen; the oldest finished ones go first
const MAX_WATCHED = 150; // running jobs followed by id (the server allows 256 per connection)
const TERMINAL = new Set(["completed", "complete", "failed", "error", "cancelled", "canceled"]);

const tbody = document.querySelector("#jobs tbody");
const link = document.getElementById("link");
const notice = document.getElementById("notice");
const jobs = new Map(); // jobId → { row, status, progress, updated, watched }
const pending = new Map(); // jobId → true (subscribe) | false (unsubscribe), sent in batches
let flushTimer = null; // the batch of pending (un)subscriptions goes out when this fires
let countdown = null; // updates "reconnecting in N s" while a retry is scheduled

// ---- connection --------------------------------------------------------------------------

const client = new JobwireClient({
  url: params.get("ws") || undefined,
  token: token || undefined,
  devUser,
  devAdmin: admin,
  reconnect: { initialMs: 500, maxMs: 10000, multiplier: 2, resetAfterMs: 10000 },
});
window.jobwire = client; // handy in the console

document.body.classList.toggle("admin", admin);
document.getElementById("view").textContent = admin ? "all jobs (admin)" : "my jobs";
document.getElementById("who").textContent = devUser ? `user ${devUser} (dev)` : "";

client.addEventListener("welcome", (e) => {
  const w = e.detail;
  document.getElementById("who").textContent = `user ${w.userId}${w.admin ? " (admin)" : ""}`;
  document.body.classList.toggle("admin", !!w.admin);
  document.getElementById("view").textContent = w.admin ? "all jobs (admin)" : "my jobs";
  showNotice(null);
});
client.addEventListener("state", (e) => showState(e.detail));
client.addEventListener("event", (e) => applyEvent(e.detail));
client.addEventListener("snapshot", (e) => applySnapshot(e.detail));
client.addEventListener("error", (e) => {
  const d = e.detail;
  // Refusals of single jobs are shown on the page; the rest goes to the console.
  if (d.code === "forbidden" && d.request === "subscribe") showNotice("A job you asked for belongs to someone else.", "error");
  else if (d.code === "forbidden" || d.code === "unauthenticated") showNotice(`Not allowed: ${d.message}`, "error");
  console.warn("jobwire:", d.code, d.message);
});

client.connect();
const scope = admin ? "all" : "user";
client.subscribe({ scope }).then(() => {
  document.body.dataset.following = scope; // in force on the server (tests wait for this)
}, (err) => {
  showNotice(`Cannot follow ${admin ? "all jobs" : "your jobs"}: ${err.message}`, "error");
});

// The connection pill: "live", "reconnecting in 3 s", "paused: redis unavailable", …
function showState(s) {
  clearInterval(countdown);
  countdown = null;
  link.dataset.state = s.state;
  switch (s.state) {
    case "connecting": link.textContent = "connecting…"; break;
    case "live": link.textContent = "live"; break;
    case "paused": link.textContent = `paused: ${s.reason || "updates stopped"}`; break;
    case "offline": link.textContent = "offline: waiting for the network"; break;
    case "stopped": link.textContent = `stopped${s.reason ? ": " + s.reason : ""}`; break;
    case "reconnecting": {
      const tick = () => {
        const secs = Math.ceil(client.retryInMs / 1000);
        link.textContent = secs > 0 ? `reconnecting in ${secs} s` : "reconnecting…";
      };
      tick();
      countdown = setInterval(tick, 250);
      break;
    }
    default: link.textContent = s.state;
  }
}

function showNotice(text, level = "info") {
  notice.hidden = !text;
  notice.textContent = text || "";
  notice.dataset.level = level;
}

// ---- job state ----------------------------------------------------------------------------

/** An event: the payload as the AI service published it. */
function applyEvent(ev) {
  const p = ev.payload && typeof ev.payload === "object" ? ev.payload : {};
  const update = { userId: ev.userId ?? p.userId, status: p.status, progress: p.progress,
                   message: p.message ?? p.data?.step, time: p.timestamp };
  if (ev.kind === "complete") {
    update.status = p.status || "completed";
    update.progress = p.progress ?? 100;
    update.message = p.message ?? ""; // the last step's text no longer applies
  } else if (ev.kind === "error") {
    update.status = p.status || "failed";
    update.message = p.error ?? p.errorMessage ?? p.message ?? "failed";
  }
  applyUpdate(ev.jobId, update);
}

/** A snapshot: the job's state as Redis holds it (hash fields are strings). */
function applySnapshot(snap) {
  if (!snap.state || typeof snap.state !== "object") return; // unknown job, or Redis away
  const s = snap.state;
  applyUpdate(snap.jobId, {
    userId: snap.userId ?? s.userId, status: s.status, progress: s.progress,
    message: s.error ?? s.errorMessage ?? s.message, time: s.updateTime ?? s.timestamp,
  });
}

function applyUpdate(jobId, u) {
  const job = jobs.get(jobId) || addJob(jobId);
  const row = job.row;
  if (u.userId != null) row.querySelector(".user").textContent = String(u.userId);
  if (u.status) {
    job.status = String(u.status);
    row.dataset.status = job.status;
    row.querySelector(".status").textContent = job.status;
  }
  const pct = Number(u.progress);
  if (u.progress != null && u.progress !== "" && Number.isFinite(pct)) {
    job.progress = Math.max(0, Math.min(100, Math.round(pct)));
    row.dataset.progress = String(job.progress);
    row.querySelector(".meter > span").style.width = `${job.progress}%`;
    row.querySelector(".meter").setAttribute("aria-valuenow", String(job.progress));
    row.querySelector(".pct").textContent = `${job.progress}%`;
  }
  if (u.message != null) row.querySelector(".msg").textContent = String(u.message);
  const when = u.time ? new Date(u.time) : new Date();
  row.querySelector(".when").textContent = (isNaN(when) ? new Date() : when).toLocaleTimeString();
  job.updated = Date.now();
  follow(jobId, job);
  updateCounts();
}

function addJob(jobId) {
  const row = document.createElement("tr");
  row.dataset.job = jobId;
  row.dataset.status = "";
  row.dataset.progress = "0";
  row.innerHTML =
    '<td class="job"></td><td class="user col-user"></td><td><span class="status">…</span></td>' +
    '<td><span class="meter" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0">' +
    '<span></span></span> <span class="pct">0%</span></td><td class="msg"></td><td class="when"></td>';
  row.querySelector(".job").textContent = jobId; // text, never HTML: ids come from publishers
  tbody.prepend(row);
  const job = { row, status: "", progress: 0, updated: Date.now(), watched: false };
  jobs.set(jobId, job);
  document.getElementById("empty").hidden = true;
  trimRows();
  return job;
}

/** Keeps the table bounded: drops the oldest finished jobs first. */
function trimRows() {
  if (jobs.size <= MAX_ROWS) return;
  const victims = [...jobs.entries()]
    .sort(([, a], [, b]) => (TERMINAL.has(b.status) - TERMINAL.has(a.status)) || a.updated - b.updated);
  for (const [id, job] of victims.slice(0, jobs.size - MAX_ROWS)) {
    job.row.remove();
    jobs.delete(id);
    if (job.watched) queueChange(id, false);
  }
}

function updateCounts() {
  let running = 0, completed = 0, failed = 0;
  for (const j of jobs.values()) {
    if (j.status === "completed" || j.status === "complete") completed++;
    else if (j.status === "failed" || j.status === "error") failed++;
    else running++;
  }
  for (const [kind, n] of Object.entries({ running, completed, failed })) {
    document.querySelector(`.count[data-kind="${kind}"] b`).textContent = String(n);
  }
}

// ---- following running jobs by id (so reconnects bring snapshots) --------------------------

/** Follows a running job by id; lets go of it once it finished. */
function follow(jobId, job) {
  const want = !TERMINAL.has(job.status);
  if (want === job.watched) return;
  if (want && [...jobs.values()].filter((j) => j.watched).length >= MAX_WATCHED) return;
  job.watched = want;
  queueChange(jobId, want);
}

/** Batches (un)subscriptions so a burst of new jobs costs one request, not one per job. */
function queueChange(jobId, subscribe) {
  pending.set(jobId, subscribe);
  flushTimer ??= setTimeout(() => {
    flushTimer = null;
    const add = [], drop = [];
    for (const [id, on] of pending) (on ? add : drop).push(id);
    pending.clear();
    if (add.length) client.subscribe({ jobs: add }).catch((err) => forgetWatch(add, err));
    if (drop.length) client.unsubscribe({ jobs: drop }).catch(() => {});
  }, 200);
}

function forgetWatch(ids, err) {
  for (const id of ids) {
    const job = jobs.get(id);
    if (job) job.watched = false;
  }
  if (err.code !== "closed" && err.code !== "unsubscribed") console.warn("jobwire: watch failed:", err.message);
}

// The "watch a job id" form: a job that has not published yet, or started before this page.
document.getElementById("watch").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = document.getElementById("watch-id");
  const id = input.value.trim();
  if (!id) return;
  input.value = "";
  const job = jobs.get(id) || addJob(id);
  job.watched = true;
  client.subscribe({ jobs: [id] }).then(() => showNotice(null), (err) => {
    job.watched = false;
    if (err.code === "forbidden") {
      job.row.remove();
      jobs.delete(id);
      updateCounts();
    }
    showNotice(`Cannot watch ${id}: ${err.message}`, "error");
  });
});
