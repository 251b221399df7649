// ccxt-pipeline dashboard: plain SVG, no library, no CDN (the page must work offline).
//
// Two modes:
// - live (the page at /): reads the JSON API (docs/serve.md), redraws on a timer while the daemon runs;
// - static (`ccxt-cli plot ... --out FILE.html`): the data is inlined as window.CCXT_PLOT and drawn once.
//
// Side convention (docs/catalog.md, custom_liquidation): a row's `side` is the side of the POSITION that was
// liquidated. The heatmap API sums LONG rows into `long` and SHORT rows into `short`; the page draws long in
// red and short in green and never re-derives sides from order sides.
//
// Tests count the drawing through data attributes: every heatmap cell is one <g class="cell"> with
// data-t/data-p (bucket indexes) and data-long/data-short; every line is one <path class="series"
// data-exchange>; every health badge is one <span class="badge" data-exchange data-status>.
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const EXCHANGE_COLOURS = {
    binance: "#d4a100",
    bybit: "#7b4fc9",
    hyperliquid: "#159c8c",
    okx: "#333333",
  };
  const FALLBACK_COLOURS = ["#1f77b4", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"];
  const MARGIN = { left: 70, right: 110, top: 10, bottom: 26 };

  // ---- small helpers ---------------------------------------------------------------------------------------

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    const node = el("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    node.textContent = content;
    return node;
  }

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
  }

  function colourOf(exchange, index) {
    return EXCHANGE_COLOURS[exchange] || FALLBACK_COLOURS[index % FALLBACK_COLOURS.length];
  }

  function size(svg) {
    const box = svg.viewBox.baseVal;
    return { width: box.width, height: box.height };
  }

  // Nanosecond integers arrive as JSON numbers (about 256 ns of precision at today's epoch): plenty for drawing.
  function nsToMs(ns) {
    return Number(ns) / 1e6;
  }

  function timeOf(point) {
    if (point.t_ns !== undefined && point.t_ns !== null) return nsToMs(point.t_ns);
    return Date.parse(point.time);
  }

  function pad2(n) {
    return String(n).padStart(2, "0");
  }

  function formatTime(ms, spanMs) {
    const d = new Date(ms);
    const hm = pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes());
    const day = d.getUTCFullYear() + "-" + pad2(d.getUTCMonth() + 1) + "-" + pad2(d.getUTCDate());
    return spanMs > 2 * 86400e3 ? day + " " + hm : hm;
  }

  function formatNumber(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(2) + "B";
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return v.toFixed(2);
    if (a === 0) return "0";
    return v.toPrecision(3);
  }

  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
    return ticks;
  }

  function timeTicks(fromMs, toMs) {
    const steps = [60e3, 300e3, 900e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3, 2 * 86400e3];
    const step = steps.find((s) => (toMs - fromMs) / s <= 8) || 7 * 86400e3;
    const ticks = [];
    for (let t = Math.ceil(fromMs / step) * step; t <= toMs; t += step) ticks.push(t);
    return ticks;
  }

  function frame(svg, fromMs, toMs) {
    const { width, height } = size(svg);
    const plot = {
      x0: MARGIN.left,
      x1: width - MARGIN.right,
      y0: MARGIN.top,
      y1: height - MARGIN.bottom,
    };
    plot.x = (ms) => plot.x0 + ((ms - fromMs) / (toMs - fromMs)) * (plot.x1 - plot.x0);
    const axis = el("g", { class: "axis" }, svg);
    for (const t of timeTicks(fromMs, toMs)) {
      const x = plot.x(t);
      el("line", { x1: x, x2: x, y1: plot.y0, y2: plot.y1 }, axis);
      text(axis, x, plot.y1 + 16, formatTime(t, toMs - fromMs), { "text-anchor": "middle" });
    }
    el("line", { x1: plot.x0, x2: plot.x1, y1: plot.y1, y2: plot.y1 }, axis);
    return plot;
  }

  function emptyNote(svg, message) {
    const { width, height } = size(svg);
    text(svg, width / 2, height / 2, message, { class: "empty", "text-anchor": "middle" });
  }

  // ---- heatmap ---------------------------------------------------------------------------------------------

  // Colour for a notional relative to the largest cell: log scale so that small events stay visible.
  function shade(value, max, hue) {
    const f = max > 0 ? Math.log1p(value) / Math.log1p(max) : 0;
    const lightness = 88 - 55 * Math.max(0, Math.min(1, f));
    return "hsl(" + hue + ", 75%, " + lightness.toFixed(1) + "%)";
  }

  function describeCell(cell, t0, t1, p0, p1, spanMs) {
    const lines = [
      formatTime(t0, spanMs) + " - " + formatTime(t1, spanMs) + " UTC, price " + formatNumber(p0) + " - " +
        formatNumber(p1),
      "long liquidated: " + formatNumber(cell.long || 0),
      "short liquidated: " + formatNumber(cell.short || 0),
    ];
    for (const [ex, v] of Object.entries(cell.by_exchange || {})) {
      lines.push("  " + ex + ": long " + formatNumber(v.long || 0) + ", short " + formatNumber(v.short || 0));
    }
    return lines.join("\n");
  }

  function drawHeatmap(svg, data, fromMs, toMs) {
    clear(svg);
    const plot = frame(svg, fromMs, toMs);
    const cells = data.cells || [];
    svg.dataset.cells = String(cells.length);
    svg.dataset.exchanges = (data.exchanges || []).join(",");
    if (!cells.length) {
      emptyNote(svg, "no liquidations stored for " + (data.symbol || "this symbol") + " in this range");
      return;
    }
    const prices = data.price_buckets.map(Number);
    const step = Number(data.price_step);
    const lo = Math.min.apply(null, prices);
    const hi = Math.max.apply(null, prices) + step;
    const y = (p) => plot.y1 - ((p - lo) / (hi - lo)) * (plot.y1 - plot.y0);
    const axis = el("g", { class: "axis" }, svg);
    for (const p of niceTicks(lo, hi, 6)) {
      el("line", { x1: plot.x0 - 4, x2: plot.x0, y1: y(p), y2: y(p) }, axis);
      text(axis, plot.x0 - 6, y(p) + 4, formatNumber(p), { "text-anchor": "end" });
    }
    const bucketMs = nsToMs(data.bucket_ns);
    let max = 0;
    for (const c of cells) max = Math.max(max, c.long || 0, c.short || 0);
    const layer = el("g", { class: "cells" }, svg);
    for (const c of cells) {
      const t0 = nsToMs(data.time_buckets[c.t]);
      const p0 = prices[c.p];
      const x0 = Math.max(plot.x0, plot.x(t0));
      const x1 = Math.min(plot.x1, plot.x(t0 + bucketMs));
      const w = Math.max(1, x1 - x0);
      const top = y(p0 + step);
      const h = Math.max(1, y(p0) - top);
      const g = el("g", { class: "cell", "data-t": c.t, "data-p": c.p, "data-long": c.long || 0,
        "data-short": c.short || 0 }, layer);
      const title = el("title", {}, g);
      title.textContent = describeCell(c, t0, t0 + bucketMs, p0, p0 + step, toMs - fromMs);
      const long = c.long || 0;
      const short = c.short || 0;
      // Both sides in one bucket: long on the left half, short on the right, so neither hides the other.
      const split = long > 0 && short > 0;
      if (long > 0) {
        el("rect", { class: "long", x: x0, y: top, width: split ? w / 2 : w, height: h,
          fill: shade(long, max, 5) }, g);
      }
      if (short > 0) {
        el("rect", { class: "short", x: split ? x0 + w / 2 : x0, y: top, width: split ? w / 2 : w, height: h,
          fill: shade(short, max, 140) }, g);
      }
    }
    const legend = el("g", { class: "legend" }, svg);
    const totals = data.totals || {};
    let row = 0;
    for (const ex of Object.keys(totals).sort()) {
      const yy = plot.y0 + 12 + row * 30;
      text(legend, plot.x1 + 8, yy, ex);
      text(legend, plot.x1 + 8, yy + 13, "L " + formatNumber(totals[ex].long || 0) + " S " +
        formatNumber(totals[ex].short || 0));
      row += 1;
    }
  }

  // ---- line charts -----------------------------------------------------------------------------------------

  function drawLines(svg, data, fromMs, toMs, scale) {
    clear(svg);
    const plot = frame(svg, fromMs, toMs);
    const series = data.series || {};
    const names = Object.keys(series).sort();
    let lo = Infinity;
    let hi = -Infinity;
    for (const name of names) {
      for (const pt of series[name]) {
        const v = Number(pt.value) * scale;
        if (Number.isFinite(v)) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
    }
    svg.dataset.series = names.filter((n) => series[n].length).join(",");
    if (!Number.isFinite(lo)) {
      emptyNote(svg, "nothing stored in this range");
      return;
    }
    if (hi === lo) {
      hi += Math.abs(hi) * 0.01 || 1;
      lo -= Math.abs(lo) * 0.01 || 1;
    }
    const y = (v) => plot.y1 - ((v - lo) / (hi - lo)) * (plot.y1 - plot.y0);
    const axis = el("g", { class: "axis" }, svg);
    for (const v of niceTicks(lo, hi, 4)) {
      el("line", { x1: plot.x0 - 4, x2: plot.x0, y1: y(v), y2: y(v) }, axis);
      text(axis, plot.x0 - 6, y(v) + 4, formatNumber(v), { "text-anchor": "end" });
    }
    const legend = el("g", { class: "legend" }, svg);
    names.forEach((name, i) => {
      const points = series[name].filter((pt) => Number.isFinite(Number(pt.value)));
      if (!points.length) return;
      const colour = colourOf(name, i);
      let d = "";
      points.forEach((pt, j) => {
        d += (j ? "L" : "M") + plot.x(timeOf(pt)).toFixed(1) + "," + y(Number(pt.value) * scale).toFixed(1);
      });
      const path = el("path", { class: "series", d: d, stroke: colour, "data-exchange": name,
        "data-points": points.length }, svg);
      const title = el("title", {}, path);
      title.textContent = name + ": last " + formatNumber(Number(points[points.length - 1].value) * scale);
      if (points.length <= 60) {
        // Sparse series (8-hourly funding in a short range, one snapshot): a dot per point, or one point shows
        // nothing.
        for (const pt of points) {
          el("circle", { class: "point", cx: plot.x(timeOf(pt)), cy: y(Number(pt.value) * scale), r: 2.5,
            fill: colour, "data-exchange": name }, svg);
        }
      }
      const yy = plot.y0 + 12 + legend.childNodes.length * 8;
      el("rect", { x: plot.x1 + 8, y: yy - 9, width: 10, height: 10, fill: colour }, legend);
      text(legend, plot.x1 + 22, yy, name);
    });
  }

  // ---- static mode (ccxt-cli plot) -------------------------------------------------------------------------

  function drawStatic(plot) {
    const svg = document.getElementById("chart");
    const fromMs = nsToMs(plot.from_ns);
    const toMs = nsToMs(plot.to_ns);
    if (plot.kind === "heatmap") drawHeatmap(svg, plot.data, fromMs, toMs);
    else drawLines(svg, plot.data, fromMs, toMs, plot.kind === "funding" ? 100 : 1);
    document.body.dataset.rendered = "1";
  }

  // ---- live mode -------------------------------------------------------------------------------------------

  const DURATIONS = { m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };
  const params = new URLSearchParams(window.location.search);
  // Seconds between data and health refreshes; a test may ask for quicker ones (?refresh=2&health=1).
  const DATA_EVERY_S = Number(params.get("refresh")) || 15;
  const HEALTH_EVERY_S = Number(params.get("health")) || 3;
  const state = { exchanges: [], refreshes: 0, seq: 0 };

  async function getJson(path, query) {
    const url = new URL(path, window.location.href);
    for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== "") url.searchParams.set(k, v);
    const response = await fetch(url);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail ? String(body.detail) : "HTTP " + response.status);
    return body;
  }

  function showError(panel, error) {
    const box = document.querySelector("#" + panel + " .error");
    box.hidden = !error;
    box.textContent = error ? String(error.message || error) : "";
  }

  function selectedExchanges() {
    return Array.from(document.querySelectorAll("#exchanges input:checked")).map((i) => i.value);
  }

  function window_() {
    const range = document.getElementById("range").value;
    const m = /^(\d+)([mhdw])$/.exec(range);
    const span = m ? Number(m[1]) * DURATIONS[m[2]] : 86400e3;
    const toMs = Date.now();
    return { fromMs: toMs - span, toMs: toMs };
  }

  async function loadExchanges() {
    const data = await getJson("exchanges");
    const wanted = params.get("exchanges") ? params.get("exchanges").split(",") : null;
    const box = document.getElementById("exchanges");
    state.exchanges = data.exchanges.filter((e) => e.enabled !== false);
    for (const ex of state.exchanges) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.value = ex.name;
      input.checked = wanted ? wanted.includes(ex.name) : true;
      input.addEventListener("change", () => refreshData());
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + ex.name));
      if (ex.streams_liquidations === false) label.title = "no public liquidation stream: open interest and funding only";
      box.appendChild(label);
    }
  }

  async function panel(name, work) {
    try {
      await work();
      showError(name, null);
    } catch (error) {
      showError(name, error);
    }
  }

  async function refreshData() {
    // A change of selection while a refresh is in flight: only the newest answer is drawn.
    const seq = ++state.seq;
    const current = () => seq === state.seq;
    const exchanges = selectedExchanges();
    const { fromMs, toMs } = window_();
    const query = {
      symbol: document.getElementById("symbol").value.trim(),
      exchanges: exchanges.join(","),
      from: new Date(fromMs).toISOString(),
      to: new Date(toMs).toISOString(),
    };
    if (!exchanges.length) {
      for (const id of ["heatmap", "oi", "funding"]) {
        const svg = document.getElementById(id);
        clear(svg);
        svg.dataset.cells = "0";
        svg.dataset.series = "";
        svg.dataset.exchanges = "";
        emptyNote(svg, "no exchange selected");
      }
      markRefreshed();
      return;
    }
    await Promise.all([
      panel("heatmap-panel", async () => {
        const data = await getJson("liquidations/heatmap", query);
        if (!current()) return;
        const svg = document.getElementById("heatmap");
        drawHeatmap(svg, data, fromMs, toMs);
        // What was asked, so that a test (or a curious user) can ask the API the same question.
        svg.dataset.from = query.from;
        svg.dataset.to = query.to;
      }),
      panel("oi-panel", async () => {
        const data = await getJson("open-interest", query);
        if (!current()) return;
        if (data.unit) document.getElementById("oi-unit").textContent = data.unit;
        drawLines(document.getElementById("oi"), data, fromMs, toMs, 1);
      }),
      panel("funding-panel", async () => {
        const data = await getJson("funding", query);
        if (current()) drawLines(document.getElementById("funding"), data, fromMs, toMs, 100);
      }),
    ]);
    if (current()) markRefreshed();
  }

  function markRefreshed() {
    state.refreshes += 1;
    const node = document.getElementById("updated");
    node.dataset.refreshes = String(state.refreshes);
    node.textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  }

  async function refreshHealth() {
    const badges = document.getElementById("badges");
    const daemon = document.getElementById("daemon");
    let health;
    try {
      health = await getJson("exchanges/health");
    } catch (error) {
      daemon.dataset.daemon = "unknown";
      daemon.textContent = "health unavailable: " + error.message;
      return;
    }
    daemon.dataset.daemon = health.daemon;
    const at = health.updated ? " (status " + health.updated.slice(11, 19) + " UTC)" : "";
    daemon.textContent = "daemon: " + health.daemon + at;
    const per = health.exchanges || {};
    const names = new Set(state.exchanges.map((e) => e.name).concat(Object.keys(per)));
    for (const name of Array.from(names).sort()) {
      let badge = badges.querySelector('[data-exchange="' + name + '"]');
      if (!badge) {
        badge = document.createElement("span");
        badge.className = "badge";
        badge.dataset.exchange = name;
        badge.textContent = name;
        badges.appendChild(badge);
      }
      const h = per[name];
      badge.dataset.status = h ? h.status : "none";
      badge.title = h ? h.reason : "no health: " + (health.daemon === "running" ? "not collected" : "daemon " + health.daemon);
    }
  }

  function every(seconds, job) {
    let running = false;
    window.setInterval(async () => {
      if (running) return; // a slow answer never piles up requests
      running = true;
      try {
        await job();
      } finally {
        running = false;
      }
    }, seconds * 1000);
  }

  async function startLive() {
    const symbol = params.get("symbol");
    if (symbol) document.getElementById("symbol").value = symbol;
    const range = params.get("range");
    if (range) document.getElementById("range").value = range;
    document.getElementById("controls").addEventListener("submit", (event) => {
      event.preventDefault();
      refreshData();
    });
    document.getElementById("range").addEventListener("change", () => refreshData());
    await panel("heatmap-panel", loadExchanges);
    await Promise.all([refreshHealth(), refreshData()]);
    every(HEALTH_EVERY_S, refreshHealth);
    every(DATA_EVERY_S, refreshData);
  }

  if (window.CCXT_PLOT) drawStatic(window.CCXT_PLOT);
  else startLive();
})();
