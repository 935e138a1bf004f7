// Processing progress of the selected event: polled often while work is pending, rarely when idle.
import { api } from "./photographer-api.js";
import { $ } from "./photographer-dom.js";
import { loadFailed } from "./photographer-failures.js";
import { importsSettled, loadRejected } from "./photographer-imports.js";
import { state } from "./photographer-state.js";

const POLL_BUSY_MS = 2000;
const POLL_IDLE_MS = 10000;

let pollTimer = 0;
let lastFailed = -1;
let lastRejected = -1;
let uploadsActive = () => 0;

// How many uploads are still queued or sending (uploads.js): the page polls fast meanwhile.
export function countUploadsWith(fn) {
  uploadsActive = fn;
}

export function duration(seconds) {
  if (seconds == null) return "–";
  if (seconds < 1) return "done";
  if (seconds < 90) return `${Math.ceil(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function renderStatus(st) {
  const c = st.counts;
  const finished = c.done + c.failed;
  // Objects of an imported storage prefix not yet copied in: photos to come, part of `remaining`.
  const importing = st.importing || 0;
  const box = $("processing");
  Object.assign(box.dataset, { total: st.total, done: c.done, failed: c.failed, remaining: st.remaining });
  $("proc-bar").max = Math.max(1, st.total + importing);
  $("proc-bar").value = finished;
  $("st-done").textContent = c.done;
  $("st-failed").textContent = c.failed;
  $("st-waiting").textContent = st.remaining;
  $("st-faces").textContent = st.faces;
  $("st-rate").textContent = st.photos_per_second > 0 ? `${st.photos_per_second.toFixed(1)}/s` : "–";
  $("st-eta").textContent = st.remaining === 0 ? "–" : duration(st.eta_seconds);
  let text;
  if (st.total === 0 && importing === 0) text = "No photos yet.";
  else if (st.remaining === 0)
    text = `All ${st.total} photos processed: ${c.done} done, ${c.failed} failed, ${st.faces} faces found.`;
  else text = `Processing: ${finished} of ${st.total + importing} finished.`;
  if (importing) text += ` ${importing} still being imported from storage.`;
  else importsSettled();
  const rejected = st.import_rejected || 0;
  if (rejected) text += ` ${rejected} file${rejected === 1 ? "" : "s"} in storage could not be imported.`;
  $("proc-state").textContent = text;
  if (c.failed !== lastFailed) {
    lastFailed = c.failed;
    loadFailed(lastFailed);
  }
  if (rejected !== lastRejected) {
    lastRejected = rejected;
    loadRejected(lastRejected);
  }
}

export async function poll() {
  clearTimeout(pollTimer);
  const ev = state.current;
  if (!ev) return;
  let busy = uploadsActive() > 0;
  try {
    const st = await (await api(`/events/${ev.slug}/status`)).json();
    if (ev !== state.current) return;
    renderStatus(st);
    busy = busy || st.remaining > 0;
  } catch (err) {
    if (err.status === 401) return;
    $("proc-state").textContent = `Could not load the status: ${err.message}`;
  }
  pollTimer = setTimeout(poll, busy && !document.hidden ? POLL_BUSY_MS : POLL_IDLE_MS);
}

// Forget what was shown (another event, or failures retried) and poll again.
export function restart() {
  lastFailed = -1;
  lastRejected = -1;
  poll();
}

export function stop() {
  clearTimeout(pollTimer);
}

export function initProgress() {
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.current) poll();
  });
}
