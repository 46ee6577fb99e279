// The image viewer: scroll a series (wheel, drag-free keys, slider, touch swipe), window by drag and
// presets, zoom/pan, measure in mm, arrows/ellipses/text, cine; frames come rendered by the server
// and neighbours are prefetched. On a slow link a small JPEG preview of a slice is drawn at once and
// the full frame replaces it when the reader rests (docs/BENCHMARKS.md, bench/viewer.py).
// The consultation room (room.js) shares the view and annotations.
import { api, el, t } from "./common.js";
import { Room } from "./room.js";

const data = JSON.parse(document.getElementById("viewer-data").textContent);
const caseId = data.case_id;
const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const stage = document.getElementById("stage");
const slider = document.getElementById("slider");
const seriesSelect = document.getElementById("series-select");
const PREFETCH = 6; // full frames fetched ahead of the scrolling direction
const PREVIEW_AHEAD = 30; // previews fetched ahead
const PREVIEW_SIZE = 256;
const REST_MS = 120; // a slice shown this long without its full frame asks for it
const SLOW_MS = 250; // full frames arriving slower than this: the link is too slow to prefetch them
const CACHE_LIMIT = 800;

const state = {
  studyUid: null, seriesUid: null, slices: [], index: 0,
  wc: null, ww: null, zoom: 1, pan: [0, 0], tool: "window",
  annotations: new Map(), // id -> annotation
  draft: null, // annotation being drawn
};
const images = new Map(); // url -> Promise<HTMLImageElement>
const arrived = new Map(); // url -> HTMLImageElement, for the images that have loaded
let restTimer = null;
let fullMs = 0; // moving average of the time a full frame takes to arrive
let shown = null; // the image on the canvas
let wanted = null; // url of the slice the user wants now
let cineTimer = null;
let room = null;
let applyingRemote = false;

function sliceUrl(slice, { preview = false } = {}) {
  const params = new URLSearchParams({ frame: String(slice.frame) });
  if (state.wc !== null && state.ww !== null) {
    params.set("wc", String(Math.round(state.wc)));
    params.set("ww", String(Math.max(1, Math.round(state.ww))));
  }
  if (preview) {
    params.set("size", String(PREVIEW_SIZE));
    params.set("format", "jpeg");
  }
  return `${slice.instance.rendered}?${params}`;
}

function load(url, { preview = false } = {}) {
  if (images.has(url)) {
    const p = images.get(url);
    images.delete(url); // keep insertion order as recency
    images.set(url, p);
    return p;
  }
  const started = performance.now();
  const promise = new Promise((resolve, reject) => {
    const img = new Image();
    img.decoding = "async";
    img.onload = () => {
      if (!preview) { // a full frame: how fast the link brings them
        const took = performance.now() - started;
        fullMs = fullMs ? 0.7 * fullMs + 0.3 * took : took;
      }
      if (images.has(url)) arrived.set(url, img);
      resolve(img);
    };
    img.onerror = () => reject(new Error(t("not_renderable")));
    img.src = url;
  });
  promise.catch(() => images.delete(url));
  images.set(url, promise);
  while (images.size > CACHE_LIMIT) {
    const oldest = images.keys().next().value;
    images.delete(oldest);
    arrived.delete(oldest);
  }
  return promise;
}

/** Load the next slices in the scrolling direction before they are asked for: full frames (and a
 *  few behind) while they keep up; only the small previews, further ahead, once the reader is ahead
 *  of them. */
function prefetch(direction = 1, { behind = false } = {}) {
  const at = (step) => {
    const slice = state.slices[state.index + step];
    return slice?.instance.renderable ? slice : null;
  };
  if (behind) {
    for (let step = 1; step <= PREVIEW_AHEAD; step += 1) {
      const slice = at(direction * step);
      if (slice && !arrived.has(sliceUrl(slice))) {
        load(sliceUrl(slice, { preview: true }), { preview: true }).catch(() => {});
      }
    }
    return;
  }
  for (let step = 1; step <= PREFETCH; step += 1) {
    const slice = at(direction * step);
    if (slice) load(sliceUrl(slice)).catch(() => {});
  }
  for (let step = 1; step <= PREFETCH / 2; step += 1) {
    const slice = at(-direction * step);
    if (slice) load(sliceUrl(slice)).catch(() => {});
  }
}

