// The attendee page: the event code (or a signed link token), a selfie, then the photos found.
// The selfie goes to the search endpoint and nowhere else: it is held in this page's memory only, so
// that "Find more" can send it again with the attendee's answers ("This is me" / "Not me").
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const root = $("attendee");
  const slug = root.dataset.slug;
  const CODE_STORE = `photomatch.code.${slug}`;
  const CONSENT_STORE = `photomatch.consent.${slug}`;
  // "search" finds the attendee's photos; "optout" removes their face from the event instead.
  let mode = "search";
  // Phone cameras produce 3-12 MB photos; a face needs far fewer pixels, and a smaller upload is
  // much faster on a mobile connection.
  const SELFIE_MAX_SIDE = 2048;
  const SHRINK_ABOVE_BYTES = 1.5 * 1024 * 1024;

  const params = new URLSearchParams(location.search);
  let token = params.get("t") || "";
  let code = params.get("code") || sessionStorage.getItem(CODE_STORE) || "";
  let results = { matches: [], possible_matches: [], questions: [] };
  // The visit's answers (face_id -> true for "this is me", false for "not me") and the selfie they
  // are about, kept in memory until another selfie or a reload.
  let answers = new Map();
  let lastSelfie = null;
  let viewing = { list: [], index: 0 };

  const steps = ["step-code", "step-selfie", "step-search", "step-results"];
  function show(step) {
    for (const s of steps) $(s).hidden = s !== step;
  }

  function say(text, kind = "error") {
    const m = $("message");
    m.textContent = text;
    m.className = `msg ${kind}`;
    m.hidden = !text;
  }

  function askCode(message = "") {
    token = "";
    say(message);
    $("code").value = code;
    $("code").setAttribute("aria-invalid", String(!!message));
    show("step-code");
    $("code").focus();
  }

  function setRetention(isoDate) {
    if (!isoDate) return;
    const when = new Date(`${isoDate}T00:00:00`);
    $("retention-text").textContent = `on ${when.toLocaleDateString(undefined, { dateStyle: "long" })}`;
  }

  // Consent comes before the first selfie: the picker stays disabled until the box is ticked.
  function updateConsent() {
    const agreed = $("consent-box").checked;
    for (const id of ["selfie-camera", "selfie-file"]) {
      $(id).disabled = !agreed;
      $(id).closest("label").classList.toggle("disabled", !agreed);
    }
    if (agreed) sessionStorage.setItem(CONSENT_STORE, "yes");
    else sessionStorage.removeItem(CONSENT_STORE);
  }
  $("consent-box").checked = sessionStorage.getItem(CONSENT_STORE) === "yes";
  $("consent-box").addEventListener("change", updateConsent);
  updateConsent();
  setRetention(root.dataset.retention);

  function askSelfie() {
    say("");
    $("change-code").hidden = !!token;
    show("step-selfie");
  }

  $("optout-mode").addEventListener("click", () => {
    mode = mode === "search" ? "optout" : "search";
    const out = mode === "optout";
    $("selfie-title").textContent = out ? "Remove your face from this event" : "Take a selfie";
    $("selfie-intro").textContent = out
      ? "Take a selfie. Every photo of this event in which we find your face stops showing it in searches, for you and for everyone else. The photographer keeps the photos."
      : "Face the camera in good light, without sunglasses. We will show you every photo you are in.";
    $("optout-mode").textContent = out ? "Find my photos instead" : "Remove my face from this event";
  });

  function rememberCode(value) {
    code = value;
    sessionStorage.setItem(CODE_STORE, value);
  }

  async function checkCode(value) {
    // Fails fast on a mistyped code, before the attendee takes a selfie.
    const res = await fetch(`/api/resolve?code=${encodeURIComponent(value)}`);
    if (res.status === 404) return false;
    if (!res.ok) return true; // let the search give the real answer
    const ev = await res.json();
    if (ev.slug === slug) {
      setRetention(ev.retention_until);
      document.querySelector(".event-name").textContent = ev.name;
    }
    return ev.slug === slug;
  }

  $("code-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = $("code").value.replace(/[\s-]+/g, "").toUpperCase();
    if (!value) return askCode("Enter the event code.");
    let ok = true;
    try {
      ok = await checkCode(value);
    } catch (_) {
      /* offline: the search will tell */
    }
    if (!ok) {
      code = value;
      return askCode("That code does not open this event. Check it and try again.");
    }
    rememberCode(value);
    askSelfie();
  });

  $("change-code").addEventListener("click", () => askCode());

  // --- search ----------------------------------------------------------------------------------

  async function shrink(file) {
    if (file.size <= SHRINK_ABOVE_BYTES || !window.createImageBitmap) return file;
    try {
      const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
      const scale = Math.min(1, SELFIE_MAX_SIDE / Math.max(bitmap.width, bitmap.height));
      const canvas = document.createElement("canvas");
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      bitmap.close();
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
      return blob ? new File([blob], "selfie.jpg", { type: "image/jpeg" }) : file;
    } catch (_) {
      return file; // an unusual format the browser cannot decode: the server may still read it
    }
  }

  async function errorText(res) {
    try {
      const body = await res.json();
      if (typeof body.detail === "string") return body.detail;
    } catch (_) {
      /* not JSON */
    }
    return "";
  }

  async function search(file, refine = false) {
    say("");
    const preview = $("selfie-preview");
    const previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.hidden = false;
    show("step-search");
    const form = new FormData();
    const selfie = refine ? file : await shrink(file);
    if (!refine) {
      answers = new Map();
      lastSelfie = mode === "search" ? selfie : null;
    }
    form.append("selfie", selfie, file.name || "selfie.jpg");
    if (token) form.append("token", token);
    else form.append("code", code);
    form.append("consent", $("consent-box").checked ? "yes" : "no");
    if (refine) {
      form.append("feedback_token", results.feedback_token || "");
      for (const [faceId, isMe] of answers) form.append(isMe ? "me" : "not_me", String(faceId));
    }
    const action = mode === "optout" ? "opt-out" : "search";
    let res;
    try {
      res = await fetch(`/events/${encodeURIComponent(slug)}/${action}`, { method: "POST", body: form });
    } catch (_) {
      URL.revokeObjectURL(previewUrl);
      askSelfie();
      return say("We could not reach the server. Check your connection and try again.");
    }
    URL.revokeObjectURL(previewUrl);
    preview.removeAttribute("src");
    if (res.ok && mode === "optout") return showOptedOut(await res.json());
    if (res.ok) return showResults(await res.json());
    const detail = await errorText(res);
    if (refine && res.status === 400) {
      // The answers' token expired (an hour) or no longer fits: start again from the selfie.
      answers = new Map();
      askSelfie();
      return say(detail || "Your answers have expired. Take your selfie again.");
    }
    if (res.status === 401 || res.status === 403) {
      const wasLink = !!token;
      sessionStorage.removeItem(CODE_STORE);
      return askCode(
        wasLink
          ? "This link has expired or is not valid. Enter the event code instead."
          : "That code does not open this event. Check it and try again.",
      );
    }
    askSelfie();
    if (res.status === 404) say("This event no longer exists. Its photos may have been deleted.");
    else if (res.status === 413) say(detail || "That photo is too large. Take a new selfie and try again.");
    else if (res.status === 422) say(detail || "No face found in your selfie. Try again in better light.");
    else if (res.status === 429) say("Too many searches just now. Wait a minute and try again.");
    else say("Something went wrong on our side. Please try again.");
  }

  for (const id of ["selfie-camera", "selfie-file"]) {
    $(id).addEventListener("change", (e) => {
      const file = e.target.files[0];
      e.target.value = ""; // the same photo can be picked again after an error
      if (file) search(file);
    });
  }

  $("again").addEventListener("click", askSelfie);

  // --- results ---------------------------------------------------------------------------------

  function tile(result, list, index) {
    const img = document.createElement("img");
    img.src = result.thumbnail_url;
    img.alt = "";
    img.loading = "lazy";
    img.decoding = "async";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tile";
    button.setAttribute("aria-label", `Open photo ${result.filename}`);
    button.dataset.photoId = result.photo_id;
    button.dataset.filename = result.filename;
    button.append(img);
    const face = faceMark(result, img);
    if (face) button.append(face);
    button.addEventListener("click", () => openViewer(list, index));
    const li = document.createElement("li");
    li.dataset.faceId = String(result.face_id);
    li.append(button, answerButtons(result, li));
    return li;
  }

  // The face the result is about, so that "This is me" / "Not me" answer for that face: the square
  // thumbnail is centred on it, and a ring marks it. The thumbnail covers the tile (object-fit), so
  // a point at fraction f of the photo's width w sits at f * w / m of the tile, shifted by the
  // crop (m: the photo's shorter side).
  function faceMark(result, img) {
    const [x1, y1, x2, y2] = result.face_box || [];
    const w = result.width;
    const h = result.height;
    if (!(w > 0 && h > 0) || x2 === undefined) return null;
    const m = Math.min(w, h);
    const px = Math.min(100, Math.max(0, ((x1 + x2) / 2 / w) * 100));
    const py = Math.min(100, Math.max(0, ((y1 + y2) / 2 / h) * 100));
    img.style.objectPosition = `${px}% ${py}%`;
    const ring = document.createElement("span");
    ring.className = "face-mark";
    ring.setAttribute("aria-hidden", "true");
    ring.style.left = `${(100 * x1) / m + (1 - w / m) * px}%`;
    ring.style.top = `${(100 * y1) / m + (1 - h / m) * py}%`;
    ring.style.width = `${(100 * (x2 - x1)) / m}%`;
    ring.style.height = `${(100 * (y2 - y1)) / m}%`;
    return ring;
  }

  // "This is me" / "Not me" under each photo: a second tap on the same answer takes it back.
  function answerButtons(result, li) {
    const bar = document.createElement("div");
    bar.className = "answers";
    for (const [isMe, label] of [
      [true, "This is me"],
      [false, "Not me"],
    ]) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `btn small answer ${isMe ? "me" : "not-me"}`;
      b.textContent = label;
      b.setAttribute("aria-pressed", String(answers.get(result.face_id) === isMe));
      b.addEventListener("click", () => {
        if (answers.get(result.face_id) === isMe) answers.delete(result.face_id);
        else answers.set(result.face_id, isMe);
        for (const other of bar.querySelectorAll("button")) {
          const mine = other.classList.contains("me");
          other.setAttribute("aria-pressed", String(answers.get(result.face_id) === mine));
        }
        li.dataset.answer = answers.has(result.face_id) ? (answers.get(result.face_id) ? "me" : "not-me") : "";
        $("find-more").hidden = answers.size === 0 || !lastSelfie;
      });
      bar.append(b);
    }
    if (result.confirmed) li.dataset.answer = "me";
    return bar;
  }

  $("find-more").addEventListener("click", () => {
    if (lastSelfie && answers.size) search(lastSelfie, true);
  });

  function fill(section, grid, count, list) {
    $(count).textContent = `(${list.length})`;
    $(grid).replaceChildren(...list.map((r, i) => tile(r, list, i)));
    $(section).hidden = list.length === 0;
  }

  function showOptedOut(body) {
    askSelfie();
    const n = body.photos;
    say(
      n
        ? `Done: your face was removed from ${n} photo${n === 1 ? "" : "s"} of this event. Searches will no longer show them for it, even if the photos are processed again.`
        : "We did not find your face in this event's photos, so there was nothing to remove.",
      "ok",
    );
  }

  function showResults(body) {
    results = body;
    fill("matches-section", "matches", "matches-count", body.matches);
    fill("possible-section", "possible", "possible-count", body.possible_matches);
    // Questions, not results: they only become results once the attendee says "This is me".
    fill("questions-section", "questions", "questions-count", body.questions || []);
    $("download-matches").textContent = body.matches.length === 1 ? "Download" : `Download all ${body.matches.length}`;
    const none = body.matches.length === 0 && body.possible_matches.length === 0;
    const n = body.matches.length;
    $("results-summary").textContent = n
      ? `We found you in ${n} photo${n === 1 ? "" : "s"}.`
      : none
        ? ""
        : "Some photos might be you.";
    $("no-matches").hidden = !none;
    $("find-more").hidden = answers.size === 0 || !lastSelfie;
    say("");
    show("step-results");
    root.dataset.state = "results";
    $("step-results").scrollIntoView({ block: "start" });
  }

  // Downloads stream from the server as a form post: no blob in memory, and it works on any phone.
  function downloadZip(list) {
    const form = $("zip-form");
    form.action = `/events/${encodeURIComponent(slug)}/download.zip`;
    const fields = token ? [["token", token]] : [["code", code]];
    for (const r of list) fields.push(["photo_ids", r.photo_id]);
    form.replaceChildren(
      ...fields.map(([name, value]) => Object.assign(document.createElement("input"), { type: "hidden", name, value })),
    );
    form.submit();
  }

  $("download-matches").addEventListener("click", () => downloadZip(results.matches));
  $("download-possible").addEventListener("click", () => downloadZip(results.possible_matches));

  // --- viewer ----------------------------------------------------------------------------------

  const viewer = $("viewer");

  function showPhoto() {
    const r = viewing.list[viewing.index];
    const img = $("viewer-img");
    img.src = r.preview_url;
    img.alt = `Photo ${r.filename}`;
    $("viewer-caption").textContent = `${r.filename} · ${viewing.index + 1} of ${viewing.list.length}`;
    $("viewer-download").href = r.download_url;
    $("viewer-download").setAttribute("download", r.filename);
    $("viewer-prev").hidden = viewing.index === 0;
    $("viewer-next").hidden = viewing.index === viewing.list.length - 1;
  }

  function openViewer(list, index) {
    viewing = { list, index };
    showPhoto();
    if (!viewer.open) viewer.showModal();
  }

  function step(delta) {
    const i = viewing.index + delta;
    if (i < 0 || i >= viewing.list.length) return;
    viewing.index = i;
    showPhoto();
  }

  $("viewer-close").addEventListener("click", () => viewer.close());
  $("viewer-prev").addEventListener("click", () => step(-1));
  $("viewer-next").addEventListener("click", () => step(1));
  viewer.addEventListener("keydown", (e) => {
    if (e.key === "ArrowLeft") step(-1);
    else if (e.key === "ArrowRight") step(1);
  });
  viewer.addEventListener("close", () => $("viewer-img").removeAttribute("src"));
  // A horizontal swipe on the photo moves to the previous or next one.
  let touchX = null;
  viewer.addEventListener("touchstart", (e) => (touchX = e.touches[0].clientX), { passive: true });
  viewer.addEventListener("touchend", (e) => {
    if (touchX === null) return;
    const dx = e.changedTouches[0].clientX - touchX;
    touchX = null;
    if (Math.abs(dx) > 50) step(dx < 0 ? 1 : -1);
  });

  // --- start -----------------------------------------------------------------------------------

  if (token) {
    askSelfie();
  } else if (code) {
    rememberCode(code.replace(/[\s-]+/g, "").toUpperCase());
    askSelfie();
    // A link with a wrong code: say so now rather than after the selfie.
    checkCode(code)
      .then((ok) => {
        if (ok) return;
        sessionStorage.removeItem(CODE_STORE);
        askCode("That code does not open this event. Check it and try again.");
      })
      .catch(() => {});
  } else {
    askCode();
  }
})();
