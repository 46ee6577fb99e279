// Forms marked data-api post their fields as JSON to that API route, then reload the page.
// A submit button may carry its own data-api / data-method / data-confirm.
import { api, csrfToken, el, t } from "./common.js";

function fieldValue(field) {
  const type = field.dataset.type;
  if (type === "bool") return field.checked;
  const raw = field.value.trim();
  if (type === "int") return raw === "" ? undefined : Number.parseInt(raw, 10);
  if (type === "lines") return raw.split("\n").map((s) => s.trim()).filter(Boolean);
  // A date meant inclusively ("away until 6 May"): the end of that day in the user's time zone.
  if (type === "end-of-day") return raw === "" ? undefined : new Date(`${raw}T23:59:59`).toISOString();
  return raw === "" ? undefined : raw;
}

/** The form's named fields as a JSON object (radio/checkbox only when checked, empty fields left out).
 *  A dotted name ("due_hours.urgent") fills a nested object; fields marked data-list collect an array;
 *  a data-type="bool" checkbox is always sent, as true or false. Disabled fields (or fieldsets) are skipped. */
export function formBody(form) {
  const body = {};
  for (const field of form.querySelectorAll("[name]")) {
    if (field.name === "csrf_token" || field.matches(":disabled")) continue;
    const path = field.name.split(".");
    const key = path.pop();
    const isList = field.dataset.list !== undefined;
    const target = path.reduce((obj, part) => {
      if (!Object.hasOwn(obj, part)) obj[part] = {};
      return obj[part];
    }, body);
    if (isList && !Object.hasOwn(target, key)) target[key] = [];
    const checkable = field.type === "radio" || (field.type === "checkbox" && field.dataset.type !== "bool");
    if (checkable && !field.checked) continue;
    const value = fieldValue(field);
    if (value === undefined) continue;
    if (isList) target[key].push(value);
    else target[key] = value;
  }
  return body;
}

async function submit(form, submitter) {
  const url = submitter?.dataset.api || form.dataset.api;
  const method = submitter?.dataset.method || form.dataset.method || "POST";
  const confirmText = submitter?.dataset.confirm || form.dataset.confirm;
  if (confirmText && !window.confirm(confirmText)) return;
  const errorBox = form.querySelector(".form-error");
  if (errorBox) errorBox.textContent = "";
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await api(url, { method, body: formBody(form) });
    if (form.dataset.stay !== undefined && method === "PUT") {
      if (errorBox) errorBox.textContent = t("saved");
    } else {
      window.location.reload();
      return;
    }
  } catch (error) {
    if (errorBox) errorBox.textContent = error.message;
  }
  buttons.forEach((b) => { b.disabled = false; });
}

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-api]");
  if (!form) return;
  event.preventDefault();
  submit(form, event.submitter);
});

// Plain buttons with data-api (no form), e.g. "mark all read".
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-api]:not([type=submit])");
  if (!button || button.form) return;
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  button.disabled = true;
  try {
    await api(button.dataset.api, { method: button.dataset.method || "POST" });
    window.location.reload();
  } catch (error) {
    button.disabled = false;
    button.title = error.message;
    // Said beside the button: a tooltip never shows on a phone.
    let box = button.nextElementSibling;
    if (!box?.classList.contains("form-error")) {
      box = el("span", { class: "form-error", role: "alert" });
      button.after(box);
    }
    box.textContent = error.message;
  }
});

// Opening a notification marks it read (keepalive: the request outlives the page it leaves).
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-note-id]");
  if (!link || link.closest("li")?.classList.contains("read")) return;
  fetch(`/api/notifications/${link.dataset.noteId}/read`, {
    method: "POST", keepalive: true, credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
  }).catch(() => {});
});

// Filters submit themselves when changed (no inline handlers: the CSP allows no inline script).
for (const field of document.querySelectorAll("select[data-autosubmit]")) {
  field.addEventListener("change", () => field.form.submit());
}

// The page's forms now post through the API: tests (and styles) can wait for this.
document.documentElement.dataset.actions = "ready";
