// Conversation: one session as a person reads it. Prompts and answers in full; each tool
// call one line (tool, main argument, outcome, duration) that opens to its input and result;
// thinking folded; subagents' messages marked, and the call that started one links to them.
// The stored messages are read page by page, then a subscription with `since` = the last
// sequence read follows the session: nothing falls between the two, and a reconnect resumes
// from the last sequence received (client.js). Opened at a message (a search hit's
// sequence), the page scrolls to it once read and marks it; a tool result, shown inside its
// call's line, opens that line.

import {clear, el, shortId, time} from "./dom.js";

// Records that are no part of the conversation as read: bookkeeping, and Codex's event_msg
// and Claude Code's progress, which repeat messages stored in their own records.
const HIDDEN_TYPES = new Set(["progress", "summary", "file-history-snapshot", "queue-operation",
                              "attachment", "session_meta", "turn_context", "event_msg",
                              "token_usage_record"]);
const ARGUMENT_KEYS = ["command", "file_path", "path", "pattern", "url", "query",
                       "description", "prompt", "cmd"];
const LINE_CHARS = 160;
const PAGE = 500;

function mainArgument(input) {
  if (input === null || input === undefined) return "";
  if (typeof input !== "object") return String(input);
  for (const key of ARGUMENT_KEYS) {
    const value = input[key];
    if (typeof value === "string" && value) return value;
    if (Array.isArray(value) && value.length) return value.join(" ");
  }
  const first = Object.values(input).find((v) => typeof v === "string" && v);
  return first || "";
}

function oneLine(text) {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > LINE_CHARS ? `${line.slice(0, LINE_CHARS - 1)}…` : line;
}

export function showConversation(main, client, sessionId, target) {
  const list = el("div", {className: "conversation", id: "conversation"});
  const heading = el("h1", {}, "Session ", el("code", {}, shortId(sessionId)));
  const info = el("p", {className: "muted"}, "loading…");
  clear(main).append(el("p", {}, el("a", {href: "#/"}, "← Sessions")), heading, info, list);

  const tools = new Map();    // tool_use_id -> {outcome, result, details, agentLink}
  const agents = new Map();   // agent id -> first element of its messages
  const shown = [];           // [sequence, element showing it], in order: where a hit is
  let sub = null;
  let stopped = false;
  let count = 0;

  function subagentLink(agentId) {
    return el("button", {type: "button", className: "link", onclick: () => {
      const target = agents.get(agentId);
      if (target) target.scrollIntoView({block: "start"});
    }}, `subagent ${shortId(agentId)} →`);
  }

  function toolLine(block, sidechain) {
    const outcome = el("span", {className: "outcome pending"}, "…");
    const result = el("pre", {className: "result"});
    const input = typeof block.input === "string" ? block.input
      : JSON.stringify(block.input, null, 2);
    const details = el("details", {className: "tool" + (sidechain ? " subagent" : "")},
      el("summary", {},
        el("span", {className: "tool-name"}, block.tool_name || "tool"), " ",
        el("span", {className: "argument"}, oneLine(mainArgument(block.input))), " ",
        outcome),
      el("pre", {className: "input"}, input || ""), result);
    tools.set(block.tool_use_id, {outcome, result, details});
    return details;
  }

  function attachResult(block, sequence) {
    const call = tools.get(block.tool_use_id);
    if (!call) return false;
    shown.push([sequence, call.details]);
    call.outcome.className = `outcome ${block.is_error ? "failed" : "ok"}`;
    call.outcome.textContent = (block.is_error ? "error" : "ok")
      + (block.duration_seconds !== undefined ? ` · ${block.duration_seconds.toFixed(1)} s` : "");
    call.result.textContent = block.text;
    if (block.agent_id) call.details.querySelector("summary").append(" ",
      subagentLink(block.agent_id));
    return true;
  }

  function render(sequence, m) {
    if (m.is_meta || HIDDEN_TYPES.has(m.type) || (!m.role && m.type !== "system")) return;
    const sidechain = Boolean(m.agent_id || m.is_sidechain);
    const parts = [];
    for (const block of m.content) {
      if (block.kind === "tool_use" || block.kind === "server_tool_use") {
        parts.push(toolLine(block, sidechain));
      } else if (block.kind === "tool_result") {
        if (!attachResult(block, sequence)) {
          parts.push(el("details", {className: "tool orphan"}, el("summary", {},
            "result of an earlier call ", el("span", {className: "argument"},
              oneLine(block.text))), el("pre", {className: "result"}, block.text)));
        }
      } else if (block.kind === "thinking" && block.text) {
        parts.push(el("details", {className: "thinking"}, el("summary", {}, "thinking"),
          el("div", {className: "text"}, block.text)));
      } else if (block.kind === "image") {
        parts.push(el("p", {className: "muted"}, "[image]"));
      } else if (block.text && block.text.trim()) {
        parts.push(el("div", {className: "text"}, block.text));
      }
    }
    if (!m.content.length && m.text && m.text.trim()) parts.push(el("div", {className: "text"}, m.text));
    if (m.type === "system" && m.subtype === "compact_boundary") {
      parts.unshift(el("div", {className: "marker"}, "conversation compacted"));
    }
    if (!parts.length) return;
    const kind = m.role === "user" && parts.some((p) => p.className === "text")
      ? "prompt" : (m.role || m.type);
    const node = el("article", {className: `message ${kind}` + (sidechain ? " subagent" : ""),
                                dataset: {sequence: String(sequence)}},
      el("header", {},
        // A subagent's prompt was written by the agent that started it, not by the user.
        el("span", {className: "role"}, kind !== "prompt" ? kind : sidechain ? "task" : "you"),
        sidechain ? el("span", {className: "badge"},
                       `subagent ${shortId(m.agent_id) || "sidechain"}`) : null,
        el("time", {dateTime: m.timestamp}, time(m.timestamp)),
        m.model ? el("span", {className: "muted"}, m.model) : null),
      parts);
    if (m.agent_id && !agents.has(m.agent_id)) agents.set(m.agent_id, node);
    shown.push([sequence, node]);
    list.append(node);
    count += 1;
  }

  // The element showing message `sequence`; for a message not shown by itself (a hidden
  // record), the nearest one before it.
  function showTarget(sequence) {
    let found = null;
    for (const [shownSequence, node] of shown) {
      if (shownSequence > sequence) break;
      found = node;
    }
    if (!found) return;
    if (found.tagName === "DETAILS") found.open = true;
    found.classList.add("target");
    found.id = "target";
    found.scrollIntoView({block: "center"});
  }

  function onchange(frame) {
    if (frame.type !== "message") return;
    const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
    render(frame.sequence, frame.message);
    info.textContent = `${count} messages shown · live`;
    if (nearBottom) window.scrollTo(0, document.body.scrollHeight);
  }

  async function load() {
    let after = 0;
    let session = sessionId;
    try {
      for (;;) {
        const page = await client.request("session_messages",
                                          {session, after, limit: PAGE});
        if (stopped) return;
        session = page.session;
        for (const {sequence, message} of page.messages) {
          render(sequence, message);
          after = sequence;
        }
        if (!page.next_after) break;
      }
    } catch (error) {
      info.textContent = `Cannot read the session: ${error.message}`;
      info.className = "error";
      return;
    }
    heading.replaceChildren("Session ", el("code", {title: session}, shortId(session)));
    info.textContent = `${count} messages shown · live`;
    if (target !== undefined) showTarget(Number(target));
    sub = client.subscribe({session}, after, onchange);
  }

  load();
  return () => {
    stopped = true;
    if (sub) sub.close();
  };
}
