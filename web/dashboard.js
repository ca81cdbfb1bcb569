// Minimal live dashboard: one WebSocket to /ws, the "user" scope (or "all" for admins), a row
// per job. Reconnects with exponential backoff and full jitter.
const params = new URLSearchParams(location.search);
const user = params.get("user") || "alice";
const admin = params.get("admin") === "1";
const rows = new Map();
const tbody = document.querySelector("#jobs tbody");
const link = document.getElementById("link");
document.getElementById("who").textContent = `user ${user}${admin ? " (admin)" : ""}`;

function setLink(state, text) {
  link.dataset.state = state;
  link.textContent = text;
}

function row(jobId) {
  let r = rows.get(jobId);
  if (!r) {
    const tr = document.createElement("tr");
    tr.dataset.job = jobId;
    tr.innerHTML = "<td class=job></td><td class=user></td><td class=status></td>" +
                   "<td><progress max=100 value=0></progress> <span class=pct></span></td>" +
                   "<td class=kind></td>";
    tr.querySelector(".job").textContent = jobId;
    tbody.prepend(tr);
    r = tr;
    rows.set(jobId, r);
    document.getElementById("empty").hidden = true;
  }
  return r;
}

function show(ev) {
  const r = row(ev.jobId);
  const p = typeof ev.payload === "object" && ev.payload ? ev.payload : {};
  r.querySelector(".user").textContent = ev.userId || "";
  let status = p.status || r.querySelector(".status").textContent;
  let progress = typeof p.progress === "number" ? p.progress : null;
  if (ev.kind === "complete") { status = p.status || "completed"; progress = 100; }
  if (ev.kind === "error") status = p.status || "failed";
  const cell = r.querySelector(".status");
  cell.textContent = status || "";
  cell.dataset.status = status || "";
  if (progress !== null) {
    r.querySelector("progress").value = progress;
    r.querySelector(".pct").textContent = `${progress}%`;
  }
  r.querySelector(".kind").textContent = `${ev.kind} #${ev.seq}`;
}

let attempt = 0;
function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const qs = new URLSearchParams({ user });
  if (admin) qs.set("admin", "1");
  const ws = new WebSocket(`${proto}//${location.host}/ws?${qs}`);
  let openedAt = 0;
  ws.onopen = () => {
    openedAt = Date.now();
    ws.send(JSON.stringify({ type: "subscribe", id: "dash", scope: admin ? "all" : "user" }));
  };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "ack") setLink("live", "live");
    else if (msg.type === "event") show(msg);
    else if (msg.type === "error") setLink("error", `error: ${msg.code}`);
  };
  ws.onclose = () => {
    if (openedAt && Date.now() - openedAt > 10000) attempt = 0; // stable link: reset backoff
    const ceiling = Math.min(30000, 500 * 2 ** attempt++);
    const delay = Math.random() * ceiling;
    setLink("reconnecting", `reconnecting in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(connect, delay);
  };
}
connect();