function resize() {
  const rect = stage.getBoundingClientRect();
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(rect.width * ratio));
  canvas.height = Math.max(1, Math.round(rect.height * ratio));
  canvas.style.width = `${rect.width}px`;
  canvas.style.height = `${rect.height}px`;
  draw();
}

/** Image → canvas transform: fit, then the user's zoom and pan (pan in canvas pixels). */
function transform() {
  const slice = state.slices[state.index];
  // Image coordinates are the frame's own pixels, whether a preview or the full frame is drawn.
  const w = slice?.instance.columns || shown?.naturalWidth || 512;
  const h = slice?.instance.rows || shown?.naturalHeight || 512;
  const fit = Math.min(canvas.width / w, canvas.height / h);
  const scale = fit * state.zoom;
  const x = (canvas.width - w * scale) / 2 + state.pan[0] * (window.devicePixelRatio || 1);
  const y = (canvas.height - h * scale) / 2 + state.pan[1] * (window.devicePixelRatio || 1);
  return { scale, x, y };
}

function toImage(event) {
  const rect = canvas.getBoundingClientRect();
  const ratio = window.devicePixelRatio || 1;
  const { scale, x, y } = transform();
  return [((event.clientX - rect.left) * ratio - x) / scale, ((event.clientY - rect.top) * ratio - y) / scale];
}

function draw() {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!shown) return;
  const { scale, x, y } = transform();
  ctx.setTransform(scale, 0, 0, scale, x, y);
  ctx.imageSmoothingEnabled = state.zoom < 3;
  const slice = state.slices[state.index];
  ctx.drawImage(shown, 0, 0, slice?.instance.columns || shown.naturalWidth, slice?.instance.rows || shown.naturalHeight);
  const mine = [...state.annotations.values()].filter(
    (a) => a.sop_instance_uid === slice.instance.sop_instance_uid && a.frame === slice.frame);
  if (state.draft) mine.push(state.draft);
  for (const a of mine) drawAnnotation(a, scale);
}

function drawAnnotation(a, scale) {
  const lw = 2 / scale;
  ctx.lineWidth = lw;
  ctx.strokeStyle = a.id ? "#ffd400" : "#7fdbff";
  ctx.fillStyle = ctx.strokeStyle;
  ctx.font = `${14 / scale}px sans-serif`;
  const [[x0, y0], [x1, y1] = [x0, y0]] = a.points;
  ctx.beginPath();
  if (a.kind === "line" || a.kind === "arrow") {
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    if (a.kind === "arrow") {
      const angle = Math.atan2(y1 - y0, x1 - x0);
      const head = 12 / scale;
      ctx.moveTo(x1, y1);
      ctx.lineTo(x1 - head * Math.cos(angle - 0.4), y1 - head * Math.sin(angle - 0.4));
      ctx.moveTo(x1, y1);
      ctx.lineTo(x1 - head * Math.cos(angle + 0.4), y1 - head * Math.sin(angle + 0.4));
    }
    ctx.stroke();
    if (a.kind === "line") {
      const label = a.length_mm != null ? `${a.length_mm.toFixed(1)} mm` : lengthLabel(a.points);
      ctx.fillText(label, x1 + 6 / scale, y1);
    }
  } else if (a.kind === "ellipse") {
    ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, Math.abs(x1 - x0) / 2, Math.abs(y1 - y0) / 2, 0, 0, 2 * Math.PI);
    ctx.stroke();
  }
  if (a.text) ctx.fillText(a.text, x0, y0 - 4 / scale);
}

function lengthLabel(points) {
  const spacing = state.slices[state.index]?.instance.pixel_spacing;
  const [[x0, y0], [x1, y1]] = points;
  if (!spacing) return `${Math.hypot(x1 - x0, y1 - y0).toFixed(0)} px`;
  return `${Math.hypot((x1 - x0) * spacing[1], (y1 - y0) * spacing[0]).toFixed(1)} mm`;
}

function updateInfo() {
  const slice = state.slices[state.index];
  const info = document.getElementById("slice-info");
  info.textContent = slice ? `${t("slice")} ${state.index + 1}/${state.slices.length}`
    + (slice.instance.frames > 1 ? ` · ${t("frame")} ${slice.frame}` : "") : "";
  info.dataset.index = String(state.index);
  document.getElementById("window-info").textContent = state.wc === null ? ""
    : `W ${Math.round(state.ww)} L ${Math.round(state.wc)}`;
  slider.value = String(state.index);
  renderAnnotationList();
}

