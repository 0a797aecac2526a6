// Sessions: every stored session, most recent first, updated live. Each message that
// arrives moves its session to the top and counts it at once; the list is fetched again
// shortly after (a new session, exact counts and cost come from the store).

import {clear, cost, duration, el, shortId, time, tokens} from "./dom.js";

const REFRESH_MS = 2000;
const RENDER_MS = 250;

export function showSessions(main, client) {
  let sessions = [];
  let refreshTimer = null;
  let renderTimer = null;
  const body = el("tbody");
  const count = el("span", {className: "muted"});
  const table = el("table", {className: "sessions", id: "sessions"},
    el("thead", {}, el("tr", {},
      ["Title", "Project", "Started", "Duration", "Messages", "Model", "Cost"].map(
        (name) => el("th", {className: ["Messages", "Cost"].includes(name) ? "number" : null},
                     name)))),
    body);
  clear(main).append(el("h1", {}, "Sessions ", count), table);

  function render() {
    renderTimer = null;
    count.textContent = `(${sessions.length})`;
    body.replaceChildren(...sessions.map((s) => el("tr", {dataset: {session: s.session}},
      el("td", {}, el("a", {href: `#/session/${encodeURIComponent(s.session)}`,
                            className: "title", title: s.session},
                        s.title || el("code", {}, shortId(s.session)))),
      el("td", {title: s.project}, s.project_name || s.project),
      el("td", {}, time(s.first_timestamp)),
      el("td", {}, duration(s.first_timestamp, s.last_timestamp)),
      el("td", {className: "number messages"}, String(s.messages)),
      el("td", {}, s.models.join(", ")),
      el("td", {className: "number", title: `${tokens(s.tokens)} tokens`
        + (s.unpriced_messages ? `; ${s.unpriced_messages} responses without a price` : "")},
         cost(s.cost_usd)))));
    if (!sessions.length) {
      body.append(el("tr", {}, el("td", {colspan: 7, className: "muted"},
        "No sessions stored yet: they appear here as transcripts are read.")));
    }
  }

  function scheduleRender() {
    if (renderTimer === null) renderTimer = setTimeout(render, RENDER_MS);
  }

  async function refresh() {
    refreshTimer = null;
    try {
      sessions = (await client.request("sessions")).sessions;
      render();
    } catch (error) {
      body.replaceChildren(el("tr", {}, el("td", {colspan: 7, className: "error"},
        `Cannot list sessions: ${error.message}`)));
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
    sub.close();
    clearTimeout(refreshTimer);
    clearTimeout(renderTimer);
  };
}
