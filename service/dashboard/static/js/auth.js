// The API key lives in sessionStorage: it goes when the tab closes, and never into a URL.

const KEY = "fusebox.apiKey";
const NOTICE = "fusebox.signInNotice";

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function signIn(key) {
  sessionStorage.setItem(KEY, key);
  sessionStorage.removeItem(NOTICE);
}

export function signOut(notice = "") {
  sessionStorage.removeItem(KEY);
  if (notice) sessionStorage.setItem(NOTICE, notice);
  window.dispatchEvent(new Event("fusebox:signed-out"));
}

/** Why the user was signed out (a refused key), once. */
export function takeNotice() {
  const notice = sessionStorage.getItem(NOTICE);
  sessionStorage.removeItem(NOTICE);
  return notice;
}
