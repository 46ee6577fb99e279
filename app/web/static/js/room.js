// The consultation room beside the viewer: chat with catch-up after reconnecting, who is online,
// typing, the presenter, and the annotation events. Socket.IO namespace /consult.
import { io } from "/vendor/socket.io.esm.min.js";
import { api, el, t } from "./common.js";

function newClientId() {
  if (window.crypto?.randomUUID) return window.crypto.randomUUID().replace(/-/g, "");
  return Array.from(window.crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Room {
  constructor({ caseId, me, people, onViewer, onAnnotation, onAnnotationDeleted, currentImage, openImage, onPresent }) {
    Object.assign(this, { caseId, me, people, onViewer, onAnnotation, onAnnotationDeleted, currentImage, openImage,
                          onPresent });
    this.lastSeq = 0;
    this.seen = new Set();
    this.pending = new Map(); // client_id -> payload, resent after a reconnect
    this.drafts = new Map(); // client_id -> its list item until the server's copy arrives
    this.presenter = null;
    this.viewSource = newClientId(); // the views this page sends are numbered under it, in order
    this.viewSeq = 0;
    this.typingTimer = null;
    this.typers = new Map();
    this.typersTimer = null;
    this.list = document.getElementById("messages");
    this.socket = io("/consult", { withCredentials: true, reconnectionDelayMax: 5000 });
    // The server refuses room events (present, viewer, typing) from a socket that has not joined:
    // they wait for the join, or are not sent before it (a click as the page loads, a reconnect).
    this.leftRoom();
    this.socket.on("connect", () => this.join());
    // Presence lists carry a version; one handled late on the server may arrive after a newer one.
    this.presenceVersion = null;
    this.presenterVersion = null; // the same for the presenter
    this.socket.on("disconnect", () => {
      this.leftRoom();
      this.setState(false);
      this.presenceVersion = this.presenterVersion = null;
    });
    this.socket.on("connect_error", () => this.setState(false));
    this.socket.on("message", (m) => this.addMessage(m));
    this.socket.on("presence", (p) => this.onPresence(p.online, p.version));
    this.socket.on("presenter", (p) => this.onPresenter(p.user_id, p.version));
    // Only the presenter's views, once the room has said who presents (a view from the one before may be late).
    this.socket.on("viewer", (v) => { if (v.presenter && v.user_id === this.presenter && v.user_id !== this.me) this.onViewer(v); });
    this.socket.on("typing", (p) => this.showTyping(p));
    this.socket.on("annotation", (a) => this.onAnnotation(a));
    this.socket.on("annotation_deleted", (p) => this.onAnnotationDeleted(p.id));
    this.socket.on("removed", () => { this.setState(false); this.socket.disconnect(); window.location.reload(); });
    this.bindForm();
  }

  async join() {
    const ack = await this.socket.emitWithAck("join", { case_id: this.caseId, since: this.lastSeq });
    if (!ack.ok) {
      document.getElementById("chat-error").textContent = ack.error;
      return;
    }
    this.setState(true);
    this.inRoom = true;
    this.enteredRoom();
    ack.messages.forEach((m) => this.addMessage(m));
    if (ack.more) this.catchUp(ack.messages.at(-1).seq);
    this.onPresence(ack.online, ack.online_version);
    this.onPresenter(ack.presenter ?? null, ack.presenter_version);
    // The presenter's view only: a newer presenter event may have come before this ack.
    if (ack.viewer && ack.viewer.user_id === this.presenter && this.presenter !== this.me) this.onViewer(ack.viewer);
    for (const payload of this.pending.values()) this.send(payload); // same client_id: no duplicates
  }

  /** The rest of a history longer than the join's page, from after ``since`` (live messages may
   *  already have raised lastSeq past the gap, so the pages keep their own place). */
  async catchUp(since) {
    try {
      for (let more = true; more;) {
        const page = await api(`/api/cases/${this.caseId}/messages?since=${since}`);
        page.items.forEach((m) => this.addMessage(m));
        more = page.more && page.items.length > 0;
        if (page.items.length) since = page.items.at(-1).seq;
      }
    } catch (error) {
      document.getElementById("chat-error").textContent = error.message;
    }
  }

  leftRoom() {
    this.inRoom = false;
    if (this.waitingForJoin) return; // what waits still waits for the next join
    this.waitingForJoin = true;
    this.joined = new Promise((resolve) => {
      this.enteredRoom = () => { this.waitingForJoin = false; resolve(); };
    });
  }

  setState(connected) {
    const node = document.getElementById("conn-state");
    node.textContent = connected ? t("connected") : t("disconnected");
    node.className = connected ? "ok" : "warn";
    document.getElementById("room").dataset.connected = String(connected);
  }

  name(id) {
    return this.people[id] || `#${id}`;
  }

  addMessage(m) {
    if (m.case_id !== this.caseId || this.seen.has(m.seq)) return;
    this.seen.add(m.seq);
    this.lastSeq = Math.max(this.lastSeq, m.seq);
    this.pending.delete(m.client_id);
    // Looked up by key, never by a selector built from data: a client_id is another member's text.
    this.drafts.get(m.client_id)?.remove();
    this.drafts.delete(m.client_id);
    const item = el("li", { class: m.author.id === this.me ? "mine" : "", "data-seq": m.seq },
      el("span", { class: "author" }, m.author.name),
      el("time", { datetime: m.at }, new Date(m.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })),
      el("p", { class: "body" }, m.body));
    if (m.image_ref?.series_uid) {
      item.append(el("button", { type: "button", class: "small link", onclick: () => this.openImage(m.image_ref) },
        t("jump_to_image")));
    }
    // Keep seq order even if a catch-up and a live message cross.
    const after = [...this.list.children].find((n) => n.dataset.seq && Number(n.dataset.seq) > m.seq);
    this.list.insertBefore(item, after || null);
    this.list.scrollTop = this.list.scrollHeight;
  }

  // Whether a versioned state (who is online, who presents) is not older than the one shown; if so,
  // its version is kept. The server may send an older one after a newer one (handled late).
  isCurrent(key, version) {
    if (version == null) return true;
    if (this[key] != null && version < this[key]) return false;
    this[key] = version;
    return true;
  }

  onPresence(ids, version) {
    if (this.isCurrent("presenceVersion", version)) this.showOnline(ids);
  }

  showOnline(ids) {
    const list = document.getElementById("online");
    list.replaceChildren(...ids.map((id) => el("li", { "data-user-id": id, class: id === this.presenter ? "presenting" : "" },
      this.name(id), id === this.presenter ? ` · ${t("presenter")}` : "",
      this.presenter === this.me && id !== this.me
        ? el("button", { type: "button", class: "small link", onclick: () => this.present("handover", id) }, "→") : null)));
    this.online = ids;
  }

  onPresenter(userId, version) {
    if (this.isCurrent("presenterVersion", version)) this.setPresenter(userId);
  }

  setPresenter(userId) {
    this.presenter = userId;
    const info = document.getElementById("presenter-info");
    info.textContent = userId === null ? t("nobody_presents")
      : userId === this.me ? t("you_present") : `${t("presenter")}: ${this.name(userId)}`;
    info.dataset.presenter = userId ?? "";
    const button = document.getElementById("present-btn");
    button.dataset.action = userId === this.me ? "release" : "take";
    button.textContent = userId === this.me ? t("present_release") : t("present_take");
    if (this.online) this.showOnline(this.online);
    if (userId === this.me && this.onPresent) this.onPresent(); // followers get my view at once
  }

  async present(action, userId) {
    // Clicks before the join: the last one is sent once the room is joined, once.
    const queued = this.presentQueued !== undefined;
    this.presentQueued = { action, user_id: userId };
    if (queued) return;
    await this.joined;
    const wanted = this.presentQueued;
    this.presentQueued = undefined;
    try {
      const ack = await this.socket.emitWithAck("present", { case_id: this.caseId, ...wanted });
      if (!ack.ok) document.getElementById("chat-error").textContent = ack.error;
    } catch {
      document.getElementById("chat-error").textContent = t("disconnected");
    }
  }

  sendViewer(view) {
    if (this.presenter === this.me && this.inRoom) {
      this.viewSeq += 1;
      this.socket.emit("viewer", { case_id: this.caseId, ...view, source: this.viewSource, seq: this.viewSeq });
    }
  }

  showTyping(p) {
    if (p.typing) this.typers.set(p.user_id, p.name);
    else this.typers.delete(p.user_id);
    clearTimeout(this.typersTimer);
    this.typersTimer = setTimeout(() => { this.typers.clear(); this.renderTyping(); }, 5000);
    this.renderTyping();
  }

  renderTyping() {
    document.getElementById("typing").textContent = this.typers.size
      ? `${[...this.typers.values()].join(", ")} ${t("typing")}` : "";
  }

  async send(payload) {
    this.pending.set(payload.client_id, payload);
    if (!this.socket.connected) return;
    try {
      const ack = await this.socket.timeout(10000).emitWithAck("message", payload);
      if (!ack.ok) {
        this.pending.delete(payload.client_id);
        this.drafts.get(payload.client_id)?.classList.add("failed");
        document.getElementById("chat-error").textContent = ack.error;
      }
    } catch {
      // No ack in time: kept in `pending`, resent with the same client_id after reconnecting.
    }
  }

  bindForm() {
    const form = document.getElementById("chat-form");
    const input = document.getElementById("chat-input");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = input.value.trim();
      if (!body) return;
      if (body.length > 4000) {
        document.getElementById("chat-error").textContent = t("message_too_long");
        return;
      }
      document.getElementById("chat-error").textContent = "";
      const payload = { case_id: this.caseId, body, client_id: newClientId() };
      if (document.getElementById("attach-image").checked) payload.image_ref = this.currentImage();
      const draft = el("li", { class: "mine pending", "data-client-id": payload.client_id },
        el("span", { class: "author" }, "…"), el("p", { class: "body" }, body));
      this.drafts.set(payload.client_id, draft);
      this.list.append(draft);
      input.value = "";
      if (this.inRoom) this.socket.emit("typing", { case_id: this.caseId, typing: false });
      this.send(payload);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    input.addEventListener("input", () => {
      if (!this.inRoom) return;
      if (!this.typingTimer) this.socket.emit("typing", { case_id: this.caseId, typing: true });
      clearTimeout(this.typingTimer);
      this.typingTimer = setTimeout(() => {
        this.typingTimer = null;
        if (this.inRoom) this.socket.emit("typing", { case_id: this.caseId, typing: false });
      }, 3000);
    });
    document.getElementById("present-btn").addEventListener("click", (event) =>
      this.present(event.currentTarget.dataset.action || "take"));
  }

  async annotate(payload) {
    const ack = await this.socket.timeout(10000).emitWithAck("annotate", { case_id: this.caseId, ...payload });
    if (!ack.ok) throw new Error(ack.error);
    return ack.annotation;
  }

  async deleteAnnotation(id) {
    const ack = await this.socket.emitWithAck("annotation_delete", { case_id: this.caseId, id });
    if (!ack.ok) document.getElementById("chat-error").textContent = ack.error;
    else this.onAnnotationDeleted(id);
  }
}
