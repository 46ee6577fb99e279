// Upload files to a case: picker, folder, drag-and-drop (folders too), camera; batched XHRs with
// per-file and overall progress, automatic retries on network/server failure, per-file reasons.
// Resumable: before each batch (and each retry) the server is asked which of its files the case
// already holds (by the SHA-256 of the file and, for DICOM, its SOP Instance UID), and those are
// skipped, so a batch whose answer was lost on a dropping 4G link is not sent again.
import { api, csrfToken, el, t } from "./common.js";

const BATCH_FILES = 8;
const BATCH_BYTES = 8 * 1024 * 1024;
const PARALLEL = 2;
const RETRY_DELAYS = [1000, 3000, 9000];
// Larger files are not hashed in the browser (a phone would hold all of it in memory); the
// server still refuses to store the same instance or attachment twice.
const HASH_MAX_BYTES = 64 * 1024 * 1024;
const HEADER_BYTES = 64 * 1024;
const IMPLICIT_LE = "1.2.840.10008.1.2";
const UNREADABLE_SYNTAXES = new Set(["1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"]); // big endian, deflated
const LONG_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"]);

function formatSize(bytes) {
  return bytes > 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

function ascii(bytes, start, length) {
  return String.fromCharCode(...bytes.subarray(start, start + length)).replace(/[\0 ]+$/, "");
}

/** Read (0008,0018) SOP Instance UID from the start of a DICOM file, or null (not DICOM, or not simply readable). */
export function readSopInstanceUid(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  let pos = bytes.length >= 132 && ascii(bytes, 128, 4) === "DICM" ? 132 : 0;
  let syntax = "";
  // File meta information (group 0002): always explicit VR little endian.
  while (pos + 8 <= bytes.length && view.getUint16(pos, true) === 0x0002) {
    const vr = ascii(bytes, pos + 4, 2);
    const long = LONG_VRS.has(vr);
    const length = long ? view.getUint32(pos + 8, true) : view.getUint16(pos + 6, true);
    const header = long ? 12 : 8;
    if (view.getUint16(pos + 2, true) === 0x0010) syntax = ascii(bytes, pos + header, length);
    pos += header + length;
  }
  if (UNREADABLE_SYNTAXES.has(syntax)) return null;
  const explicit = syntax ? syntax !== IMPLICIT_LE : /^[A-Z]{2}$/.test(ascii(bytes, pos + 4, 2));
  while (pos + 8 <= bytes.length) {
    const group = view.getUint16(pos, true);
    const element = view.getUint16(pos + 2, true);
    if (group > 0x0008 || (group === 0x0008 && element > 0x0018)) return null;
    let length = view.getUint32(pos + 4, true);
    let header = 8;
    if (explicit) {
      const long = LONG_VRS.has(ascii(bytes, pos + 4, 2));
      length = long ? view.getUint32(pos + 8, true) : view.getUint16(pos + 6, true);
      header = long ? 12 : 8;
    }
    if (length === 0xffffffff) return null; // a sequence of undefined length: give up, the hash still counts
    if (group === 0x0008 && element === 0x0018) {
      const uid = ascii(bytes, pos + header, Math.min(length, 64));
      return /^[0-9.]{1,64}$/.test(uid) ? uid : null;
    }
    pos += header + length;
  }
  return null;
}

/** The SHA-256 (hex) of a file, or null where the browser cannot hash (no secure context) or it is too big. */
async function sha256Of(file) {
  if (!globalThis.crypto?.subtle || file.size > HASH_MAX_BYTES) return null;
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

class Item {
  constructor(file, name, list) {
    this.file = file;
    this.name = name;
    this.loaded = 0;
    this.state = "queued";
    this.bar = el("progress", { max: file.size || 1, value: 0 });
    this.status = el("span", { class: "upload-status" }, t("queued"));
    this.retryButton = el("button", { type: "button", class: "small", hidden: true }, t("retry"));
    this.node = el("li", { class: "upload-item queued", "data-name": name },
      el("span", { class: "upload-name" }, name), el("span", { class: "muted" }, formatSize(file.size)),
      this.bar, this.status, this.retryButton);
    list.append(this.node);
  }

  /** Hash the file and read its SOP Instance UID, once. */
  async fingerprint() {
    if (this.sha256 === undefined) {
      this.sha256 = await sha256Of(this.file).catch(() => null);
      this.sop = readSopInstanceUid(await this.file.slice(0, HEADER_BYTES).arrayBuffer()) || null;
    }
    return this;
  }

  set(state, text) {
    this.state = state;
    this.node.className = `upload-item ${state}`;
    this.status.textContent = text;
    if (state === "accepted" || state === "rejected") this.bar.value = this.bar.max;
    this.retryButton.hidden = state !== "failed";
  }
}

export class Uploader {
  constructor({ endpoint, list, overallBar, overallText, overall, onDone }) {
    Object.assign(this, { endpoint, list, overallBar, overallText, overall, onDone });
    this.items = [];
    this.queue = [];
    this.running = 0;
    this.resuming = false; // a batch failed on the way: progress says the upload is being resumed
    // Back online (a phone leaving a dead zone): resume what gave up, without waiting for a click.
    window.addEventListener("online", () => {
      const failed = this.items.filter((i) => i.state === "failed");
      failed.forEach((i) => i.set("queued", t("queued")));
      this.queue.push(...failed);
      this.pump();
    });
  }

  add(entries) {
    const fresh = entries.map(({ file, name }) => new Item(file, name, this.list));
    for (const item of fresh) {
      item.retryButton.addEventListener("click", () => { item.set("queued", t("queued")); this.queue.push(item); this.pump(); });
    }
    this.items.push(...fresh);
    this.queue.push(...fresh);
    this.overall.hidden = false;
    this.pump();
  }

  nextBatch() {
    const batch = [];
    let bytes = 0;
    const names = new Set();
    while (this.queue.length && batch.length < BATCH_FILES) {
      const item = this.queue[0];
      if (batch.length && (bytes + item.file.size > BATCH_BYTES || names.has(item.name))) break;
      this.queue.shift();
      batch.push(item);
      names.add(item.name);
      bytes += item.file.size;
    }
    return batch;
  }

  pump() {
    while (this.running < PARALLEL && this.queue.length) {
      const batch = this.nextBatch();
      this.running += 1;
      this.send(batch, 0).finally(() => { this.running -= 1; this.pump(); this.progress(); });
    }
    this.progress();
  }

  progress() {
    const total = this.items.reduce((s, i) => s + i.file.size, 0) || 1;
    const done = this.items.reduce((s, i) => s + (["accepted", "rejected"].includes(i.state) ? i.file.size : i.loaded), 0);
    this.overallBar.max = total;
    this.overallBar.value = done;
    const finished = this.items.filter((i) => ["accepted", "rejected", "failed"].includes(i.state)).length;
    const accepted = this.items.filter((i) => i.state === "accepted").length;
    const rejected = this.items.filter((i) => i.state === "rejected").length;
    const failed = this.items.filter((i) => i.state === "failed").length;
    let text = `${finished}/${this.items.length} ${t("files")} · ${Math.round((100 * done) / total)}%`;
    if (this.resuming) {
      text = t("resuming").replace("{done}", String(accepted)).replace("{total}", String(this.items.length));
    }
    if (finished === this.items.length && !this.running) {
      this.resuming = false;
      text = `${t("all_done")}: ${t("accepted")} ${accepted}` + (rejected ? ` · ${t("rejected")} ${rejected}` : "")
        + (failed ? ` · ${t("failed")} ${failed}` : "");
      if (accepted && this.onDone) this.onDone();
    }
    this.overallText.textContent = text;
  }

  /** Ask the server which of the batch's files the case holds; mark those done and return the rest. */
  async skipStored(batch) {
    await Promise.all(batch.map((i) => i.fingerprint()));
    const sha256 = batch.map((i) => i.sha256).filter(Boolean);
    const uids = batch.map((i) => i.sop).filter(Boolean);
    if (!sha256.length && !uids.length) return batch;
    const have = await api(`${this.endpoint}/check`, { method: "POST", body: { sha256, sop_instance_uids: uids } });
    const hashes = new Set(have.have_sha256 || []);
    const sops = new Set(have.have_sop_instance_uids || []);
    const rest = [];
    for (const item of batch) {
      if ((item.sha256 && hashes.has(item.sha256)) || (item.sop && sops.has(item.sop))) {
        item.set("accepted", t("already_stored"));
      } else {
        rest.push(item);
      }
    }
    return rest;
  }

  async send(batch, attempt) {
    batch.forEach((i) => { i.loaded = 0; i.set("uploading", `${t("uploading")}…`); });
    let response;
    try {
      batch = await this.skipStored(batch);
      response = batch.length ? await this.post(batch) : { status: 200, body: {} };
    } catch (error) {
      // The check answered an error (its message is readable), or the network failed (status 0).
      response = { status: error.status || 0, body: error.status ? { error: error.message } : {}, error };
    }
    const { status, body } = response;
    if (status === 200) {
      this.settle(batch, body);
      return;
    }
    // 409: a concurrent batch created the same study first; the API asks for the request again.
    const retryable = status === 0 || status >= 500 || status === 429 || status === 409;
    if (retryable && status === 0 && navigator.onLine === false) {
      // Offline: wait for the network instead of spending the retries.
      this.resuming = true;
      batch.forEach((i) => i.set("uploading", t("waiting_network")));
      this.progress();
      await new Promise((r) => window.addEventListener("online", r, { once: true }));
      return this.send(batch, attempt);
    }
    if (retryable && attempt < RETRY_DELAYS.length) {
      this.resuming = true;
      batch.forEach((i) => i.set("uploading", `${t("retrying")} (${attempt + 1})…`));
      this.progress();
      await new Promise((r) => setTimeout(r, RETRY_DELAYS[attempt]));
      return this.send(batch, attempt + 1);
    }
    const reason = body.error ? `${body.error}${body.detail && typeof body.detail === "string" ? `: ${body.detail}` : ""}`
      : t("network_error");
    batch.forEach((i) => { i.loaded = 0; i.set(retryable ? "failed" : "rejected", `${t("failed")}: ${reason}`); });
  }

  settle(batch, body) {
    for (const item of batch) {
      const mine = (entry) => entry.filename === item.name || entry.filename.startsWith(`${item.name}/`);
      const accepted = (body.accepted || []).filter(mine);
      const rejected = (body.rejected || []).filter(mine);
      if (accepted.length && !rejected.length) {
        item.set("accepted", `${t("accepted")}${accepted.length > 1 ? ` (${accepted.length})` : ` · ${t(`file_${accepted[0].kind}`)}`}`);
      } else if (rejected.length && !accepted.length) {
        item.set("rejected", `${t("rejected")}: ${rejected.map((r) => r.error).join("; ")}`);
      } else if (accepted.length) {
        item.set("accepted", `${t("accepted")} ${accepted.length} · ${t("rejected")} ${rejected.length}: `
          + rejected.map((r) => `${r.filename}: ${r.error}`).join("; "));
      } else {
        item.set("accepted", t("accepted"));
      }
    }
  }

  post(batch) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      const form = new FormData();
      for (const item of batch) form.append("files", item.file, item.name);
      xhr.open("POST", this.endpoint);
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (event) => {
        // Spread the bytes sent over the batch's files in order.
        let left = event.loaded;
        for (const item of batch) {
          item.loaded = Math.min(item.file.size, left);
          item.bar.value = item.loaded;
          left -= item.file.size;
        }
        this.progress();
      };
      xhr.onload = () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText || "{}"); } catch { body = {}; }
        resolve({ status: xhr.status, body });
      };
      xhr.onerror = () => reject(new Error(t("network_error")));
      xhr.ontimeout = xhr.onerror;
      xhr.send(form);
    });
  }
}