/** Show slice ``index``; resolves once something of it is drawn (or the reader has moved on).
 *
 * While the full frames keep up (prefetched ahead), they are all there is. When the reader outruns
 * them (a slow link), the slice's small preview is drawn at once, only previews are fetched ahead,
 * and the full frame is asked for when the reader rests on a slice, so a fast scroll does not queue
 * full frames it will skip. */
async function show(index, { direction = 1, broadcast = true, ahead = true } = {}) {
  if (!state.slices.length) return;
  state.index = Math.max(0, Math.min(state.slices.length - 1, index));
  const slice = state.slices[state.index];
  const url = sliceUrl(slice);
  wanted = url;
  updateInfo();
  if (!slice.instance.renderable) {
    shown = null;
    draw();
    return;
  }
  clearTimeout(restTimer);
  const full = arrived.get(url);
  const previewUrl = sliceUrl(slice, { preview: true });
  const preview = arrived.get(previewUrl);
  const canvasEmpty = shown === null;
  if (full) {
    paint(full, url, "full");
  } else {
    if (preview) paint(preview, url, "preview");
    const fetchFull = () => load(url).then((img) => {
      if (wanted !== url) return;
      paint(img, url, "full");
      if (ahead) prefetch(direction, { behind: fullMs > SLOW_MS });
    }, (error) => { if (wanted === url) document.getElementById("slice-info").textContent = error.message; });
    if (images.has(url) || canvasEmpty) fetchFull(); // on its way already, or nothing to show meanwhile
    else restTimer = setTimeout(fetchFull, REST_MS);
  }
  // On an empty canvas the first frame goes first; what is ahead is asked for once it is drawn.
  if (ahead && (full || !canvasEmpty)) prefetch(direction, { behind: !full || fullMs > SLOW_MS });
  if (broadcast) shareView();
  if (!full && !preview && !canvasEmpty) {
    await load(previewUrl, { preview: true }).then(
      (img) => { if (wanted === url && !arrived.has(url)) paint(img, url, "preview"); }, () => {});
  }
}

/** Put a slice's image on the canvas: a preview until the full frame has arrived. */
function paint(img, url, quality) {
  shown = img;
  stage.dataset.drawn = `${state.index}:${quality}`;
  if (quality === "full") stage.dataset.loaded = url;
  draw();
}

function shareView() {
  if (applyingRemote || !room) return;
  const slice = state.slices[state.index];
  if (!slice) return;
  room.sendViewer({
    study_uid: state.studyUid, series_uid: state.seriesUid, sop_instance_uid: slice.instance.sop_instance_uid,
    index: state.index, frame: slice.frame, wc: state.wc, ww: state.ww, zoom: state.zoom, pan: state.pan,
  });
}

async function openSeries(seriesUid, { index = null, broadcast = true } = {}) {
  const option = [...seriesSelect.options].find((o) => o.value === seriesUid) || seriesSelect.options[0];
  if (!option) return;
  seriesSelect.value = option.value;
  state.seriesUid = option.value;
  state.studyUid = option.dataset.study;
  const { items } = await api(`/api/cases/${caseId}/instances?series_uid=${encodeURIComponent(state.seriesUid)}`);
  state.slices = items.flatMap((instance) =>
    Array.from({ length: instance.frames || 1 }, (_, f) => ({ instance, frame: f + 1 })));
  slider.max = String(Math.max(0, state.slices.length - 1));
  const { items: notes } = await api(`/api/cases/${caseId}/annotations`);
  state.annotations = new Map(notes.map((a) => [a.id, a]));
  const start = index ?? Math.floor(state.slices.length / 2);
  const url = new URL(window.location.href);
  url.searchParams.set("series", state.seriesUid);
  window.history.replaceState(null, "", url);
  shown = null; // a new series: its first slice is fetched in full at once
  await show(start, { broadcast });
}

// ---------- input: scrolling ----------
stage.addEventListener("wheel", (event) => {
  event.preventDefault();
  if (event.ctrlKey || state.tool === "zoom") {
    state.zoom = Math.min(20, Math.max(0.2, state.zoom * (event.deltaY < 0 ? 1.1 : 1 / 1.1)));
    draw();
    shareView();
    return;
  }
  const step = Math.sign(event.deltaY) || 0;
  if (step) show(state.index + step, { direction: step });
}, { passive: false });

