// Search: a query box over the stored messages (the query language of `threadline search`),
// the best hits first, each with its snippet and a link into its conversation at the
// message. The query lives in the URL's fragment (#/search/QUERY), so a search can be
// bookmarked, and going back from a conversation returns to its hits.
//
// Snippets are transcript text: each stretch becomes a text node, the matched ones inside a
// <mark> made with createElement. Nothing is parsed as markup, so a hit holding <script>
// shows as those characters.

import {clear, el, shortId, time} from "./dom.js";

const LIMIT = 50;
const WHERE = {prompt: "prompt", response: "answer", thinking: "thinking",
               tool_input: "tool input", tool_result: "tool result"};

export function conversationHref(session, sequence) {
  return `#/session/${encodeURIComponent(session)}/${sequence}`;
}

function snippet(parts) {
  return el("p", {className: "snippet"},
    parts.map(({text, highlighted}) => (highlighted ? el("mark", {}, text) : text)));
}

function hitRow(hit) {
  return el("li", {className: "hit", dataset: {session: hit.session,
                                              sequence: String(hit.sequence)}},
    el("header", {},
      el("a", {href: conversationHref(hit.session, hit.sequence), className: "open",
               title: `${hit.session}, message ${hit.ordinal}`},
         el("code", {}, shortId(hit.session)), ` · message ${hit.ordinal}`),
      el("span", {className: "role"}, hit.role || hit.type),
      el("span", {className: "muted"}, hit.columns.map((c) => WHERE[c] || c).join(", ")),
      el("time", {dateTime: hit.timestamp}, time(hit.timestamp)),
      el("span", {className: "muted", title: hit.project}, hit.project)),
    snippet(hit.snippet));
}

export function showSearch(main, client, query = "") {
  let stopped = false;
  const input = el("input", {type: "search", id: "search-query", value: query,
                             placeholder: 'words, "a phrase", prefix*, -exclude, role:user, '
                               + "tool:Bash, since:2026-11-01", "aria-label": "search query",
                             autocomplete: "off"});
  const form = el("form", {className: "search-form", id: "search-form", onsubmit: (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const hash = `#/search/${encodeURIComponent(text)}`;
    // The same query again asks again (new messages may match now): no hashchange then.
    if (location.hash === hash) run();
    else location.hash = hash;
  }}, input, el("button", {type: "submit"}, "Search"));
  const info = el("p", {className: "muted"});
  const list = el("ol", {className: "hits", id: "hits"});
  clear(main).append(el("h1", {}, "Search"), form, info, list);
  input.focus();

  async function run() {
    info.textContent = "searching…";
    info.className = "muted";
    try {
      const found = await client.request("search", {query, limit: LIMIT});
      if (stopped) return;
      list.replaceChildren(...found.hits.map(hitRow));
      const n = found.hits.length;
      info.textContent = !n ? "No messages match."
        : `${n}${found.more ? "+" : ""} ${n === 1 ? "message" : "messages"}, best first`
          + (found.recent_only ? " (so many match that these are the best of the most "
                                 + "recent ones)" : "");
    } catch (error) {
      if (stopped) return;
      list.replaceChildren();
      info.textContent = error.message;
      info.className = "error";
    }
  }

  if (query.trim()) run();
  else info.textContent = "Find prompts, answers, thinking and tool calls in every stored "
    + "session. Filters: project: session: role: tool: model: since: until: in:";
  return () => { stopped = true; };
}
