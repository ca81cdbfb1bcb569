// The jobwire dashboard: a live list of jobs on top of jobwire.js.
//
// Page parameters:
//   ?token=JWT           production: the token goes to JobwireClient, which sends it in the
//                        first `auth` message (never in the WebSocket URL)
//   ?user=alice          dev_auth servers only: the user id (default alice when no token)
//   &admin=1             dev_auth: an admin, who sees every user's jobs (scope "all")
//   &ws=URL              another WebSocket endpoint (default: /ws of this page's host)
//
// The client keeps the job table (client.jobs): the snapshots that follow the scope subscribe
// list the recent jobs at load, events update them, and after a reconnect or a Redis outage it
// resumes or resyncs by itself, marking jobs stale meanwhile. The page only renders that table.
// Servers whose scope ack announces no snapshots (before the protocol additions) resync job
// subscriptions only: against those the page also follows its running jobs by id.
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

const MAX_ROWS = 200; // jobs kept (client maxJobs): the oldest finished ones go first
const MAX_WATCHED = 150; // running jobs followed by id (the server's default limit is 256)

const tbody = document.querySelector("#jobs tbody");
const link = document.getElementById("link");
const notice = document.getElementById("notice");
const rows = new Map(); // jobId → <tr>
let order = []; // jobIds in the order of the rows
let countdown = null; // updates "reconnecting in N s" while a retry is scheduled

// ---- connection --------------------------------------------------------------------------

