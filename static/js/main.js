// App shell: shows who is signed in (the chat client fills this page in).
import { apiGet, ApiError } from "./api.js";

const status = document.getElementById("app-status");

try {
  const me = await apiGet("/api/v1/auth/me");
  status.textContent = `Signed in as ${me.email}.`;
} catch (err) {
  if (err instanceof ApiError && err.status === 401) window.location.assign("/login");
  else status.textContent = err.message;
}
