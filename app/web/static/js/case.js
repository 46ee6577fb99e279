// Case page: the upload panel and the ranked doctor pickers (share, invite).
import { api, el, t } from "./common.js";
import { initUpload } from "./upload.js";

const upload = document.getElementById("upload");
if (upload) {
  initUpload(upload);
  let shown = false;
  document.addEventListener("huizhen:uploaded", () => {
    if (shown) return;
    shown = true;
    upload.append(el("p", { class: "flash" }, el("a", { href: window.location.pathname, id: "reload-after-upload" },
      t("all_done"), " — ", t("jump_to_image"))));
  });
}

/** Fill a picker list with ranked doctors as radio buttons named `field`. */
async function fillPicker(list, url, field) {
  list.replaceChildren(el("li", { class: "muted" }, t("loading")));
  let items;
  try {
    items = (await api(url)).items;
  } catch (error) {
    list.replaceChildren(el("li", { class: "form-error" }, error.message));
    return;
  }
  if (!items.length) {
    list.replaceChildren(el("li", { class: "muted" }, t("no_specialists")));
    return;
  }
  list.replaceChildren(...items.map((d, n) => el("li", { class: "pick", "data-user-id": d.id },
    el("label", {},
      el("input", { type: "radio", name: field, value: d.id, "data-type": "int", required: true, checked: n === 0 }),
      el("span", { class: "pick-name" }, `${d.name}`, d.title ? ` · ${d.title}` : ""),
      el("span", { class: "muted" }, ` ${d.institution.name}`)),
    el("ul", { class: "reasons" }, (d.reasons || []).map((r) => el("li", {}, r))))));
}

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

const share = document.getElementById("specialist-picker");
if (share) {
  const specialty = document.getElementById("picker-specialty");
  const q = document.getElementById("picker-q");
  const load = () => {
    const params = new URLSearchParams({ limit: "10" });
    if (specialty.value) params.set("specialty", specialty.value);
    if (q.value.trim()) params.set("q", q.value.trim());
    fillPicker(share, `${share.dataset.source}&${params}`, "specialist_id");
  };
  specialty.addEventListener("change", load);
  q.addEventListener("input", debounce(load, 300));
  load();
}

const invite = document.getElementById("invite-picker");
if (invite) {
  const discipline = document.getElementById("invite-discipline");
  const load = () => fillPicker(invite, `${invite.dataset.source}?specialty=${encodeURIComponent(discipline.value)}&limit=10`,
    "user_id");
  discipline.addEventListener("change", load);
  load();
}

/** Fill the org picker with what the user can share to: their consortia (routed by the rules) and the
 *  pools under them or that they belong to, as radio buttons named org_id. */
async function fillOrgPicker(list) {
  list.replaceChildren(el("li", { class: "muted" }, t("loading")));
  let orgs;
  try {
    orgs = (await api(list.dataset.source)).items;
  } catch (error) {
    list.replaceChildren(el("li", { class: "form-error" }, error.message));
    return;
  }
  const options = new Map(); // org id → [name, note], consortia first, each followed by its pools
  for (const org of orgs) {
    if (org.kind === "consortium") {
      options.set(org.id, [org.name, t("share_by_rules")]);
      for (const pool of org.children || []) {
        if (!options.has(pool.id)) options.set(pool.id, [`${org.name} › ${pool.name}`, t("share_to_pool")]);
      }
    } else if (!options.has(org.id)) {
      options.set(org.id, [org.name, t("share_to_pool")]);
    }
  }
  if (!options.size) {
    list.replaceChildren(el("li", { class: "muted" }, t("no_orgs")));
    return;
  }
  list.replaceChildren(...[...options].map(([id, [name, note]], n) => el("li", { class: "pick", "data-org-id": id },
    el("label", {},
      el("input", { type: "radio", name: "org_id", value: id, "data-type": "int", required: true, checked: n === 0 }),
      el("span", { class: "pick-name" }, name),
      el("span", { class: "muted" }, ` ${note}`)))));
}

const shareForm = document.getElementById("share-form");
if (shareForm) {
  const panes = { specialist: document.getElementById("share-specialist"), org: document.getElementById("share-org") };
  const orgPicker = document.getElementById("org-picker");
  let orgsLoaded = false;
  for (const button of shareForm.querySelectorAll("button[data-share-mode]")) {
    button.addEventListener("click", () => {
      const mode = button.dataset.shareMode;
      for (const other of shareForm.querySelectorAll("button[data-share-mode]")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      // The hidden pane is disabled too, so its radios neither validate nor reach the request.
      for (const [name, pane] of Object.entries(panes)) {
        pane.hidden = name !== mode;
        pane.disabled = name !== mode;
      }
      if (mode === "org" && !orgsLoaded) {
        orgsLoaded = true;
        fillOrgPicker(orgPicker);
      }
    });
  }
}