stage.addEventListener("keydown", (event) => {
  const keys = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 };
  if (event.key in keys) {
    event.preventDefault();
    show(state.index + keys[event.key], { direction: Math.sign(keys[event.key]) });
  } else if (event.key === "Home") show(0);
  else if (event.key === "End") show(state.slices.length - 1);
});
slider.addEventListener("input", () => show(Number(slider.value)));
seriesSelect.addEventListener("change", () => openSeries(seriesSelect.value));

// ---------- input: pointer tools (mouse, pen and touch) ----------
let drag = null;
let windowing = false;
stage.addEventListener("pointerdown", (event) => {
  stage.focus();
  stage.setPointerCapture(event.pointerId);
  const point = toImage(event);
  // The window the drag starts from: the one shown, or the modality's when the file's own is shown.
  const [wc, ww] = state.wc === null ? defaultWindow() : [state.wc, state.ww];
  drag = { x: event.clientX, y: event.clientY, wc, ww, zoom: state.zoom, pan: [...state.pan],
           index: state.index, start: point, touch: event.pointerType === "touch" };
  if (["line", "arrow", "ellipse"].includes(state.tool)) {
    state.draft = { kind: state.tool, points: [point, point] };
  }
});
stage.addEventListener("pointermove", (event) => {
  if (!drag) return;
  const dx = event.clientX - drag.x;
  const dy = event.clientY - drag.y;
  if (state.draft) {
    state.draft.points = [drag.start, toImage(event)];
    draw();
  } else if (drag.touch && state.tool === "window" && Math.abs(dy) > Math.abs(dx)) {
    // A vertical swipe on a phone scrolls the series.
    const step = Math.trunc(-dy / 12);
    if (drag.index + step !== state.index) show(drag.index + step, { direction: Math.sign(step) || 1 });
  } else if (state.tool === "window") {
    const step = Math.max(1, drag.ww / 200);
    state.ww = Math.max(1, drag.ww + dx * step);
    state.wc = drag.wc + dy * step;
    if (!windowing) { // one render in flight while dragging; the last value is drawn on release
      windowing = true;
      show(state.index, { broadcast: false, ahead: false }).finally(() => { windowing = false; });
    }
  } else if (state.tool === "pan") {
    state.pan = [drag.pan[0] + dx, drag.pan[1] + dy];
    draw();
  } else if (state.tool === "zoom") {
    state.zoom = Math.min(20, Math.max(0.2, drag.zoom * Math.exp(-dy / 150)));
    draw();
  }
});
stage.addEventListener("pointerup", (event) => {
  if (!drag) return;
  const finished = state.draft;
  state.draft = null;
  if (finished) {
    const [[x0, y0], [x1, y1]] = finished.points;
    if (Math.hypot(x1 - x0, y1 - y0) > 2) saveAnnotation(finished.kind, finished.points);
    else draw();
  } else if (state.tool === "text") {
    askNote(event);
  } else if (state.tool === "window" && state.wc !== null && !drag.touch) {
    show(state.index);
  } else {
    shareView();
  }
  drag = null;
});

// ---------- text notes: typed in a small form at the tapped point ----------
const noteForm = document.getElementById("note-form");
const noteText = document.getElementById("note-text");
let notePoint = null;

function askNote(event) {
  notePoint = toImage(event);
  noteText.value = "";
  noteForm.hidden = false;
  const area = document.getElementById("viewer").getBoundingClientRect();
  const left = Math.min(event.clientX - area.left, area.width - noteForm.offsetWidth - 6);
  noteForm.style.left = `${Math.max(6, left)}px`;
  noteForm.style.top = `${Math.max(6, event.clientY - area.top + 8)}px`;
  noteText.focus();
}

function closeNote() {
  noteForm.hidden = true;
  notePoint = null;
  stage.focus();
}

noteForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = noteText.value.trim();
  if (text && notePoint) saveAnnotation("text", [notePoint], text);
  closeNote();
});
document.getElementById("note-cancel").addEventListener("click", closeNote);
noteText.addEventListener("keydown", (event) => { if (event.key === "Escape") closeNote(); });

