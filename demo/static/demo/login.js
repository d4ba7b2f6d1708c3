// The login page: says why you are here, signs in, goes back where you were.

import { storeTokens } from "/static/qw-demo.js";

const REASONS = {
  signed_out: "You signed out.",
  expired: "Your session ended. Sign in again.",
  inactive: "Your account has been deactivated. Contact an administrator.",
};

const params = new URLSearchParams(location.search);
const reason = REASONS[params.get("reason")];
if (reason) {
  const line = document.getElementById("login-reason");
  line.textContent = reason;
  line.hidden = false;
}

const form = document.getElementById("login");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const errorLine = document.getElementById("login-error");
  let response;
  try {
    response = await fetch("/api/auth/token/", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: form.username.value, password: form.password.value }),
    });
  } catch {
    errorLine.textContent = "The server cannot be reached. Try again in a moment.";
    return;
  }
  if (!response.ok) {
    errorLine.textContent =
      response.status === 401 || response.status === 400
        ? "Wrong username or password."
        : "The server could not sign you in. Try again.";
    return;
  }
  storeTokens(await response.json());
  const next = params.get("next");
  // Only a local path: never an open redirect.
  location.href = next?.startsWith("/") && !next.startsWith("//") ? next : "/chat/";
});
document.body.dataset.ready = "1";
