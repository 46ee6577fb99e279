// Shared by the page scripts: translated strings, the CSRF token and JSON calls to the API.

const strings = JSON.parse(document.getElementById("i18n")?.textContent || "{}");

/** The page string for `key` in the user's language. */
export function t(key) {
  return strings[key] ?? key;
}

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content || "";
}

/** Call the JSON API with the session cookie; resolve to the body, reject with a readable Error. */
export async function api(url, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                  credentials: "same-origin" });
  } catch {
    throw new Error(t("network_error"));
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(describeError(data) || `${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

/** Turn the API's {"error", "detail"} into one line for the user. */
export function describeError(data) {
  if (!data || !data.error) return "";
  const detail = data.detail;
  if (Array.isArray(detail)) {
    return `${data.error}: ${detail.map((d) => d.msg || d.message || JSON.stringify(d)).join("; ")}`;
  }
  if (detail && typeof detail === "object") {
    return `${data.error} (${Object.entries(detail).map(([k, v]) => `${k}: ${v}`).join(", ")})`;
  }
  return detail ? `${data.error}: ${detail}` : data.error;
}

/** Create an element with text content (never HTML) and attributes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
