// The page: connects to the gateway that served it, then shows one view at a time, chosen
// by the URL's fragment. A view is a function (main, client, ...args) that renders into
// `main` and returns what stops it (its subscriptions). A view is offered only when the
// gateway lists its request type among its capabilities.

import {Client} from "./client.js";
import {showConversation} from "./conversation.js";
import {el} from "./dom.js";
import {showSearch} from "./search.js";
import {showSessions} from "./sessions.js";
import {showUsage} from "./usage.js";

const main = document.getElementById("main");
const state = document.getElementById("connection");
const form = document.getElementById("token-form");
const TOKEN_KEY = "threadline-token";

// Each route: its view, and the request type the gateway must answer for it. A conversation
// may name the message to open at (a search hit's sequence).
const ROUTES = [
  {pattern: /^#\/session\/([^/]+)(?:\/(\d+))?$/, needs: "session_messages",
   show: showConversation},
  {pattern: /^#\/search(?:\/(.*))?$/, needs: "search", show: showSearch},
  {pattern: /^#\/usage$/, needs: "usage", show: showUsage},
  {pattern: /^(#\/?)?$/, needs: "sessions", show: showSessions},
];

let client = null;
let ready = false;  // the gateway has answered once: its capabilities are known
let stop = () => {};

// A part of the fragment as typed: absent stays undefined, a stray "%" stays as it is.
function decoded(part) {
  if (part === undefined) return undefined;
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function route() {
  stop();
  const hash = location.hash;
  for (const {pattern, needs, show} of ROUTES) {
    const found = hash.match(pattern);
    if (!found) continue;
    if (!client.has(needs)) {
      main.replaceChildren(el("p", {className: "error"},
        `This gateway does not answer "${needs}" requests.`));
      stop = () => {};
      return;
    }
    stop = show(main, client, ...found.slice(1).map(decoded));
    for (const link of document.querySelectorAll("#nav a")) {
      link.classList.toggle("current", link.getAttribute("href") === (hash || "#/")
        || (needs === "session_messages" && link.dataset.view === "sessions")
        || (needs === "search" && link.dataset.view === "search"));
    }
    return;
  }
  main.replaceChildren(el("p", {className: "error"}, "No such page."));
  stop = () => {};
}

function showState(what, detail) {
  const text = {open: "live", reconnecting: "reconnecting…", error: "error",
                token: "token needed", store_error: "store cannot write"}[what] || what;
  state.textContent = text;
  state.className = `connection ${what}`;
  state.title = detail ? String(detail.message || detail) : "";
}

async function start(token) {
  if (client) client.close();
  client = new Client(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
                      token);
  client.onstate = showState;
  // The first time the gateway answers, possibly only after some retries, show the view.
  client.onopen = () => {
    form.hidden = true;
    for (const link of document.querySelectorAll("#nav a[data-needs]")) {
      link.hidden = !client.has(link.dataset.needs);
    }
    if (!ready) {
      ready = true;
      route();
    }
  };
  try {
    await client.connect();
  } catch (error) {
    if (error.code === "unauthenticated" || error.code === "invalid_token") {
      sessionStorage.removeItem(TOKEN_KEY);
      form.hidden = false;
    } else if (!ready) {
      main.replaceChildren(el("p", {className: "muted"},
        `Cannot reach the gateway yet (${error.message}); trying again…`));
    }
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = document.getElementById("token-input").value.trim();
  if (!token) return;
  // Kept for this tab only, so that reloading does not ask again.
  sessionStorage.setItem(TOKEN_KEY, token);
  start(token);
});
window.addEventListener("hashchange", () => { if (ready) route(); });

// The gateway puts the token in the page unless every read needs it (then the user gives it).
const given = document.querySelector('meta[name="threadline-token"]').content;
start(given || sessionStorage.getItem(TOKEN_KEY) || "");
