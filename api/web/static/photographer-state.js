// What the page is looking at: the signed-in key, the photographer's events, the selected event.

const KEY_STORE = "photomatch.apiKey";

export const state = {
  apiKey: localStorage.getItem(KEY_STORE) || "",
  events: [],
  current: null,
};

export function rememberKey(key) {
  state.apiKey = key;
  localStorage.setItem(KEY_STORE, key);
}

export function forgetKey() {
  state.apiKey = "";
  localStorage.removeItem(KEY_STORE);
}
