// Sharing the selected event: the attendee link (signed, from the server) and its QR code.
import { api } from "./photographer-api.js";
import { $ } from "./photographer-dom.js";
import { state } from "./photographer-state.js";

let qrUrl = "";

function setShareUrl(url) {
  $("share-url").value = url;
  $("open-link").href = url;
}

export async function showShare(ev) {
  setShareUrl(ev.attendee_url);
  $("qr").hidden = true;
  $("qr-download").hidden = true;
  try {
    const link = await (await api(`/events/${ev.slug}/attendee-link`)).json();
    if (state.current !== ev) return;
    // absolute_url honours the server's public_url (the address attendees can reach).
    const url = link.absolute_url || new URL(link.url, location.origin).href;
    setShareUrl(url);
    $("site-url").textContent = new URL(url).origin;
    // An <img> cannot send the API key: fetch the SVG and show it through a blob: URL.
    const svg = await (await api(link.qr_svg_url || `/events/${ev.slug}/qr.svg`)).blob();
    if (state.current !== ev) return;
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

export function initShare() {
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
}
