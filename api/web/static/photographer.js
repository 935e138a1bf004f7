// The photographer page: sign in with an API key, create and pick events, upload photos (files or
// folders, with per-file progress), watch processing, retry failures and share the attendee link.
"use strict";
(() => {
  const KEY_STORE = "photomatch.apiKey";
  const IMAGE_NAME = /\.(jpe?g|png|webp)$/i;
  // A few requests in flight keep the connection busy without starving the status polls (browsers
  // open at most 6 connections per host). Several files per request let the server queue them as
  // one face batch; small enough requests keep the per-file progress meaningful.
  const MAX_IN_FLIGHT = 3;
  const BATCH_FILES = 8;
  const BATCH_BYTES = 24 * 1024 * 1024;
  const MAX_TRIES = 3;
  const POLL_BUSY_MS = 2000;
  const POLL_IDLE_MS = 10000;

  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  };

  let apiKey = localStorage.getItem(KEY_STORE) || "";
  let events = [];
  let current = null;
  let pollTimer = 0;
  let lastFailed = -1;
  let qrUrl = "";

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function detail(res) {
    try {
      const body = await res.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
    } catch (_) {
      /* not JSON */
    }
    return `${res.status} ${res.statusText}`;
  }

  async function api(path, { method = "GET", json } = {}) {
    const headers = { Authorization: `Bearer ${apiKey}` };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    const res = await fetch(path, { method, headers, body });
    if (res.status === 401) {
      signOut("Your API key was not accepted. Sign in again.");
    }
    if (!res.ok) throw new ApiError(res.status, await detail(res));
    return res;
  }

  function showError(node, text) {
    node.textContent = text;
    node.hidden = !text;
  }

  // --- sign in ---------------------------------------------------------------------------------

  // Show the sign-in form; `forget` drops the stored key (a rejected key, or the sign-out button).
  function signOut(message = "", forget = true) {
    if (forget) {
      apiKey = "";
      localStorage.removeItem(KEY_STORE);
    }
    current = null;
    clearTimeout(pollTimer);
    $("workspace").hidden = true;
    $("signout").hidden = true;
    $("signin").hidden = false;
    showError($("signin-error"), message);
    $("api-key").value = "";
    $("api-key").focus();
  }

  async function signIn(key) {
    apiKey = key;
    try {
      await loadEvents();
    } catch (err) {
      // A rejected key has already signed out; any other failure keeps the key for the next try.
      if (err.status !== 401) signOut(`Could not reach the server: ${err.message}`, false);
      return false;
    }
    localStorage.setItem(KEY_STORE, key);
    $("signin").hidden = true;
    $("workspace").hidden = false;
    $("signout").hidden = false;
    selectEvent(decodeURIComponent(location.hash.slice(1)) || (events[0] && events[0].slug));
    return true;
  }

  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return showError($("signin-error"), "Enter your API key.");
    showError($("signin-error"), "");
    await signIn(key);
  });
  $("signout").addEventListener("click", () => signOut());

  // --- events ----------------------------------------------------------------------------------

  async function loadEvents() {
    events = await (await api("/events")).json();
    renderEvents();
  }

  function link(ev) {
    const a = el("a", { href: `#${encodeURIComponent(ev.slug)}` }, ev.name, el("small", {}, `code ${ev.access_code}`));
    a.setAttribute("aria-current", String(!!current && ev.slug === current.slug));
    return a;
  }

  function renderEvents() {
    const list = $("events");
    list.replaceChildren(
      ...events.map((ev) =>
        el(
          "li",
          {},
          link(ev),
        ),
      ),
    );
    $("no-events").hidden = events.length > 0;
  }

  $("create-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("event-name").value.trim();
    if (!name) return showError($("create-error"), "Give the event a name.");
    try {
      const ev = await (await api("/events", { method: "POST", json: { name } })).json();
      showError($("create-error"), "");
      $("event-name").value = "";
      events.unshift(ev);
      location.hash = encodeURIComponent(ev.slug);
      selectEvent(ev.slug);
    } catch (err) {
      showError($("create-error"), err.message);
    }
  });

  window.addEventListener("hashchange", () => selectEvent(decodeURIComponent(location.hash.slice(1))));

  function selectEvent(slug) {
    const ev = events.find((x) => x.slug === slug);
    if (!ev || (current && current.slug === ev.slug)) {
      renderEvents();
      return;
    }
    current = ev;
    lastFailed = -1;
    renderEvents();
    $("event").hidden = false;
    $("event-title").textContent = ev.name;
    $("event-code").textContent = ev.access_code;
    $("event-retention").textContent = ev.retention_until;
    $("site-url").textContent = location.origin;
    $("failed").hidden = true;
    showShare(ev);
    poll();
  }

  // --- sharing ---------------------------------------------------------------------------------

  function setShareUrl(url) {
    $("share-url").value = url;
    $("open-link").href = url;
  }

  async function showShare(ev) {
    setShareUrl(ev.attendee_url);
    $("qr").hidden = true;
    $("qr-download").hidden = true;
    try {
      const link = await (await api(`/events/${ev.slug}/attendee-link`)).json();
      if (current !== ev) return;
      // absolute_url honours the server's public_url (the address attendees can reach).
      const url = link.absolute_url || new URL(link.url, location.origin).href;
      setShareUrl(url);
      $("site-url").textContent = new URL(url).origin;
      // An <img> cannot send the API key: fetch the SVG and show it through a blob: URL.
      const svg = await (await api(link.qr_svg_url || `/events/${ev.slug}/qr.svg`)).blob();
      if (current !== ev) return;
      if (qrUrl) URL.revokeObjectURL(qrUrl);
      qrUrl = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
      $("qr").src = qrUrl;
      $("qr").hidden = false;
      $("qr-download").href = qrUrl;
      $("qr-download").download = `${ev.slug}-qr.svg`;
      $("qr-download").hidden = false;
    } catch (err) {
      // Without the signed-link endpoint the code link from the event still works.
      if (err.status !== 404) console.warn("attendee link:", err.message);
    }
  }

  $("copy-link").addEventListener("click", async () => {
    const input = $("share-url");
    try {
      await navigator.clipboard.writeText(input.value);
    } catch (_) {
      input.select();
      document.execCommand("copy");
    }
    $("copy-link").textContent = "Copied";
    setTimeout(() => ($("copy-link").textContent = "Copy"), 1500);
  });

  // --- processing status -----------------------------------------------------------------------

  function duration(seconds) {
    if (seconds == null) return "–";
    if (seconds < 1) return "done";
    if (seconds < 90) return `${Math.ceil(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function renderStatus(st) {
    const c = st.counts;
    const finished = c.done + c.failed;
    const box = $("processing");
    Object.assign(box.dataset, { total: st.total, done: c.done, failed: c.failed, remaining: st.remaining });
    $("proc-bar").max = Math.max(1, st.total);
    $("proc-bar").value = finished;
    $("st-done").textContent = c.done;
    $("st-failed").textContent = c.failed;
    $("st-waiting").textContent = st.remaining;
    $("st-faces").textContent = st.faces;
    $("st-rate").textContent = st.photos_per_second > 0 ? `${st.photos_per_second.toFixed(1)}/s` : "–";
    $("st-eta").textContent = st.remaining === 0 ? "–" : duration(st.eta_seconds);
    let text;
    if (st.total === 0) text = "No photos yet.";
    else if (st.remaining === 0)
      text = `All ${st.total} photos processed: ${c.done} done, ${c.failed} failed, ${st.faces} faces found.`;
    else text = `Processing: ${finished} of ${st.total} finished.`;
    $("proc-state").textContent = text;
    if (c.failed !== lastFailed) {
      lastFailed = c.failed;
      loadFailed();
    }
  }

  async function poll() {
    clearTimeout(pollTimer);
    const ev = current;
    if (!ev) return;
    let busy = uploads.active() > 0;
    try {
      const st = await (await api(`/events/${ev.slug}/status`)).json();
      if (ev !== current) return;
      renderStatus(st);
      busy = busy || st.remaining > 0;
    } catch (err) {
      if (err.status === 401) return;
      $("proc-state").textContent = `Could not load the status: ${err.message}`;
    }
    pollTimer = setTimeout(poll, busy && !document.hidden ? POLL_BUSY_MS : POLL_IDLE_MS);
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && current) poll();
  });

  async function loadFailed() {
    const ev = current;
    if (!ev) return;
    if (lastFailed <= 0) {
      $("failed").hidden = true;
      return;
    }
    try {
      const page = await (await api(`/events/${ev.slug}/photos/failed?limit=200`)).json();
      if (ev !== current) return;
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

  $("retry").addEventListener("click", async () => {
    const ev = current;
    const button = $("retry");
    button.disabled = true;
    try {
      const res = await (await api(`/events/${ev.slug}/photos/retry`, { method: "POST" })).json();
      $("proc-state").textContent = `Retrying ${res.retried} photo${res.retried === 1 ? "" : "s"}…`;
      lastFailed = -1;
      poll();
    } catch (err) {
      $("proc-state").textContent = `Retry failed: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });

  // --- uploads ---------------------------------------------------------------------------------

  const uploads = {
    queue: [],
    items: [],
    inFlight: 0,
    active() {
      return this.queue.length + this.inFlight;
    },
  };

  function setItem(item, state, text, fraction) {
    item.state = state;
    item.row.className = state;
    item.stateNode.textContent = text;
    if (fraction !== undefined) item.bar.value = fraction;
  }

  function addFiles(files) {
    const ev = current;
    if (!ev) return;
    // Folders list in directory order: sorted, the list reads (and uploads) like a file browser.
    const images = files
      .filter((f) => IMAGE_NAME.test(f.file.name))
      .sort((a, b) => a.path.localeCompare(b.path, undefined, { numeric: true }));
    const skipped = files.length - images.length;
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
    uploads.skipped = (uploads.skipped || 0) + skipped;
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
    xhr.setRequestHeader("Authorization", `Bearer ${apiKey}`);
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
      if (!uploads.active()) poll();
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
        signOut("Your API key was not accepted. Sign in again.");
      } else {
        const msg = (xhr.response && xhr.response.detail) || `HTTP ${xhr.status}`;
        failed(typeof msg === "string" ? msg : `HTTP ${xhr.status}`, xhr.status >= 500 || xhr.status === 429);
      }
    };
    xhr.onerror = () => failed("network error", true);
    xhr.send(form);
  }

  window.addEventListener("beforeunload", (e) => {
    if (uploads.active()) e.preventDefault();
  });

  // Inputs: plain files or a folder (webkitRelativePath keeps the sub-folders for display).
  $("pick-files").addEventListener("change", (e) => {
    addFiles([...e.target.files].map((file) => ({ file, path: file.name })));
    e.target.value = "";
  });
  $("pick-folder").addEventListener("change", (e) => {
    addFiles([...e.target.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
    e.target.value = "";
  });

  // Drag and drop: files, or folders walked with the entries API (readEntries returns batches).
  function readAll(reader) {
    return new Promise((resolve, reject) => {
      const out = [];
      const next = () =>
        reader.readEntries((batch) => {
          if (!batch.length) return resolve(out);
          out.push(...batch);
          next();
        }, reject);
      next();
    });
  }

  async function walk(entry, out) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push({ file, path: entry.fullPath.replace(/^\//, "") });
    } else if (entry.isDirectory) {
      for (const child of await readAll(entry.createReader())) await walk(child, out);
    }
  }

  const zone = $("dropzone");
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", (e) => {
    if (!zone.contains(e.relatedTarget)) zone.classList.remove("over");
  });
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const items = [...(e.dataTransfer.items || [])];
    // Entries must be taken synchronously, before the first await ends the drop event.
    const entries = items.map((it) => (it.webkitGetAsEntry ? it.webkitGetAsEntry() : null));
    if (entries.length && entries.every(Boolean)) {
      const out = [];
      for (const entry of entries) await walk(entry, out);
      addFiles(out);
    } else {
      addFiles([...e.dataTransfer.files].map((file) => ({ file, path: file.name })));
    }
  });
  // A file dropped just outside the zone must not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  // --- start -----------------------------------------------------------------------------------

  if (apiKey) signIn(apiKey);
  else signOut();
})();
