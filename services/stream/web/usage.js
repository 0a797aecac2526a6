// Usage: tokens and cost by day and by model (GetUsage), drawn as SVG bar charts, and the
// tools report (GetToolStats): calls, errors, latency. Each bar carries its figures as a
// tooltip, and the tables under the charts give the same numbers exactly.

import {clear, cost, el, svg, tokens} from "./dom.js";

const KINDS = [
  ["input_tokens", "input"], ["output_tokens", "output"],
  ["cache_creation_tokens", "cache write"], ["cache_read_tokens", "cache read"]];
const DAYS_SHOWN = 60;

function legend() {
  return el("p", {className: "legend"}, KINDS.map(([, label], i) =>
    el("span", {className: `key k${i}`}, label)));
}

// Every day from the first row's to the last's, those without usage as empty rows, so the
// chart's time axis has no holes.
function everyDay(rows) {
  if (!rows.length) return rows;
  const byDay = new Map(rows.map((r) => [r.period, r]));
  const out = [];
  const last = new Date(`${rows[rows.length - 1].period}T00:00:00Z`);
  for (let d = new Date(`${rows[0].period}T00:00:00Z`); d <= last;
       d.setUTCDate(d.getUTCDate() + 1)) {
    const day = d.toISOString().slice(0, 10);
    out.push(byDay.get(day) || {period: day, total_tokens: 0, cost_usd: 0, messages: 0,
                                input_tokens: 0, output_tokens: 0, cache_creation_tokens: 0,
                                cache_read_tokens: 0});
  }
  return out;
}

// A stacked column per day: the four kinds of tokens, and the day's cost above it.
function dayChart(rows) {
  const width = 900, height = 260, left = 56, bottom = 40, top = 24;
  const max = Math.max(1, ...rows.map((r) => r.total_tokens));
  const step = (width - left) / Math.max(rows.length, 1);
  const bar = Math.max(2, step * 0.8);
  const scale = (height - bottom - top) / max;
  const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, className: "chart",
                            id: "usage-by-day", role: "img",
                            "aria-label": "tokens by day"});
  chart.append(
    svg("line", {x1: left, y1: height - bottom, x2: width, y2: height - bottom,
                 className: "axis"}),
    svg("text", {x: left - 6, y: top + 4, className: "tick", "text-anchor": "end"},
        tokens(max)),
    svg("text", {x: left - 6, y: height - bottom, className: "tick", "text-anchor": "end"},
        "0"));
  const labelEvery = Math.ceil(rows.length / 12);
  rows.forEach((r, i) => {
    const x = left + i * step + (step - bar) / 2;
    let y = height - bottom;
    const group = svg("g", {className: "bar"},
      svg("title", {}, `${r.period}: ${r.total_tokens.toLocaleString()} tokens, `
                       + `${cost(r.cost_usd)}, ${r.messages} responses`));
    KINDS.forEach(([field], k) => {
      const h = r[field] * scale;
      if (h <= 0) return;
      y -= h;
      group.append(svg("rect", {x, y, width: bar, height: h, className: `k${k}`}));
    });
    chart.append(group);
    if (r.messages && rows.length <= 31) {
      chart.append(svg("text", {x: x + bar / 2, y: y - 4, className: "tick cost",
                                "text-anchor": "middle"}, cost(r.cost_usd)));
    }
    if (i % labelEvery === 0) {
      chart.append(svg("text", {x: x + bar / 2, y: height - bottom + 16, className: "tick",
                                "text-anchor": "middle"}, r.period.slice(5)));
    }
  });
  return chart;
}

// One horizontal bar per model: its tokens, with cost and responses as the label.
function modelChart(rows) {
  const width = 900, row = 26, left = 220, right = 160;
  const height = rows.length * row + 8;
  const max = Math.max(1, ...rows.map((r) => r.total_tokens));
  const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, className: "chart",
                            id: "usage-by-model", role: "img",
                            "aria-label": "tokens by model"});
  rows.forEach((r, i) => {
    const y = 4 + i * row;
    const w = Math.max(1, (r.total_tokens / max) * (width - left - right));
    chart.append(
      svg("text", {x: left - 8, y: y + 16, className: "label", "text-anchor": "end"},
          r.period || "(unknown model)"),
      svg("rect", {x: left, y: y + 3, width: w, height: row - 8, className: "k1"},
          svg("title", {}, `${r.total_tokens.toLocaleString()} tokens`)),
      svg("text", {x: left + w + 6, y: y + 16, className: "label"},
          `${tokens(r.total_tokens)} · ${r.unpriced_messages === r.messages
            ? "no price" : cost(r.cost_usd)}`));
  });
  return chart;
}

