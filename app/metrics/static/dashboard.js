// The dashboard page: fetch /api/orgs/<id>/dashboard, draw key figures, quartile strips (ECharts),
// the monthly trend and the gap table; the peer-group switch and the period reload it. The month
// picker points the PDF report link at its month.
import * as echarts from "/vendor/echarts.esm.min.js";
import { api } from "/static/js/common.js";

const root = document.getElementById("dashboard");
const defs = JSON.parse(document.getElementById("metric-defs").textContent);
const byCode = Object.fromEntries(defs.metrics.map((m) => [m.code, m]));
const form = document.getElementById("dash-form");
const status = document.getElementById("dash-status");
const charts = [];
let board = null;

function fmt(value, unit) {
  if (value === null || value === undefined) return "–";
  const n = Number(value);
  return unit === "%" ? `${n.toFixed(1)}%` : unit === "hours" ? `${n.toFixed(1)} ${defs.hours}` : `${+n.toFixed(2)}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function keyFigures() {
  const box = document.getElementById("key-figures");
  box.replaceChildren(...board.metrics.map((mv) => {
    const def = byCode[mv.code];
    const hidden = mv.suppressed_reason === "complementary" ? defs.withheld : defs.suppressed;
    const shown = mv.suppressed ? hidden : fmt(mv.value, def.unit);
    return el("div", { class: "card figure", "data-code": mv.code, title: def.definition },
      el("div", { class: "muted" }, def.label), el("strong", {}, shown), el("div", { class: "muted" }, `n=${mv.n}`));
  }));
}

function quartileStrips() {
  const box = document.getElementById("quartiles");
  charts.splice(0).forEach((c) => c.dispose());
  box.replaceChildren();
  const key = board.member_key;
  for (const def of defs.metrics) {
    const rows = board.members.map((r) => ({ name: r[key].name, mv: r.metrics.find((m) => m.code === def.code) }))
      .filter((r) => r.mv.peer && !r.mv.suppressed);
    if (!rows.length) continue;
    const div = el("div", { class: "chart strip", "data-code": def.code });
    box.append(el("h3", {}, def.label), div);
    const chart = echarts.init(div, null, { renderer: "svg" });
    charts.push(chart);
    chart.setOption({
      grid: { left: 8, right: 16, top: 8, bottom: 24, containLabel: true },
      tooltip: { trigger: "item" },
      xAxis: { type: "value", scale: true },
      yAxis: { type: "category", data: rows.map((r) => r.name), axisLabel: { width: 110, overflow: "truncate" } },
      series: [
        { type: "bar", stack: "q", silent: true, itemStyle: { color: "transparent" },
          data: rows.map((r) => r.mv.peer.p25) },
        { type: "bar", stack: "q", name: "p25–p75", itemStyle: { color: "#cfe3f7" },
          data: rows.map((r) => r.mv.peer.p75 - r.mv.peer.p25) },
        { type: "scatter", name: "p50", symbol: "rect", symbolSize: [3, 14], itemStyle: { color: "#555" },
          data: rows.map((r, i) => [r.mv.peer.p50, i]) },
        { type: "scatter", name: def.label, symbolSize: 10,
          itemStyle: { color: (p) => ({ better: "#2a7", worse: "#c33" })[rows[p.dataIndex].mv.verdict] || "#36c" },
          data: rows.map((r, i) => [r.mv.value, i]) },
      ],
    });
  }
}

function trend() {
  const code = document.getElementById("trend-metric").value;
  const div = document.getElementById("trend-chart");
  let chart = echarts.getInstanceByDom(div);
  if (!chart) { chart = echarts.init(div, null, { renderer: "svg" }); charts.push(chart); }
  chart.setOption({
    grid: { left: 8, right: 16, top: 16, bottom: 24, containLabel: true },
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", data: board.trends.months },
    yAxis: { type: "value", scale: true },
    series: [{ type: "line", name: byCode[code].label, connectNulls: false, data: board.trends.series[code] }],
  }, true);
}

function gapTable() {
  const body = document.querySelector("#gap-table tbody");
  const key = board.member_key;
  body.replaceChildren(...board.gaps.map((g) => {
    const def = byCode[g.code];
    const best = g.best_peer === "an anonymous peer" ? defs.anonymous : g.best_peer;
    return el("tr", { "data-code": g.code }, el("td", {}, g[key].name), el("td", {}, def.label),
      el("td", {}, fmt(g.value, def.unit)), el("td", {}, fmt(g.peer_p50, def.unit)), el("td", {}, fmt(g.gap, def.unit)),
      el("td", {}, `${g.opportunity}`), el("td", {}, best));
  }));
}

function query() {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
  return params;
}

async function load() {
  status.hidden = false;
  const params = query();
  try {
    board = await api(`/api/orgs/${root.dataset.org}/dashboard?${params}`);
  } catch (err) {
    status.textContent = err.message;
    return;
  }
  form.elements.from.value = board.period.from;
  form.elements.to.value = board.period.to;
  for (const a of document.querySelectorAll("a.csv")) {
    const p = new URLSearchParams(params);
    p.set("format", "csv");
    p.set("table", a.dataset.table);
    a.href = `/api/orgs/${root.dataset.org}/dashboard?${p}`;
  }
  keyFigures();
  quartileStrips();
  trend();
  gapTable();
  status.hidden = true;
  root.dataset.loaded = board.peers;
}

// The monthly report: the link follows the month picker (an emptied picker means the default month).
const reportMonth = document.getElementById("report-month");
const reportLink = document.getElementById("report-link");
reportMonth.addEventListener("change", () => {
  const url = new URL(reportLink.href);
  if (reportMonth.value) url.searchParams.set("month", reportMonth.value);
  else url.searchParams.delete("month");
  reportLink.href = url.pathname + url.search;
});

form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
document.getElementById("peer-group").addEventListener("change", load);
document.getElementById("trend-metric").addEventListener("change", trend);
window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
load();
