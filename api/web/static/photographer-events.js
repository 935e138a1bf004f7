// The photographer's events: the list, creating one, and selecting one (from the URL's #slug).
import { api } from "./photographer-api.js";
import { $, el, showError } from "./photographer-dom.js";
import { forgetImport } from "./photographer-imports.js";
import { restart } from "./photographer-progress.js";
import { showShare } from "./photographer-share.js";
import { state } from "./photographer-state.js";

export async function loadEvents() {
  state.events = await (await api("/events")).json();
  renderEvents();
}

function link(ev) {
  const a = el("a", { href: `#${encodeURIComponent(ev.slug)}` }, ev.name, el("small", {}, `code ${ev.access_code}`));
  a.setAttribute("aria-current", String(!!state.current && ev.slug === state.current.slug));
  return a;
}

function renderEvents() {
  $("events").replaceChildren(...state.events.map((ev) => el("li", {}, link(ev))));
  $("no-events").hidden = state.events.length > 0;
}

export function selectEvent(slug) {
  const ev = state.events.find((x) => x.slug === slug);
  if (!ev || (state.current && state.current.slug === ev.slug)) {
    renderEvents();
    return;
  }
  state.current = ev;
  renderEvents();
  $("event").hidden = false;
  $("event-title").textContent = ev.name;
  $("event-code").textContent = ev.access_code;
  $("event-retention").textContent = ev.retention_until;
  $("site-url").textContent = location.origin;
  $("failed").hidden = true;
  forgetImport();
  showShare(ev);
  restart();
}

export function initEvents() {
  $("create-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("event-name").value.trim();
    if (!name) return showError($("create-error"), "Give the event a name.");
    try {
      const ev = await (await api("/events", { method: "POST", json: { name } })).json();
      showError($("create-error"), "");
      $("event-name").value = "";
      state.events.unshift(ev);
      location.hash = encodeURIComponent(ev.slug);
      selectEvent(ev.slug);
    } catch (err) {
      showError($("create-error"), err.message);
    }
  });
  window.addEventListener("hashchange", () => selectEvent(decodeURIComponent(location.hash.slice(1))));
}
