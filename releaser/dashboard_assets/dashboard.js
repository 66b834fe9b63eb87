// releaser dashboard: render each board the server sends over /events; tick the countdown every second.
// Only same-origin requests (the Content-Security-Policy forbids anything else). Nothing here sends a change.
"use strict";

let board = null;
let skewMs = 0; // server clock minus this browser's clock, so the countdown follows the servers' time

function text(id, value) { document.getElementById(id).textContent = value; }

function cell(row, value, word) {
  const td = row.insertCell();
  td.textContent = value === null || value === undefined || value === "" ? "-" : String(value);
  if (word) { td.classList.add("word", word.replace(/\s/g, "")); }
  return td;
}

function pad(n) { return String(n).padStart(2, "0"); }

function countdownText(next, nowMs) {
  const left = Math.round((Date.parse(next.at) - nowMs) / 1000);
  if (left <= 0) { return `go-live at ${next.at_text}, due now`; }
  const days = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600);
  const m = Math.floor(left % 3600 / 60), s = left % 60;
  const span = `${days > 0 ? days + (days === 1 ? " day " : " days ") : ""}${pad(h)}:${pad(m)}:${pad(s)}`;
  return `go-live at ${next.at_text}, in ${span}`;
}

function tick() {
  if (!board || !board.next_release) { text("countdown", "-"); return; }
  text("countdown", countdownText(board.next_release, Date.now() + skewMs));
}

function render(state) {
  board = state;
  skewMs = Date.parse(state.now) - Date.now();
  text("environment", state.environment);
  text("description", state.description || "");
  const next = state.next_release;
  text("next-release", next ? `${next.title}${next.title === next.publication ? "" : " (" + next.publication + ")"} at ${next.at_text}; upload deadline ${next.upload_deadline}` : "no release scheduled in the next 3 months");
  tick();

  const withInstances = state.servers.some(s => s.instances !== null && s.instances !== undefined);
  document.getElementById("instances-head").hidden = !withInstances;
  const servers = document.querySelector("#servers tbody");
  servers.replaceChildren();
  for (const s of state.servers) {
    const row = servers.insertRow();
    row.dataset.server = s.server;
    cell(row, s.server);
    if (!s.answered) {
      cell(row, "DOWN", "DOWN");
      const why = cell(row, s.error);
      why.colSpan = 6;
      continue;
    }
    cell(row, s.live).dataset.slot = "live";
    const backup = cell(row, s.backup || (s.live ? "NO BACKUP" : "-"), s.backup || !s.live ? null : "NOBACKUP");
    backup.dataset.slot = "backup";
    cell(row, s.staging).dataset.slot = "staging";
    cell(row, s.on_disk.length);
    cell(row, s.locked ? "LOCKED" : "free", s.locked ? "LOCKED" : "free");
    if (s.health) { cell(row, s.health.ok ? "PASS" : `FAIL ${s.health.detail}`, s.health.ok ? "PASS" : "FAIL"); }
    else { cell(row, "-"); }
    cell(row, s.notice);
    if (withInstances) {
      const list = s.instances;
      const td = cell(row, typeof list === "string" || !list ? list : list.map(i =>
        `${i.slot} ${i.release} :${i.port} ${!i.running ? "STOPPED" : i.healthy ? "PASS" : "FAIL"}`).join(", "));
      td.dataset.slot = "instances";
    }
  }
  const data = state.data;
  document.getElementById("data-section").hidden = !data;
  if (data) {
    text("data", data.error ? data.error : `schema ${data.schema}: live ${data.live || "-"}, backup ${data.backup || "NO BACKUP"}, ` +
      `staging ${data.staging || "-"}${data.pending.length ? "; PENDING two-phase transactions: " + data.pending.join(", ") : ""}`);
  }
  const warning = document.getElementById("fleet-warning");
  warning.hidden = !state.mixed;
  warning.textContent = state.mixed ? "MIXED: the servers do not all serve the same live release; see: releaser runbook rollback" : "";

  const checks = state.checks;
  text("checks", checks ? `${checks.outcome === "failed" ? "FAIL" : "PASS"} at ${checks.at} by ${checks.actor}` +
    `${checks.release ? " on " + checks.release : ""}: ${checks.summary}` +
    `${checks.only ? " (only " + checks.only.join(", ") + " checked, with --hosts)" : ""}` : "no check has run");
  document.getElementById("checks").className = checks ? "word " + (checks.outcome === "failed" ? "FAIL" : "PASS") : "";
  const notPassing = document.getElementById("checks-not-passing");
  notPassing.replaceChildren();
  for (const c of (checks && checks.not_passing) || []) {
    const item = document.createElement("li");
    item.textContent = `${c.status} ${c.check} on ${c.server}: ${c.detail}`;
    item.className = c.status;
    notPassing.append(item);
  }

  text("lock", state.lock.length ? state.lock.map(l => l.owner ? `LOCKED on ${l.server} by ${l.owner} since ${l.since} (reason: "${l.reason}"${l.expires ? ", expires " + l.expires : ""})` : `LOCKED on ${l.server}`).join("; ") : "free");
  document.getElementById("lock").className = "word " + (state.lock.length ? "LOCKED" : "free");
  text("notices", state.notices.length ? state.notices.map(n => `${n.server}: ${n.text}`).join("; ") : "no notice on the live sites");

  const timeline = document.querySelector("#timeline tbody");
  timeline.replaceChildren();
  for (const e of state.timeline.slice().reverse()) { // newest first: what just happened is on top
    const row = timeline.insertRow();
    row.dataset.action = e.action;
    cell(row, e.time); cell(row, e.action); cell(row, e.outcome, e.outcome); cell(row, e.release);
    cell(row, e.actor); cell(row, e.detail);
  }
  const status = document.getElementById("connection");
  if (state.read_error) {
    status.dataset.state = "lost";
    status.textContent = `the last read of the servers failed (${state.read_error}); showing the one before`;
  } else {
    status.dataset.state = "live";
    status.textContent = "live: updates as the servers change";
  }
  text("read-at", `servers read at ${new Date(Date.parse(state.now)).toLocaleTimeString("en-GB", {timeZone: state.zone})} ${state.zone} in ${state.read_seconds} s`);
  document.body.dataset.rendered = String((Number(document.body.dataset.rendered) || 0) + 1);
}

function connect() {
  const status = document.getElementById("connection");
  const events = new EventSource("/events");
  events.onopen = () => { status.dataset.state = "live"; status.textContent = "live: updates as the servers change"; };
  events.onmessage = message => render(JSON.parse(message.data));
  events.onerror = () => { status.dataset.state = "lost"; status.textContent = "connection lost; retrying…"; };
}

document.addEventListener("DOMContentLoaded", () => { connect(); setInterval(tick, 1000); });
