// The /ui page: polls /status (and /ui/workflows) and draws what it says, marking what changed since
// the page opened: a worker restarted (its new pid), a pool not ready or scaled to 0, a quarantined tool,
// a new error. Every history (the sparklines) is kept here, in the page, from the polls it made.

import { History, sparkline } from "./charts.js";
import { workflowCard } from "./dag.js";
import { ago, badge, bytes, clock, count, duration, el, ms, percent, rate, show } from "./dom.js";

const STATUS_EVERY = 1500; // ms between two polls of /status
const WORKFLOWS_EVERY = 3000; // ms between two polls of /ui/workflows
const HISTORY = 48; // points in a sparkline: 72 s at one poll per 1.5 s
const RESTART_MARK = 90; // seconds a restart stays marked
const FRESH_ERROR = 20; // seconds a new error stays marked
const SLOW_P99_MS = 1000; // a p99 above this is shown as a warning

const WORKER_TONES = {
  ready: "ok",
  starting: "info",
  spare: "muted",
  backoff: "warn",
  draining: "warn",
  failed: "bad",
  stopped: "off",
};

const seen = {
  doc: null, // the last /status document
  receivedAt: 0, // Date.now() when it came
  error: null, // why the last poll failed
  workers: new Map(), // id -> {lastPid, restarts, cpu, rss, restart: {from, to, at} | null}
  tools: new Map(), // "pool/tool" -> {calls, rate}
  calls: new History(HISTORY),
  queue: { depth: new History(HISTORY), throughput: new History(HISTORY), finished: null },
  errors: new Map(), // seq -> Date.now() when first seen (0: already there when the page opened)
  quarantined: new Map(), // tool -> Date.now() when first seen quarantined
  workflows: null,
  workflowsError: null,
};

// -- taking a new /status document in ---------------------------------------------------------------

function sum(object) {
  return Object.values(object || {}).reduce((total, n) => total + (n || 0), 0);
}

function finishedTasks(queue) {
  return Object.values(queue.finished || {}).reduce((total, origins) => total + sum(origins), 0);
}

function absorb(doc) {
  const previous = seen.doc;
  const now = Date.now();
  const samePeriod = previous && previous.supervisor.pid === doc.supervisor.pid;
  const elapsed = samePeriod ? doc.supervisor.uptime_seconds - previous.supervisor.uptime_seconds : 0;
  const perSecond = (delta) => (elapsed > 0 && delta >= 0 ? delta / elapsed : null);

  seen.calls.push(samePeriod ? perSecond(doc.supervisor.calls - previous.supervisor.calls) : null);

  for (const worker of doc.workers) {
    let entry = seen.workers.get(worker.id);
    if (!entry || !samePeriod) {
      entry = { lastPid: worker.pid, restarts: worker.restarts, cpu: new History(HISTORY), rss: new History(HISTORY), restart: null };
      seen.workers.set(worker.id, entry);
    } else {
      const newPid = worker.pid !== null && entry.lastPid !== null && worker.pid !== entry.lastPid;
      if (newPid || worker.restarts > entry.restarts) {
        entry.restart = { from: entry.lastPid, to: worker.pid, at: now };
      } else if (entry.restart && entry.restart.to === null && worker.pid !== null) {
        entry.restart.to = worker.pid; // the replacement came up after the death was seen
      }
      entry.restarts = worker.restarts;
      if (worker.pid !== null) entry.lastPid = worker.pid;
    }
    entry.cpu.push(worker.cpu_percent);
    entry.rss.push(worker.rss_bytes);
  }

  for (const [pool, tools] of Object.entries(doc.tools || {})) {
    for (const [name, figures] of Object.entries(tools)) {
      const key = `${pool}/${name}`;
      const entry = seen.tools.get(key) || { calls: null, rate: new History(HISTORY) };
      entry.rate.push(samePeriod && entry.calls !== null ? perSecond(figures.calls - entry.calls) : null);
      entry.calls = figures.calls;
      seen.tools.set(key, entry);
    }
  }

  const queue = doc.task_queue;
  if (queue && queue.tasks) {
    seen.queue.depth.push(sum(queue.tasks.queued));
    const finished = finishedTasks(queue);
    seen.queue.throughput.push(samePeriod && seen.queue.finished !== null ? perSecond(finished - seen.queue.finished) : null);
    seen.queue.finished = finished;
  }

  const opening = !samePeriod; // the page just opened, or the supervisor restarted: nothing is new
  if (opening) seen.errors.clear(); // a new supervisor counts its errors from 1 again
  for (const entry of doc.recent_errors || []) {
    if (!seen.errors.has(entry.seq)) seen.errors.set(entry.seq, opening ? 0 : now);
  }
  const quarantined = new Set();
  for (const entry of doc.quarantined || []) {
    quarantined.add(entry.tool);
    if (!seen.quarantined.has(entry.tool)) seen.quarantined.set(entry.tool, now);
  }
  for (const tool of [...seen.quarantined.keys()]) if (!quarantined.has(tool)) seen.quarantined.delete(tool);

  seen.doc = doc;
  seen.receivedAt = now;
  seen.error = null;
}

