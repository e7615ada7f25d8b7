// Sign-in page: posts the credentials; the server answers with HttpOnly cookies.
import { apiPost } from "../api.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  try {
    await apiPost("/api/v1/auth/login", {
      email: form.elements.email.value,
      password: form.elements.password.value,
    });
    window.location.assign("/");
  } catch (err) {
    error.textContent = err.message;
  }
});
