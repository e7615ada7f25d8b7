// Registration page. Key generation arrives with the browser client (end-to-end encryption
// core); until then the page explains that this browser cannot register yet.
const error = document.getElementById("register-error");
document.getElementById("register-form").addEventListener("submit", (event) => {
  event.preventDefault();
  error.textContent = "Registration from the browser needs the encryption client, which is not installed yet.";
});