// -- what each part of the page shows --------------------------------------------------------------------

/** "ready", "scaled-to-0", "failed" or "not-ready", with the words for it (as `ctl status` says it). */
function readiness(pool, info, workers) {
  if (info.ready) return ["ready", "ready"];
  if (info.failure) return ["failed", info.failure];
  if (!workers.some((w) => w.pool === pool)) return ["scaled-to-0", "scaled to 0"];
  return ["not-ready", "no worker of it is ready yet"];
}

const READINESS_TONES = { ready: "ok", failed: "bad", "not-ready": "bad", "scaled-to-0": "off" };

function renderAlerts(doc) {
  const alerts = [];
  if (doc.supervisor.state !== "running") alerts.push(["bad", `The supervisor is ${doc.supervisor.state}.`]);
  for (const [pool, info] of Object.entries(doc.runtimes)) {
    const [state, words] = readiness(pool, info, doc.workers);
    if (state === "failed" || state === "not-ready") alerts.push(["bad", `Pool ${pool} is not ready: ${words}. Its calls fail fast.`]);
  }
  for (const entry of doc.quarantined || []) {
    alerts.push([
      "warn",
      `Tool ${entry.tool} (${entry.pool}) is quarantined after ${entry.deaths} worker deaths; tried again in ${duration(entry.retry_in_seconds)}.`,
    ]);
  }
  for (const error of doc.load_errors || []) alerts.push(["bad", `Tool module failed to import: ${error}`]);
  if (doc.supervisor.auth && doc.supervisor.auth.warning) alerts.push(["warn", doc.supervisor.auth.warning]);
  const queue = doc.task_queue;
  if (queue && queue.paused) alerts.push(["warn", `The task queue is paused${queue.pause_reason ? `: ${queue.pause_reason}` : ""}.`]);
  if (queue && queue.error) alerts.push(["warn", `Task queue figures are ${queue.as_of === null ? "unavailable" : `${duration(queue.as_of)} old`}: ${queue.error}`]);
  const saturated = doc.workers.filter((w) => w.saturated);
  for (const worker of saturated) alerts.push(["warn", `${worker.id} is saturated: ${worker.saturated}`]);
  show("alerts", alerts.map(([tone, words]) => el("div", { class: ["alert", `alert-${tone}`], role: "status" }, words)));
  return alerts.length;
}

function tile(label, value, extra = null, attrs = {}) {
  return el("div", { ...attrs, class: ["tile", attrs.class] }, el("span", { class: "tile-label" }, label), el("span", { class: "tile-value" }, value), extra);
}

