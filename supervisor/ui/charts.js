// Sparklines: a short history drawn as an inline SVG line with its area, kept by the page (the
// supervisor keeps no history: every figure here was seen by this page while it was open).

import { svg } from "./dom.js";

/** A bounded series: push() drops the oldest value past `size`. */
export class History {
  constructor(size) {
    this.size = size;
    this.values = [];
  }

  push(value) {
    this.values.push(value === undefined ? null : value);
    if (this.values.length > this.size) this.values.shift();
  }

  last() {
    return this.values.length ? this.values[this.values.length - 1] : null;
  }
}

/**
 * The sparkline of `history` (null values are gaps). Options: width, height, floor (the smallest top
 * of the scale, so that a flat low line stays low), tone (a CSS class: cpu, mem, rate, depth), label
 * (the tooltip).
 */
export function sparkline(history, { width = 120, height = 28, floor = 1, tone = "rate", label = "" } = {}) {
  const values = history.values;
  const top = Math.max(floor, 1.15 * Math.max(0, ...values.filter((v) => v !== null))); // headroom: a flat line stays inside
  const step = width / Math.max(1, history.size - 1);
  const offset = (history.size - values.length) * step; // the newest value is always at the right edge
  const y = (v) => (height - 2 - (v / top) * (height - 4)).toFixed(1);
  const chart = svg("svg", {
    class: ["spark", `spark-${tone}`],
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": label,
  });
  if (label) chart.append(svg("title", {}, label));
  chart.append(svg("line", { class: "spark-base", x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5 }));
  let segment = [];
  const flush = () => {
    if (segment.length > 1) {
      const line = segment.map(([x, v]) => `${x.toFixed(1)},${y(v)}`).join(" ");
      const first = segment[0][0].toFixed(1);
      const last = segment[segment.length - 1][0].toFixed(1);
      chart.append(svg("polygon", { class: "spark-area", points: `${first},${height} ${line} ${last},${height}` }));
      chart.append(svg("polyline", { class: "spark-line", points: line }));
    } else if (segment.length === 1) {
      chart.append(svg("circle", { class: "spark-dot", cx: segment[0][0], cy: y(segment[0][1]), r: 1.5 }));
    }
    segment = [];
  };
  values.forEach((v, i) => {
    if (v === null) flush();
    else segment.push([offset + i * step, v]);
  });
  flush();
  return chart;
}
