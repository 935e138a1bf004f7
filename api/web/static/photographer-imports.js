// Imports from the storage bucket: the form that starts one, and the objects that were not imported.
import { api } from "./photographer-api.js";
import { $, el } from "./photographer-dom.js";
import { state } from "./photographer-state.js";

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
    if (!prefix) return say("Type the prefix the album is under, e.g. imports/anna-ben-wedding/.", true);
    const button = $("import-form").querySelector("button");
    button.disabled = true;
    try {
      const res = await (await api(`/events/${ev.slug}/import`, { method: "POST", json: { prefix } })).json();
      say(`Importing ${res.found} photo${res.found === 1 ? "" : "s"} from ${res.prefix}…`);
      onStarted();
    } catch (err) {
      say(err.message, true);
    } finally {
      button.disabled = false;
    }
  });
}

// Every object of the started imports is copied in: the "Importing…" note has served (errors stay).
export function importsSettled() {
  if ($("import-msg").classList.contains("info")) say("");
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
