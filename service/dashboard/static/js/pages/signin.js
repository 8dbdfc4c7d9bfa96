// Sign in with an API key; the key is checked with one request before the dashboard opens.

import { api } from "../api.js";
import { signIn, takeNotice } from "../auth.js";
import { h, message, replace } from "../dom.js";

export function render(root, onSignedIn) {
  const notice = takeNotice();
  const input = h("input", { id: "api-key", name: "key", type: "password", autocomplete: "off", required: true });
  const status = h("div", {}, notice && message("error", notice));
  const form = h(
    "form",
    { class: "sign-in card" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "The dashboard acts with your API key: sent with each request, kept in this tab only."),
    h("label", { for: "api-key" }, "API key"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    signIn(input.value.trim());
    try {
      await api("/v1/models?limit=1");
      onSignedIn();
    } catch (error) {
      // A refused key signs out again, which shows this page anew with the reason.
      if (error.status !== 401) replace(status, message("error", error.message));
    }
  });
  replace(root, form);
  input.focus();
}
