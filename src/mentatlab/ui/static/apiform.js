// Forms that change things through the REST API (settings, alert rules): send JSON with the
// browser's own credentials (the session cookie; the browser adds Origin, which the server
// checks for cookie sessions), and show the API's validation errors next to the field
// each one names ({errors: [{field, reason}]}); errors naming no field of the form go to
// its error box (role="alert").

/** Send `body` as JSON with `method`; answers {ok, status, body} (never throws on 4xx). */
export async function sendJson(base, path, method, body = undefined) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { accept: "application/json" },
  };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let answer;
  try {
    answer = await fetch(`${base}${path}`, init);
  } catch (e) {
    return { ok: false, status: 0, body: { error: `Could not reach the server: ${e}`, errors: [] } };
  }
  let parsed = null;
  try {
    parsed = await answer.json();
  } catch (e) {
    parsed = null;
  }
  const ok = answer.ok && parsed !== null && parsed.ok !== false;
  return { ok, status: answer.status, body: parsed || { error: `HTTP ${answer.status}`, errors: [] } };
}

// The control of `form` an API field names: exact name, else the field without its last
// ".part" or "[n]" (thresholds.1 → thresholds, channels[0] → channels), repeatedly.
function controlFor(form, field) {
  let name = String(field);
  while (name) {
    const control = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (control) {
      return control;
    }
    const cut = name.search(/(\.[^.[\]]*|\[\d+\])$/);
    if (cut <= 0) {
      return null;
    }
    name = name.slice(0, cut);
  }
  return null;
}

/** Remove the field errors and the error box text of `form`. */
export function clearErrors(form) {
  for (const note of form.querySelectorAll(".field-error")) {
    note.remove();
  }
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    const described = (control.getAttribute("aria-describedby") || "").split(" ")
      .filter((id) => id && !id.startsWith("err-"));
    if (described.length) {
      control.setAttribute("aria-describedby", described.join(" "));
    } else {
      control.removeAttribute("aria-describedby");
    }
  }
  const box = form.querySelector(".form-error");
  if (box) {
    box.textContent = "";
    box.hidden = true;
  }
}

let errorCount = 0;

// Where a control's error goes: a ".field" wrapper around its label (made on first use, so
// the note sits right under the control in the form's flow without joining the label's
// text, which would change the control's name), or the control's own cell.
function fieldOf(control) {
  const label = control.closest("label");
  if (!label) {
    return control.parentElement;
  }
  if (label.parentElement.classList.contains("field")) {
    return label.parentElement;
  }
  const field = document.createElement("div");
  field.className = label.classList.contains("wide") ? "field wide" : "field";
  label.before(field);
  field.append(label);
  return field;
}

/** Show an API error answer on `form`: each reason under its field, the rest in the box. */
export function showErrors(form, answer) {
  clearErrors(form);
  const body = answer.body || {};
  const loose = [];
  let first = null;
  for (const error of body.errors || []) {
    const control = controlFor(form, error.field);
    if (!control) {
      loose.push(error.field ? `${error.field}: ${error.reason}` : error.reason);
      continue;
    }
    errorCount += 1;
    const note = document.createElement("p");
    note.className = "field-error";
    note.id = `err-${errorCount}`;
    note.dataset.field = error.field;
    note.textContent = error.reason;
    fieldOf(control).append(note);
    control.setAttribute("aria-invalid", "true");
    const described = control.getAttribute("aria-describedby");
    control.setAttribute("aria-describedby", described ? `${described} ${note.id}` : note.id);
    first = first || control;
  }
  const box = form.querySelector(".form-error");
  if (box && (loose.length || !first)) {
    const error = body.error || `HTTP ${answer.status}`;
    box.textContent = loose.length ? `${error}: ${loose.join("; ")}` : error;
    box.hidden = false;
  }
  if (first) {
    first.focus();
  }
}

/**
 * Ask a yes/no question in the page's <dialog id="confirm">. Resolves null when cancelled
 * (button or Escape), else {graceS}: with `withGrace` the dialog's "grace seconds" field
 * (shown only then) is read, else graceS is 0.
 */
export function confirmAction(text, confirmLabel, withGrace = false) {
  const dialog = document.getElementById("confirm");
  dialog.querySelector(".confirm-text").textContent = text;
  dialog.querySelector(".confirm-yes").textContent = confirmLabel;
  const grace = dialog.querySelector(".confirm-grace");
  grace.hidden = !withGrace;
  const input = grace.querySelector("input");
  input.value = "0";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "yes") {
        resolve(null);
        return;
      }
      const graceS = withGrace ? Math.max(0, Math.trunc(Number(input.value) || 0)) : 0;
      resolve({ graceS });
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}
