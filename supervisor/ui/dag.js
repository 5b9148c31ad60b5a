// A workflow drawn as its DAG: one column per level (steps whose dependencies are all in earlier
// columns), edges from a dependency to its dependant, the critical path in a stronger stroke, each step
// coloured by its status. Pure SVG built with DOM calls (the page's policy allows no inline markup).

import { badge, duration, el, svg } from "./dom.js";

const NODE_W = 112;
const NODE_H = 38;
const COLUMN_GAP = 34;
const ROW_GAP = 12;
const PAD = 8;
let drawn = 0; // unique marker ids across the page

export const STATUS_TONES = {
  completed: "ok",
  running: "info",
  queued: "muted",
  pending: "idle",
  input_required: "accent",
  failed: "bad",
  cancelled: "off",
};

function arrow(id, className) {
  return svg(
    "marker",
    { id, viewBox: "0 0 8 8", refX: 7, refY: 4, markerWidth: 7, markerHeight: 7, markerUnits: "userSpaceOnUse", orient: "auto" },
    svg("path", { class: className, d: "M0,0 L8,4 L0,8 z" }),
  );
}

function clip(text, chars) {
  return text.length <= chars ? text : `${text.slice(0, chars - 1)}…`;
}

/** The SVG of a workflow's graph ({nodes, edges, levels, critical_path}). */
export function dagChart(graph) {
  drawn += 1;
  const marker = `arrow-${drawn}`;
  const nodes = new Map(graph.nodes.map((node) => [node.id, node]));
  const tallest = Math.max(1, ...graph.levels.map((level) => level.length));
  const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * ROW_GAP;
  const width = PAD * 2 + graph.levels.length * NODE_W + Math.max(0, graph.levels.length - 1) * COLUMN_GAP;
  const place = new Map();
  graph.levels.forEach((level, column) => {
    const used = level.length * NODE_H + (level.length - 1) * ROW_GAP;
    const top = PAD + (height - PAD * 2 - used) / 2;
    level.forEach((id, row) => {
      place.set(id, { x: PAD + column * (NODE_W + COLUMN_GAP), y: top + row * (NODE_H + ROW_GAP) });
    });
  });
  const critical = new Set();
  const path = (graph.critical_path && graph.critical_path.steps) || [];
  for (let i = 1; i < path.length; i += 1) critical.add(`${path[i - 1]}>${path[i]}`);

  const chart = svg("svg", {
    class: "dag",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `workflow graph of ${graph.nodes.length} steps`,
  });
  chart.append(
    svg(
      "defs",
      {},
      arrow(marker, "dag-arrow"),
      arrow(`${marker}-critical`, "dag-arrow dag-arrow-critical"),
    ),
  );
  for (const edge of graph.edges) {
    const from = place.get(edge.from);
    const to = place.get(edge.to);
    if (!from || !to) continue;
    const x1 = from.x + NODE_W;
    const y1 = from.y + NODE_H / 2;
    const x2 = to.x - 2;
    const y2 = to.y + NODE_H / 2;
    const bend = Math.max(16, (x2 - x1) / 2);
    const onPath = critical.has(`${edge.from}>${edge.to}`);
    chart.append(
      svg("path", {
        class: ["dag-edge", onPath && "dag-critical"],
        d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`,
        "marker-end": `url(#${onPath ? `${marker}-critical` : marker})`,
      }),
    );
  }
  for (const [id, at] of place) {
    const node = nodes.get(id);
    if (!node) continue;
    const tone = STATUS_TONES[node.status] || "muted";
    const took = node.duration === null || node.duration === undefined ? "" : ` · ${duration(node.duration)}`;
    chart.append(
      svg(
        "g",
        { class: ["dag-node", `dag-${tone}`], transform: `translate(${at.x},${at.y})`, dataset: { step: id, status: node.status } },
        svg("title", {}, `${id}: ${node.action} — ${node.status.replace("_", " ")}${took}`),
        svg("rect", { width: NODE_W, height: NODE_H, rx: 7 }),
        svg("circle", { class: "dag-dot", cx: 11, cy: NODE_H / 2, r: 4 }),
        svg("text", { class: "dag-label", x: 21, y: 16 }, clip(id, 12)),
        svg("text", { class: "dag-action", x: 21, y: 30 }, clip(node.action, 14)),
      ),
    );
  }
  return chart;
}

/** One workflow's card: name, status, progress, step counts and its graph. */
export function workflowCard(workflow) {
  const counts = Object.entries(workflow.step_counts || {})
    .sort((a, b) => b[1] - a[1])
    .map(([status, n]) => el("span", { class: ["count", `tone-${STATUS_TONES[status] || "muted"}`] }, `${n} ${status.replace("_", " ")}`));
  const tone = STATUS_TONES[workflow.status] || "muted";
  const body = workflow.graph
    ? el("div", { class: "dag-scroll" }, dagChart(workflow.graph))
    : el("p", { class: "note" }, `${workflow.step_count} steps: too many to draw here (workflow_dependencies gives the graph)`);
  return el(
    "article",
    { class: ["workflow", `workflow-${tone}`], dataset: { workflow: workflow.workflow_id, status: workflow.status } },
    el(
      "header",
      {},
      el("div", { class: "workflow-title" }, el("strong", {}, workflow.name), el("code", {}, workflow.workflow_id)),
      badge(workflow.status, tone),
    ),
    el(
      "div",
      { class: "workflow-meta" },
      el("progress", { max: 100, value: workflow.progress || 0, title: `${workflow.progress || 0}% done` }),
      el("span", { class: "counts" }, counts),
      el("span", { class: "took" }, workflow.execution_time === null ? "not started" : duration(workflow.execution_time)),
    ),
    workflow.error ? el("p", { class: "workflow-error" }, workflow.error) : null,
    body,
  );
}
