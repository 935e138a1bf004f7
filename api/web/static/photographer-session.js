// Signing in with an API key (kept in localStorage) and out again.
import { $, showError } from "./photographer-dom.js";
import { loadEvents, selectEvent } from "./photographer-events.js";
import { stop } from "./photographer-progress.js";
import { forgetKey, rememberKey, state } from "./photographer-state.js";

// Show the sign-in form; `forget` drops the stored key (a rejected key, or the sign-out button).
export function signOut(message = "", forget = true) {
  if (forget) forgetKey();
  state.current = null;
  stop();
  $("workspace").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  showError($("signin-error"), message);
  $("api-key").value = "";
  $("api-key").focus();
}

export async function signIn(key) {
  state.apiKey = key;
  try {
    await loadEvents();
  } catch (err) {
    // A rejected key has already signed out; any other failure keeps the key for the next try.
    if (err.status !== 401) signOut(`Could not reach the server: ${err.message}`, false);
    return false;
  }
  rememberKey(key);
  $("signin").hidden = true;
  $("workspace").hidden = false;
  $("signout").hidden = false;
  selectEvent(decodeURIComponent(location.hash.slice(1)) || (state.events[0] && state.events[0].slug));
  return true;
}

export function initSession() {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return showError($("signin-error"), "Enter your API key.");
    showError($("signin-error"), "");
    await signIn(key);
  });
  $("signout").addEventListener("click", () => signOut());
}
