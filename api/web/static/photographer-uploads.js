// The upload queue: files are sent a few per request, a few requests at a time, with per-file
// progress, retries of failed requests, and a summary.
import { unauthorized } from "./photographer-api.js";
import { $, el } from "./photographer-dom.js";
import { poll } from "./photographer-progress.js";
import { state } from "./photographer-state.js";

const IMAGE_NAME = /\.(jpe?g|png|webp)$/i;
// A few requests in flight keep the connection busy without starving the status polls (browsers
// open at most 6 connections per host). Several files per request let the server queue them as
// one face batch; small enough requests keep the per-file progress meaningful.
const MAX_IN_FLIGHT = 3;
const BATCH_FILES = 8;
const BATCH_BYTES = 24 * 1024 * 1024;
const MAX_TRIES = 3;

const uploads = { queue: [], items: [], inFlight: 0, skipped: 0 };

// Files still queued or being sent.
export function activeUploads() {
  return uploads.queue.length + uploads.inFlight;
}

function setItem(item, state, text, fraction) {
  item.state = state;
  item.row.className = state;
  item.stateNode.textContent = text;
  if (fraction !== undefined) item.bar.value = fraction;
}

// Queue `files` ({file, path}) for the selected event; non-images are counted and skipped.
export function addFiles(files) {
  const ev = state.current;
  if (!ev) return;
  // Folders list in directory order: sorted, the list reads (and uploads) like a file browser.
  const images = files
    .filter((f) => IMAGE_NAME.test(f.file.name))
    .sort((a, b) => a.path.localeCompare(b.path, undefined, { numeric: true }));
  const list = $("upload-list");
  for (const f of images) {
    const bar = el("progress", { max: 1, value: 0 });
    const stateNode = el("span", { className: "state" }, "waiting");
    const row = el("li", { className: "waiting" }, el("span", { className: "name", title: f.path }, f.path), bar, stateNode);
    bar.setAttribute("aria-label", `Upload progress of ${f.path}`);
    const item = { file: f.file, path: f.path, slug: ev.slug, row, bar, stateNode, state: "waiting", tries: 0 };
    uploads.items.push(item);
    uploads.queue.push(item);
    list.append(row);
  }
  uploads.skipped += files.length - images.length;
  renderSummary();
  pump();
  poll();
}

function renderSummary() {
  const counts = { created: 0, duplicate: 0, rejected: 0, error: 0 };
  for (const it of uploads.items) if (it.state in counts) counts[it.state] += 1;
  const total = uploads.items.length;
  const finished = counts.created + counts.duplicate + counts.rejected + counts.error;
  const parts = [`${finished} of ${total} uploaded`];
  if (counts.duplicate) parts.push(`${counts.duplicate} already there`);
  if (counts.rejected) parts.push(`${counts.rejected} rejected`);
  if (counts.error) parts.push(`${counts.error} failed to upload`);
  if (uploads.skipped) parts.push(`${uploads.skipped} non-image files skipped`);
  const summary = $("upload-summary");
  summary.textContent = parts.join(" · ");
  summary.hidden = total === 0 && !uploads.skipped;
}

function nextBatch() {
  const batch = [];
  let bytes = 0;
  while (uploads.queue.length && batch.length < BATCH_FILES) {
    const item = uploads.queue[0];
    if (batch.length && (item.slug !== batch[0].slug || bytes + item.file.size > BATCH_BYTES)) break;
    batch.push(uploads.queue.shift());
    bytes += item.file.size;
  }
  return batch;
}

function pump() {
  while (uploads.inFlight < MAX_IN_FLIGHT && uploads.queue.length) send(nextBatch());
}

function send(batch) {
  uploads.inFlight += 1;
  const form = new FormData();
  for (const it of batch) {
    it.tries += 1;
    setItem(it, "sending", "uploading…", 0);
    form.append("files", it.file, it.file.name);
  }
  const sizes = batch.map((it) => it.file.size);
  const totalSize = sizes.reduce((a, b) => a + b, 0) || 1;
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `/events/${encodeURIComponent(batch[0].slug)}/photos`);
  xhr.setRequestHeader("Authorization", `Bearer ${state.apiKey}`);
  xhr.responseType = "json";
  // The request body holds the files in order, so the bytes sent so far tell how far each file is.
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    let sent = (e.loaded / e.total) * totalSize;
    batch.forEach((it, i) => {
      const part = Math.min(1, Math.max(0, sent / (sizes[i] || 1)));
      sent -= sizes[i];
      it.bar.value = part;
      if (part >= 1) it.stateNode.textContent = "saving…";
    });
  };
  const finish = () => {
    uploads.inFlight -= 1;
    renderSummary();
    pump();
    if (!activeUploads()) poll();
  };
  const failed = (message, retry) => {
    for (const it of batch) {
      if (retry && it.tries < MAX_TRIES) {
        setItem(it, "waiting", `retrying (${message})`, 0);
        uploads.queue.push(it);
      } else {
        setItem(it, "error", `upload failed: ${message}`, 0);
      }
    }
    finish();
  };
  xhr.onload = () => {
    if (xhr.status === 200 && xhr.response && Array.isArray(xhr.response.results)) {
      xhr.response.results.forEach((r, i) => {
        const it = batch[i];
        if (!it) return;
        if (r.status === "created") setItem(it, "created", "uploaded", 1);
        else if (r.status === "duplicate") setItem(it, "duplicate", "already in this event", 1);
        else setItem(it, "rejected", r.message || r.reason || "rejected", 1);
      });
      finish();
    } else if (xhr.status === 401) {
      failed("not signed in", false);
      unauthorized("Your API key was not accepted. Sign in again.");
    } else {
      const msg = (xhr.response && xhr.response.detail) || `HTTP ${xhr.status}`;
      failed(typeof msg === "string" ? msg : `HTTP ${xhr.status}`, xhr.status >= 500 || xhr.status === 429);
    }
  };
  xhr.onerror = () => failed("network error", true);
  xhr.send(form);
}

export function initUploads() {
  window.addEventListener("beforeunload", (e) => {
    if (activeUploads()) e.preventDefault();
  });
}
