// Sign-in page: posts the credentials; the server answers with HttpOnly cookies.
import { auth, errorMessage } from "../api.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");
const info = document.getElementById("login-info");
const submit = document.getElementById("login-submit");

const REASONS = {
  expired: "Your session ended. Sign in again.",
  "signed-out": "You are signed out.",
  erased: "You are signed out, and this browser's keys and history for your account are erased.",
  registered: "Your account was created. Sign in to continue.",
};
const reason = new URLSearchParams(window.location.search).get("reason");
if (reason && REASONS[reason]) {
  info.textContent = REASONS[reason];
  info.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const email = form.elements.email.value.trim();
  const password = form.elements.password.value;
  if (!email || !password) {
    error.textContent = "Enter your email and password.";
    return;
  }
  submit.disabled = true;
  try {
    await auth.login(email, password);
    window.location.assign("/");
  } catch (err) {
    error.textContent = errorMessage(err);
    submit.disabled = false;
  }
});
