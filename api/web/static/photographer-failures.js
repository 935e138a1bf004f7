// Failed photos of the selected event, with their reasons, and the button that retries them.
import { api } from "./photographer-api.js";
import { $, el } from "./photographer-dom.js";
import { state } from "./photographer-state.js";

// Load the failed photos' table; `count` is the number the status just reported.
export async function loadFailed(count) {
  const ev = state.current;
  if (!ev) return;
  if (count <= 0) {
    $("failed").hidden = true;
    return;
  }
  try {
    const page = await (await api(`/events/${ev.slug}/photos/failed?limit=200`)).json();
    if (ev !== state.current) return;
    $("failed-count").textContent = `(${page.total})`;
    $("failed-rows").replaceChildren(
      ...page.photos.map((p) =>
        el("tr", {}, el("td", {}, p.filename), el("td", {}, p.reason), el("td", {}, String(p.attempts))),
      ),
    );
    $("failed").hidden = page.total === 0;
  } catch (err) {
    console.warn("failed photos:", err.message);
  }
}

// The retry button; `onRetried` refreshes the status (main.js wires it to the progress poll).
export function initRetry(onRetried) {
  $("retry").addEventListener("click", async () => {
    const ev = state.current;
    const button = $("retry");
    button.disabled = true;
    try {
      const res = await (await api(`/events/${ev.slug}/photos/retry`, { method: "POST" })).json();
      $("proc-state").textContent = `Retrying ${res.retried} photo${res.retried === 1 ? "" : "s"}…`;
      onRetried();
    } catch (err) {
      $("proc-state").textContent = `Retry failed: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
}