function renderSummary(doc) {
  const s = doc.supervisor;
  const slots = doc.workers.filter((w) => !isSpare(w));
  const ready = slots.filter((w) => w.state === "ready").length;
  show("instance", `pid ${s.pid} · up ${duration(s.uptime_seconds)} · ${s.state}`);
  show(
    "summary",
    tile("calls/s", rate(seen.calls.last()), sparkline(seen.calls, { tone: "rate", label: "calls per second" })),
    tile("calls answered", count(s.calls)),
    tile("tools", count(s.tools)),
    tile("workers ready", `${ready} / ${slots.length}`, null, { class: ready < slots.length ? "tile-warn" : null }),
    tile("waiting for a worker", count(s.queued_calls), null, { class: s.queued_calls > 0 ? "tile-warn" : null }),
    tile("supervisor CPU", percent(s.cpu_percent)),
    tile("supervisor memory", bytes(s.rss_bytes)),
    tile("connections", count(s.connections ? s.connections.open : null)),
  );
}

function renderRuntimes(doc) {
  show(
    "runtimes",
    Object.entries(doc.runtimes).map(([pool, info]) => {
      const [state, words] = readiness(pool, info, doc.workers);
      return el(
        "span",
        { class: ["runtime", `runtime-${READINESS_TONES[state]}`], dataset: { runtime: pool, state }, title: words },
        el("strong", {}, pool),
        " ",
        state === "ready" ? "ready" : words,
      );
    }),
  );
}

/** A warm spare: a READY process held to replace a worker of its pool (asyncio-spare-0). */
function isSpare(worker) {
  return worker.state === "spare" || /-spare-\d+$/.test(worker.id);
}

function cores(affinity) {
  if (!affinity) return "–";
  return affinity.length > 4 ? `${affinity.length} cores` : affinity.join(",");
}

function renderWorkers(doc) {
  const now = Date.now();
  const rows = doc.workers.map((worker) => {
    const entry = seen.workers.get(worker.id);
    const restart = entry && entry.restart && now - entry.restart.at < RESTART_MARK * 1000 ? entry.restart : null;
    const pidCell = el("td", { class: "num pid" }, worker.pid === null ? "–" : String(worker.pid));
    if (restart) {
      pidCell.append(
        el("span", { class: "pid-old", title: "the process before the restart" }, restart.from === null ? "" : String(restart.from)),
      );
    }
    return el(
      "tr",
      {
        class: [restart && "restarted", worker.state !== "ready" && !isSpare(worker) && "not-ready"],
        dataset: { worker: worker.id, pid: worker.pid === null ? "" : String(worker.pid), state: worker.state, restarted: restart ? "1" : "0" },
      },
      el(
        "td",
        {},
        el("span", { class: "worker-id" }, worker.id),
        restart ? badge(`${isSpare(worker) ? "new spare" : "restarted"} ${ago(restart.at / 1000)}`, "warn", { class: "restart-mark" }) : null,
      ),
      el("td", {}, worker.pool),
      pidCell,
      el("td", { class: "num" }, cores(worker.cpu_affinity)),
      el("td", {}, badge(worker.state, WORKER_TONES[worker.state] || "muted")),
      el("td", { class: ["num", worker.restarts > 0 && "warn-text"] }, count(worker.restarts)),
      el("td", { class: "num" }, duration(worker.uptime_seconds)),
      el("td", { class: "num" }, count(worker.in_flight)),
      el("td", { class: "num" }, count(worker.calls_served), worker.calls_failed ? el("span", { class: "bad-text" }, ` / ${count(worker.calls_failed)} failed`) : null),
      el("td", { class: "chart" }, entry ? sparkline(entry.cpu, { tone: "cpu", floor: 100, label: "CPU %", width: 90 }) : null, el("span", { class: "chart-value" }, percent(worker.cpu_percent))),
      el("td", { class: "chart" }, entry ? sparkline(entry.rss, { tone: "mem", floor: 1, label: "resident memory", width: 90 }) : null, el("span", { class: "chart-value" }, bytes(worker.rss_bytes))),
      el("td", { class: "last-exit", title: worker.last_exit || "" }, worker.last_exit || ""),
    );
  });
  show("workers", rows.length ? rows : el("tr", {}, el("td", { colspan: 12, class: "empty" }, "No worker.")));
}