function usageTable(rows, total, first) {
  const cells = (r) => [
    el("td", {}, r === total ? "total" : r.period || "(unknown)"),
    ...KINDS.map(([field]) => el("td", {className: "number"}, tokens(r[field]))),
    el("td", {className: "number"}, cost(r.cost_usd)),
    el("td", {className: "number"}, String(r.messages))];
  return el("table", {className: "figures"},
    el("thead", {}, el("tr", {}, el("th", {}, first),
      [...KINDS.map(([, l]) => l), "cost", "responses"].map(
        (h) => el("th", {className: "number"}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, cells(r))),
       el("tr", {className: "total"}, cells(total))));
}

function toolsTable(report) {
  const ms = (v, timed) => (timed ? `${Math.round(v)} ms` : "–");
  const rows = [...report.rows].sort((a, b) => b.calls - a.calls);
  return el("table", {className: "figures", id: "tools"},
    el("thead", {}, el("tr", {}, el("th", {}, "tool"),
      ["calls", "errors", "error rate", "rejected", "latency p50", "latency p95"].map(
        (h) => el("th", {className: "number"}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {},
      el("td", {}, r.tool), el("td", {className: "number"}, String(r.calls)),
      el("td", {className: "number"}, String(r.errors)),
      el("td", {className: "number"},
         r.calls ? `${((100 * r.errors) / r.calls).toFixed(1)}%` : "–"),
      el("td", {className: "number"}, String(r.rejections)),
      el("td", {className: "number"}, ms(r.latency_p50_ms, r.timed_calls)),
      el("td", {className: "number"}, ms(r.latency_p95_ms, r.timed_calls))))));
}

export function showUsage(main, client) {
  const byDay = el("section", {}, el("h2", {}, "Tokens and cost by day"),
                   el("p", {}, "loading…"));
  const byModel = el("section", {}, el("h2", {}, "By model"), el("p", {}, "loading…"));
  const toolReport = el("section", {}, el("h2", {}, "Tools"), el("p", {}, "loading…"));
  clear(main).append(el("h1", {}, "Usage"), byDay, byModel, toolReport);
  let stopped = false;

  function failed(section, title, error) {
    section.replaceChildren(el("h2", {}, title),
      el("p", {className: "error"}, `Not available: ${error.message}`));
  }

  client.request("usage", {by: "day"}).then((u) => {
    if (stopped) return;
    const days = everyDay(u.rows);
    const rows = days.slice(-DAYS_SHOWN);
    byDay.replaceChildren(el("h2", {}, "Tokens and cost by day"),
      el("p", {className: "muted"}, days.length > DAYS_SHOWN
        ? `the last ${DAYS_SHOWN} of ${days.length} days; ` : "",
         `prices as of ${u.pricing_date}`),
      legend(), dayChart(rows), usageTable(u.rows.slice(-DAYS_SHOWN), u.total, "day"));
  }, (error) => failed(byDay, "Tokens and cost by day", error));

  client.request("usage", {by: "model"}).then((u) => {
    if (stopped) return;
    const rows = [...u.rows].sort((a, b) => b.total_tokens - a.total_tokens);
    byModel.replaceChildren(el("h2", {}, "By model"), modelChart(rows),
      usageTable(rows, u.total, "model"));
  }, (error) => failed(byModel, "By model", error));

  client.request("tools").then((report) => {
    if (stopped) return;
    toolReport.replaceChildren(el("h2", {}, "Tools"), report.rows.length
      ? toolsTable(report) : el("p", {className: "muted"}, "No tool calls stored yet."));
  }, (error) => failed(toolReport, "Tools", error));

  return () => { stopped = true; };
}
