// Files the server makes on request (the opinion PDF, the dashboard's report and CSV exports) can
// take a while on a slow link: a download link says so while the file is on its way, and a refusal
// is shown beside it instead of ending as a failed download whose reason nobody sees.
import { describeError, el, t } from "./common.js";

function statusOf(link) {
  let status = link.nextElementSibling;
  if (!status?.matches("[role=status].download-status")) {
    status = el("span", { class: "download-status small", role: "status" });
    link.after(status);
  }
  return status;
}

function filenameOf(response, link) {
  const disposition = response.headers.get("Content-Disposition") || "";
  const encoded = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  if (encoded) return decodeURIComponent(encoded[1]);
  const plain = /filename="?([^";]+)"?/i.exec(disposition);
  return plain ? plain[1] : link.getAttribute("download") || "";
}

async function download(link) {
  const status = statusOf(link);
  status.classList.remove("form-error");
  status.textContent = t("preparing_download");
  link.setAttribute("aria-busy", "true");
  try {
    let response;
    try {
      response = await fetch(link.href, { credentials: "same-origin" });
    } catch {
      throw new Error(t("network_error"));
    }
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new Error(describeError(data) || `${response.status}`);
    }
    const url = URL.createObjectURL(await response.blob());
    const save = el("a", { href: url, download: filenameOf(response, link), hidden: true });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    status.textContent = "";
  } catch (error) {
    status.classList.add("form-error");
    status.textContent = error.message;
  } finally {
    link.removeAttribute("aria-busy");
  }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[download][href]");
  // The blob link that saves a fetched file is clicked by download() itself: let it through.
  if (!link || link.protocol === "blob:" || event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  if (link.getAttribute("aria-busy") !== "true") download(link);
});