function renderTools(doc) {
  const quarantined = new Map((doc.quarantined || []).map((q) => [q.tool, q]));
  const rows = [];
  for (const [pool, tools] of Object.entries(doc.tools || {})) {
    for (const [name, figures] of Object.entries(tools)) rows.push({ pool, name, figures });
  }
  for (const [name, entry] of quarantined) {
    if (!rows.some((row) => row.name === name)) rows.push({ pool: entry.pool, name, figures: null });
  }
  rows.sort((a, b) => (b.figures ? b.figures.calls : 0) - (a.figures ? a.figures.calls : 0) || a.name.localeCompare(b.name));
  show(
    "tools",
    rows.length
      ? rows.map(({ pool, name, figures }) => {
          const history = seen.tools.get(`${pool}/${name}`);
          const outcomes = figures ? figures.outcomes : {};
          const errors = Object.entries(outcomes).filter(([outcome]) => outcome !== "ok");
          const failed = errors.reduce((total, [, n]) => total + n, 0);
          const share = figures && figures.calls ? (100 * failed) / figures.calls : 0;
          const q = quarantined.get(name);
          return el(
            "tr",
            { class: [q && "quarantined"], dataset: { tool: name, quarantined: q ? "1" : "0" } },
            el("td", {}, el("span", { class: "tool-name" }, name), q ? badge("quarantined", "warn", { title: `${q.deaths} deaths; until ${clock(q.until)}` }) : null),
            el("td", {}, pool),
            el("td", { class: "num" }, figures ? count(figures.calls) : "–"),
            el("td", { class: "chart" }, history ? sparkline(history.rate, { tone: "rate", label: "calls per second", width: 100 }) : null, el("span", { class: "chart-value" }, history ? rate(history.rate.last()) : "–")),
            el("td", { class: "num" }, figures ? ms(figures.p50_ms) : "–"),
            el("td", { class: ["num", figures && figures.p99_ms > SLOW_P99_MS && "warn-text"] }, figures ? ms(figures.p99_ms) : "–"),
            el("td", { class: ["num", failed > 0 && "bad-text"] }, failed ? `${count(failed)} (${percent(share)})` : "0"),
            el("td", { class: "outcomes" }, errors.map(([outcome, n]) => el("span", { class: "outcome" }, `${outcome.replace("_", " ")} ${count(n)}`))),
          );
        })
      : el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No call yet.")),
  );
}

function renderQueue(doc) {
  const queue = doc.task_queue;
  if (!queue) {
    show("queue", el("p", { class: "note" }, "This supervisor runs no task queue."));
    return;
  }
  if (!queue.tasks) {
    show("queue", el("p", { class: "note" }, queue.error || "Waiting for the task queue's first figures…"));
    return;
  }
  const finished = queue.finished || {};
  show(
    "queue",
    el(
      "div",
      { class: "tiles" },
      tile("queued", count(sum(queue.tasks.queued)), sparkline(seen.queue.depth, { tone: "depth", label: "queued tasks" }), { dataset: { figure: "queued" } }),
      tile("running", count(sum(queue.tasks.running)), null, { dataset: { figure: "running" } }),
      tile("waiting for input", count(sum(queue.tasks.input_required))),
      tile("finished/s", rate(seen.queue.throughput.last()), sparkline(seen.queue.throughput, { tone: "rate", label: "tasks finished per second" }), { dataset: { figure: "throughput" } }),
      tile("completed", count(sum(finished.completed))),
      tile("failed", count(sum(finished.failed)), null, { class: sum(finished.failed) > 0 ? "tile-bad" : null }),
      tile("cancelled", count(sum(finished.cancelled))),
      tile("workflows running", count(queue.workflows ? queue.workflows.running : null), queue.workflows && queue.workflows.pending ? el("span", { class: "tile-extra" }, `${queue.workflows.pending} pending`) : null),
    ),
    el("p", { class: "note" }, queue.paused ? badge("paused", "warn") : badge("serving", "ok"), " finished counts are since the queue worker started"),
  );
}