function defaultWindow() {
  const modality = seriesSelect.selectedOptions[0]?.textContent.trim().split(/\s/)[0];
  return modality === "CT" ? [40, 400] : [600, 1200];
}

async function saveAnnotation(kind, points, text = "") {
  const slice = state.slices[state.index];
  const payload = { sop_instance_uid: slice.instance.sop_instance_uid, frame: slice.frame, kind,
                    points: points.map(([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10]), text };
  try {
    const a = await room.annotate(payload);
    state.annotations.set(a.id, a);
  } catch (error) {
    document.getElementById("chat-error").textContent = error.message;
  }
  draw();
  renderAnnotationList();
}

function renderAnnotationList() {
  let list = document.getElementById("ann-list");
  if (!list) {
    list = el("ul", { id: "ann-list", class: "ann-list" });
    slider.after(list);
  }
  const slice = state.slices[state.index];
  const here = slice ? [...state.annotations.values()].filter(
    (a) => a.sop_instance_uid === slice.instance.sop_instance_uid && a.frame === slice.frame) : [];
  list.replaceChildren(...here.map((a) => el("li", { "data-annotation-id": a.id },
    `${a.author.name}: ${t(`kind_${a.kind}`)}${a.length_mm != null ? ` ${a.length_mm.toFixed(1)} mm` : ""}${a.text ? ` “${a.text}”` : ""} `,
    a.author.id === data.me ? el("button", { type: "button", class: "small link", onclick: () => room.deleteAnnotation(a.id) },
      t("delete")) : null)));
}

// ---------- toolbar ----------
document.getElementById("tools").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-tool]");
  if (!button) return;
  state.tool = button.dataset.tool;
  for (const b of document.querySelectorAll("#tools button")) b.setAttribute("aria-pressed", String(b === button));
});
document.getElementById("preset").addEventListener("change", (event) => {
  const value = event.target.value;
  [state.wc, state.ww] = value ? value.split(",").map(Number) : [null, null];
  show(state.index);
});
document.getElementById("reset").addEventListener("click", () => {
  Object.assign(state, { zoom: 1, pan: [0, 0], wc: null, ww: null });
  document.getElementById("preset").value = "";
  show(state.index);
});
const cine = document.getElementById("cine");
cine.addEventListener("click", () => {
  if (cineTimer) {
    clearInterval(cineTimer);
    cineTimer = null;
  } else {
    cineTimer = setInterval(() => show((state.index + 1) % state.slices.length, { broadcast: false }), 100);
  }
  cine.setAttribute("aria-pressed", String(Boolean(cineTimer)));
});

// ---------- the room ----------
room = new Room({
  caseId, me: data.me, people: data.people,
  onViewer(view) {
    if (!document.getElementById("follow").checked || !view || !view.series_uid) return;
    applyingRemote = true;
    Object.assign(state, { wc: view.wc ?? null, ww: view.ww ?? null, zoom: view.zoom ?? 1, pan: view.pan ?? [0, 0] });
    const done = view.series_uid !== state.seriesUid
      ? openSeries(view.series_uid, { index: view.index ?? 0, broadcast: false })
      : show(view.index ?? 0, { broadcast: false });
    Promise.resolve(done).finally(() => { applyingRemote = false; });
  },
  onAnnotation(a) { state.annotations.set(a.id, a); draw(); renderAnnotationList(); },
  onAnnotationDeleted(id) { state.annotations.delete(id); draw(); renderAnnotationList(); },
  currentImage() {
    const slice = state.slices[state.index];
    return slice && { study_uid: state.studyUid, series_uid: state.seriesUid,
                      sop_instance_uid: slice.instance.sop_instance_uid, frame: slice.frame };
  },
  async openImage(ref) {
    if (ref.series_uid !== state.seriesUid) await openSeries(ref.series_uid, { broadcast: false });
    const index = state.slices.findIndex(
      (s) => s.instance.sop_instance_uid === ref.sop_instance_uid && s.frame === (ref.frame || 1));
    if (index >= 0) show(index);
  },
  onPresent: () => shareView(),
});

window.addEventListener("resize", resize);
resize();
if (seriesSelect.options.length) {
  openSeries(seriesSelect.value);
} else {
  document.getElementById("slice-info").textContent = "—";
}