/** Walk dropped items, folders included, into {file, name} with the folder path in the name. */
async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files].map((file) => ({ file, name: file.name }));
  const out = [];
  async function walk(entry, prefix) {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ file, name: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  }
  for (const entry of entries) await walk(entry, "");
  return out;
}

/** Wire the upload panel of a case page. */
export function initUpload(root) {
  const list = root.querySelector("#upload-list");
  const uploader = new Uploader({
    endpoint: list.dataset.endpoint, list,
    overall: root.querySelector("#upload-overall"),
    overallBar: root.querySelector("#overall-bar"), overallText: root.querySelector("#overall-text"),
    onDone: () => document.dispatchEvent(new CustomEvent("huizhen:uploaded")),
  });
  const fromInput = (input) => {
    const files = [...input.files].map((file) => ({ file, name: file.webkitRelativePath || file.name }));
    input.value = "";
    if (files.length) uploader.add(files);
  };
  for (const id of ["#pick-files", "#pick-folder", "#pick-camera"]) {
    const input = root.querySelector(id);
    input?.addEventListener("change", () => fromInput(input));
    // Picked before this script arrived (a slow phone link): the change event is gone, the files are not.
    if (input?.files.length) fromInput(input);
  }
  const zone = root.querySelector("#dropzone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const files = await droppedFiles(e.dataTransfer);
    if (files.length) uploader.add(files);
  });
  return uploader;
}
