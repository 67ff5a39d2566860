// Sign-in page: posts the API key to /auth/key as JSON (the route's body), which sets the
// HttpOnly session cookie; then reloads the page the person asked for.
const form = document.getElementById("signin");
const error = document.getElementById("signin-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  let answer;
  try {
    answer = await fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: form.elements.key.value }),
    });
  } catch (e) {
    error.textContent = `Could not reach the server: ${e}`;
    error.hidden = false;
    return;
  }
  if (answer.ok) {
    await answer.text(); // read to the end: a reload mid-body would abort the request
    window.location.reload();
    return;
  }
  let message = `Sign-in refused (${answer.status})`;
  try {
    const body = await answer.json();
    const reasons = (body.errors || []).map((e) => e.reason).join("; ");
    message = reasons ? `${body.error}: ${reasons}` : body.error || message;
  } catch (e) {
    // not the JSON error shape: keep the status
  }
  error.textContent = message;
  error.hidden = false;
});