function renderErrors(doc) {
  const now = Date.now();
  const entries = doc.recent_errors || [];
  show(
    "errors",
    entries.length
      ? entries.map((entry) => {
          const first = seen.errors.get(entry.seq) || 0;
          const fresh = first > 0 && now - first < FRESH_ERROR * 1000;
          return el(
            "tr",
            { class: [fresh && "fresh"], dataset: { seq: String(entry.seq), kind: entry.kind } },
            el("td", { class: "num", title: ago(entry.at) }, clock(entry.at)),
            el("td", {}, entry.kind === "exit" ? badge("worker exit", "bad") : badge("call", "warn")),
            el("td", {}, entry.worker, entry.pid === null ? "" : el("span", { class: "dim" }, ` ${entry.pid}`)),
            el("td", {}, entry.tool || ""),
            el("td", { class: "message" }, entry.message),
          );
        })
      : el("tr", {}, el("td", { colspan: 5, class: "empty" }, "No error since the supervisor started.")),
  );
}

function renderWorkflows() {
  const answer = seen.workflows;
  if (answer === null) {
    show("workflows", el("p", { class: "note" }, seen.workflowsError || "Loading…"));
    return;
  }
  const cards = answer.workflows.map(workflowCard);
  const notes = [];
  if (answer.error) notes.push(el("p", { class: "note" }, answer.error));
  if (!cards.length && !answer.error) notes.push(el("p", { class: "note" }, "No workflow yet (workflow_submit starts one)."));
  if (answer.total_count > cards.length) notes.push(el("p", { class: "note" }, `The newest ${cards.length} of ${count(answer.total_count)} workflows.`));
  show("workflows", ...notes, el("div", { class: "workflow-grid" }, cards));
}

function renderLive() {
  const live = document.getElementById("live");
  const age = seen.receivedAt ? (Date.now() - seen.receivedAt) / 1000 : null;
  let tone = "ok";
  let words = age === null ? "connecting…" : `live · updated ${duration(age)} ago`;
  if (seen.error) {
    tone = "bad";
    words = `${seen.error} · retrying`;
  } else if (age !== null && age > (3 * STATUS_EVERY) / 1000) {
    tone = "warn";
  }
  live.className = `live live-${tone}`;
  live.textContent = words;
}

function render() {
  const doc = seen.doc;
  const alerts = renderAlerts(doc);
  renderSummary(doc);
  renderRuntimes(doc);
  renderWorkers(doc);
  renderTools(doc);
  renderQueue(doc);
  renderErrors(doc);
  renderLive();
  document.title = `${alerts ? `(${alerts}) ` : ""}mcp-supervisor ${doc.supervisor.pid}`;
  document.body.dataset.updated = String(seen.receivedAt);
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
}

// -- polling ----------------------------------------------------------------------------------------------

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store", credentials: "same-origin", headers: { accept: "application/json" } });
  if (!response.ok) {
    const refused = response.status === 401 || response.status === 403;
    throw new Error(`${path}: HTTP ${response.status}${refused ? " (this page needs the admin scope)" : ""}`);
  }
  return response.json();
}

async function pollStatus() {
  try {
    absorb(await getJSON("status"));
    render();
  } catch (error) {
    seen.error = error.message;
    renderLive();
  }
  setTimeout(pollStatus, STATUS_EVERY);
}

async function pollWorkflows() {
  try {
    seen.workflows = await getJSON("ui/workflows");
    seen.workflowsError = null;
  } catch (error) {
    seen.workflowsError = error.message;
  }
  renderWorkflows();
  setTimeout(pollWorkflows, WORKFLOWS_EVERY);
}

setInterval(renderLive, 500);
pollStatus();
pollWorkflows();