const client = new JobwireClient({
  url: params.get("ws") || undefined,
  token: token || undefined,
  devUser,
  devAdmin: admin,
  maxJobs: MAX_ROWS,
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
client.addEventListener("sync", (e) => {
  document.body.dataset.synced = String(e.detail.synced);
});
client.addEventListener("jobs", (e) => render(e.detail));
client.addEventListener("error", (e) => {
  const d = e.detail;
  // Refusals of single jobs are shown on the page; the rest goes to the console.
  if (d.code === "forbidden" && d.request === "subscribe") showNotice("A job you asked for belongs to someone else.", "error");
  else if (d.code === "forbidden" || d.code === "unauthenticated") showNotice(`Not allowed: ${d.message}`, "error");
  console.warn("jobwire:", d.code, d.message);
});

client.connect();
const scope = admin ? "all" : "user";
// Running jobs are followed by id as well as through the scope: a resync then brings their
// snapshots whatever the job index kept (a Redis that restarted empty keeps none of it), and a
// server whose scope ack announces no snapshots still shows them.
let followRunning = false;
client.subscribe({ scope }).then(() => {
  followRunning = true;
  document.body.dataset.followById = "true";
  document.body.dataset.following = scope; // in force on the server (tests wait for this)
  for (const job of client.jobs.values()) follow(job);
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

// ---- rendering the job table ---------------------------------------------------------------

/** Applies a `jobs` change: updates the changed rows, drops the removed ones, keeps the order. */
function render({ jobs, changed, removed }) {
  for (const id of removed) {
    rows.get(id)?.remove();
    rows.delete(id);
  }
  for (const id of changed) {
    const job = jobs.get(id);
    if (!job) continue;
    updateRow(rows.get(id) || addRow(id), job);
    if (followRunning) follow(job);
  }
  // Most recently started first; rows only move when a job appears or its start is corrected.
  const wanted = [...jobs.values()].sort((a, b) => b.startedAt - a.startedAt || (a.jobId < b.jobId ? -1 : 1))
    .map((j) => j.jobId);
  if (wanted.join("\n") !== order.join("\n")) {
    for (const id of wanted) tbody.append(rows.get(id));
    order = wanted;
  }
  document.getElementById("empty").hidden = jobs.size > 0;
  updateCounts(jobs);
}

function addRow(jobId) {
  const row = document.createElement("tr");
  row.dataset.job = jobId;
  row.innerHTML =
    '<td class="job"></td><td class="user col-user"></td><td class="st"><span class="status">…</span></td>' +
    '<td class="prog"><span class="meter" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0">' +
    '<span></span></span> <span class="pct">0%</span></td><td class="msg"></td><td class="age"></td>' +
    '<td class="when"></td>';
  row.querySelector(".job").textContent = jobId; // text, never HTML: ids come from publishers
  rows.set(jobId, row);
  return row;
}

function updateRow(row, job) {
  row.dataset.status = job.status || "";
  row.dataset.stale = String(job.stale);
  row.dataset.started = String(job.startedAt);
  row.querySelector(".user").textContent = job.userId ?? "";
  row.querySelector(".status").textContent = job.status || "unknown";
  row.querySelector(".status").title = job.stale ? "not confirmed since the connection was interrupted" : "";
  const pct = job.progress == null ? null : Math.max(0, Math.min(100, Math.round(job.progress)));
  row.dataset.progress = String(pct ?? 0);
  row.querySelector(".meter > span").style.width = `${pct ?? 0}%`;
  row.querySelector(".meter").setAttribute("aria-valuenow", String(pct ?? 0));
  row.querySelector(".pct").textContent = pct == null ? "–" : `${pct}%`;
  const step = job.data && typeof job.data.data === "object" && job.data.data ? job.data.data.step : null;
  const msg = job.terminal && job.error ? job.error : job.message ?? step ?? "";
  row.querySelector(".msg").textContent = String(msg);
  row.querySelector(".when").textContent = new Date(job.updatedAt).toLocaleTimeString();
  showAge(row, job);
}

/** "3m 05s" running since the start; "took 1m 30s" once finished. */
function showAge(row, job) {
  const cell = row.querySelector(".age");
  const end = job.terminal ? job.finishedAt ?? job.updatedAt : Date.now();
  const text = duration(end - job.startedAt);
  cell.textContent = job.terminal ? `took ${text}` : text;
  cell.dataset.ms = String(Math.max(0, end - job.startedAt));
  cell.title = `started ${new Date(job.startedAt).toLocaleString()}` +
    (job.terminal ? `, finished ${new Date(end).toLocaleString()}` : "");
}

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d`;
}

// Running jobs age on screen without any message arriving.
setInterval(() => {
  for (const job of client.jobs.values()) {
    if (!job.terminal && rows.has(job.jobId)) showAge(rows.get(job.jobId), job);
  }
}, 1000);

function updateCounts(jobs) {
  let running = 0, completed = 0, failed = 0;
  for (const j of jobs.values()) {
    if (!j.terminal) running++;
    else if (j.error || j.status === "failed" || j.status === "error") failed++;
    else completed++;
  }
  for (const [kind, n] of Object.entries({ running, completed, failed })) {
    document.querySelector(`.count[data-kind="${kind}"] b`).textContent = String(n);
  }
}

// ---- running jobs are followed by id too (so that every resync brings their snapshots) ------

const watched = new Set();
const pending = new Map(); // jobId → true (subscribe) | false (unsubscribe), sent in batches
let flushTimer = null;

function follow(job) {
  const want = !job.terminal;
  if (want === watched.has(job.jobId) || (want && watched.size >= MAX_WATCHED)) return;
  if (want) watched.add(job.jobId);
  else watched.delete(job.jobId);
  if (!want) delete rows.get(job.jobId)?.dataset.followed;
  pending.set(job.jobId, want);
  // One request for a burst of new jobs, not one per job.
  flushTimer ??= setTimeout(() => {
    flushTimer = null;
    const add = [], drop = [];
    for (const [id, on] of pending) (on ? add : drop).push(id);
    pending.clear();
    if (add.length) {
      client.subscribe({ jobs: add }).then(() => {
        for (const id of add) if (watched.has(id) && rows.has(id)) rows.get(id).dataset.followed = "true";
      }, (err) => {
        for (const id of add) watched.delete(id);
        if (!["closed", "stopped", "unsubscribed"].includes(err.code)) console.warn("jobwire: follow failed:", err.message);
      });
    }
    if (drop.length) client.unsubscribe({ jobs: drop }).catch(() => {});
  }, 200);
}

// The "watch a job id" form: a job that has not published yet, or one not in the recent list.
document.getElementById("watch").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = document.getElementById("watch-id");
  const id = input.value.trim();
  if (!id) return;
  input.value = "";
  client.subscribe({ jobs: [id] }).then(() => showNotice(null), (err) => {
    showNotice(`Cannot watch ${id}: ${err.message}`, "error");
  });
});
