// Sessions: every stored session, most recent first, updated live. Each message that
// arrives moves its session to the top and counts it at once; the list is fetched again
// shortly after (a new session, exact counts come from the store). Models, tokens and cost
// come from a usage request by session, which costs the store far more than the list: the
// list is shown first, those columns are filled in when they come, and refreshed seldom.

import {clear, cost, duration, el, shortId, time, tokens} from "./dom.js";

const REFRESH_MS = 2000;
const USAGE_REFRESH_MS = 30000;
const RENDER_MS = 250;

export function showSessions(main, client) {
  let sessions = [];
  let billed = new Map();  // session id -> its usage row
  let usageAsked = 0;
  let refreshTimer = null;
  let renderTimer = null;
  let stopped = false;
  const body = el("tbody");
  const count = el("span", {className: "muted"});
  const table = el("table", {className: "sessions", id: "sessions"},
    el("thead", {}, el("tr", {},
      ["Title", "Project", "Started", "Duration", "Messages", "Model", "Cost"].map(
        (name) => el("th", {className: ["Messages", "Cost"].includes(name) ? "number" : null},
                     name)))),
    body);
  clear(main).append(el("h1", {}, "Sessions ", count), table);

  function row(s) {
    const u = billed.get(s.session);
    const priced = u && u.messages > u.unpriced_messages;
    return el("tr", {dataset: {session: s.session}},
      el("td", {}, el("a", {href: `#/session/${encodeURIComponent(s.session)}`,
                            className: "title", title: s.session},
                        s.title || el("code", {}, shortId(s.session)))),
      el("td", {title: s.project}, s.project_name || s.project),
      el("td", {}, time(s.first_timestamp)),
      el("td", {}, duration(s.first_timestamp, s.last_timestamp)),
      el("td", {className: "number messages"}, String(s.messages)),
      el("td", {className: "models"}, u ? u.models.join(", ") : ""),
      el("td", {className: "number cost", title: u ? `${tokens(u.total_tokens)} tokens`
        + (u.unpriced_messages ? `; ${u.unpriced_messages} responses without a price` : "")
        : null}, u ? cost(priced ? u.cost_usd : null) : ""));
  }

  function render() {
    renderTimer = null;
    count.textContent = `(${sessions.length})`;
    body.replaceChildren(...sessions.map(row));
    if (!sessions.length) {
      body.append(el("tr", {}, el("td", {colspan: 7, className: "muted"},
        "No sessions stored yet: they appear here as transcripts are read.")));
    }
  }

  function scheduleRender() {
    if (renderTimer === null) renderTimer = setTimeout(render, RENDER_MS);
  }

  async function refreshUsage() {
    usageAsked = Date.now();
    try {
      const usage = await client.request("usage", {by: "session"});
      billed = new Map(usage.rows.map((r) => [r.period, r]));
      scheduleRender();
    } catch {
      // The list stands without its cost column; the next refresh asks again.
    }
  }

  async function refresh() {
    refreshTimer = null;
    if (Date.now() - usageAsked > USAGE_REFRESH_MS) refreshUsage();
    try {
      sessions = (await client.request("sessions")).sessions;
      render();
    } catch (error) {
      body.replaceChildren(el("tr", {}, el("td", {colspan: 7, className: "error"},
        `Cannot list sessions: ${error.message}`)));
      // Disconnected, or the store restarting: ask again (the subscription resumes itself).
      if (!stopped && refreshTimer === null) refreshTimer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function onchange(frame) {
    if (frame.type !== "message") return;
    const found = sessions.findIndex((s) => s.session === frame.session);
    if (found >= 0) {
      const s = sessions[found];
      s.messages += 1;
      if (frame.message.timestamp > s.last_timestamp) s.last_timestamp = frame.message.timestamp;
      sessions.splice(found, 1);
      sessions.unshift(s);
      scheduleRender();
    }
    if (refreshTimer === null) refreshTimer = setTimeout(refresh, REFRESH_MS);
  }

  const sub = client.subscribe({}, undefined, onchange);
  refresh();
  return () => {
    stopped = true;
    sub.close();
    clearTimeout(refreshTimer);
    clearTimeout(renderTimer);
  };
}
