// Imports from the storage bucket: the form that starts one, and the objects that were not imported.
import { api } from "./photographer-api.js";
import { $, el } from "./photographer-dom.js";
import { state } from "./photographer-state.js";

let started = null; // the import this page started and has not yet seen finish: {found, prefix}

function say(text, isError = false) {
  const msg = $("import-msg");
  msg.textContent = text;
  msg.classList.toggle("error", isError);
  msg.classList.toggle("info", !isError);
  msg.hidden = !text;
}

// The import form; `onStarted` refreshes the status (main.js wires it to the progress poll).
export function initImports(onStarted) {
  $("import-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const ev = state.current;
    const prefix = $("import-prefix").value.trim();
    if (!ev) return;
    started = null;
    if (!prefix) return say("Type the prefix the album is under, e.g. imports/anna-ben-wedding/.", true);
    const button = $("import-form").querySelector("button");
    button.disabled = true;
    try {
      const res = await (await api(`/events/${ev.slug}/import`, { method: "POST", json: { prefix } })).json();
      started = { found: res.found, prefix: res.prefix };
      say(`Importing ${res.found} file${res.found === 1 ? "" : "s"} from ${res.prefix}…`);
      onStarted();
    } catch (err) {
      say(err.message, true);
    } finally {
      button.disabled = false;
    }
  });
}

// Another event was selected: its page starts with no import note.
export function forgetImport() {
  started = null;
  say("");
  $("rejected").hidden = true;
}

// Nothing is left to copy: the import this page started has finished (its rejects are listed below).
export function importsSettled() {
  if (!started) return;
  say(`Import from ${started.prefix} finished (${started.found} file${started.found === 1 ? "" : "s"}).`);
  started = null;
}

// Load the table of objects not imported; `count` is the number the status just reported.
export async function loadRejected(count) {
  const ev = state.current;
  if (!ev) return;
  if (count <= 0) {
    $("rejected").hidden = true;
    return;
  }
  try {
    const page = await (await api(`/events/${ev.slug}/imports/rejected?limit=200`)).json();
    if (ev !== state.current) return;
    $("rejected-count").textContent = `(${page.total})`;
    $("rejected-rows").replaceChildren(
      ...page.objects.map((o) => el("tr", {}, el("td", {}, o.key), el("td", {}, o.reason))),
    );
    $("rejected").hidden = page.total === 0;
  } catch (err) {
    console.warn("objects not imported:", err.message);
  }
}
