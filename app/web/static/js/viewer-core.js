// The image viewer's state and what changes it: the open series and slice, the window, zoom and pan,
// the annotations, and sharing the view with the room. Frames come from viewer-frames.js, the canvas
// from viewer-drawing.js; the input (viewer-tools.js, viewer-controls.js) calls the methods below.
import { api, el, t } from "./common.js";
import { Drawing } from "./viewer-drawing.js";
import { Frames } from "./viewer-frames.js";

/** The annotations drawn on one slice (its instance and frame). */
export function annotationsOn(annotations, slice) {
  if (!slice) return [];
  return [...annotations.values()].filter(
    (a) => a.sop_instance_uid === slice.instance.sop_instance_uid && a.frame === slice.frame);
}

export class Viewer {
  constructor({ caseId, me, stage, canvas, slider, seriesSelect }) {
    Object.assign(this, { caseId, me, stage, slider, seriesSelect });
    this.state = {
      studyUid: null, seriesUid: null, slices: [], index: 0,
      wc: null, ww: null, zoom: 1, pan: [0, 0], tool: "window",
      annotations: new Map(), // id -> annotation
      draft: null, // annotation being drawn
      shown: null, // the image on the canvas
    };
    this.frames = new Frames({ currentWindow: () => [this.state.wc, this.state.ww] });
    this.drawing = new Drawing({ canvas, stage, viewer: this });
    this.room = null; // set by the page once the room is open
    this.applyingRemote = false;
    this.loads = 0; // openSeries calls so far: a load that is no longer the latest is dropped
    this.nextView = null; // the presenter's newest view, not applied yet
    this.following = null; // the promise of the loop applying them
  }

  get slice() {
    return this.state.slices[this.state.index];
  }

  annotationsHere() {
    return annotationsOn(this.state.annotations, this.slice);
  }

  draw() {
    this.drawing.draw();
  }

  /** Show slice `index`; resolves once something of it is drawn (or the reader has moved on). */
  async show(index, { direction = 1, broadcast = true, ahead = true } = {}) {
    const { state } = this;
    if (!state.slices.length) return;
    state.index = Math.max(0, Math.min(state.slices.length - 1, index));
    const slice = this.slice;
    this.frames.wanted = this.frames.url(slice);
    this.updateInfo();
    if (!slice.instance.renderable) {
      state.shown = null;
      this.draw();
      return;
    }
    const arriving = this.frames.bring(state.slices, state.index, {
      direction, ahead, canvasEmpty: state.shown === null,
      paint: (img, url, quality) => this.paint(img, url, quality),
      fail: (error) => { document.getElementById("slice-info").textContent = error.message; },
    });
    if (broadcast) this.shareView();
    await arriving;
  }

  /** Put a slice's image on the canvas: a preview until the full frame has arrived. */
  paint(img, url, quality) {
    this.state.shown = img;
    this.stage.dataset.drawn = `${this.state.index}:${quality}`;
    const used = this.frames.windowOf(img); // exposed for the tests, as data-drawn is
    if (used) this.stage.dataset.window = used.join(",");
    else delete this.stage.dataset.window;
    if (quality === "full") this.stage.dataset.loaded = url;
    this.draw();
  }

  updateInfo() {
    const { state, slice } = this;
    const info = document.getElementById("slice-info");
    info.textContent = slice ? `${t("slice")} ${state.index + 1}/${state.slices.length}`
      + (slice.instance.frames > 1 ? ` · ${t("frame")} ${slice.frame}` : "") : "";
    info.dataset.index = String(state.index);
    document.getElementById("window-info").textContent = state.wc === null ? ""
      : `W ${Math.round(state.ww)} L ${Math.round(state.wc)}`;
    this.slider.value = String(state.index);
    this.renderAnnotationList();
  }

  renderAnnotationList() {
    let list = document.getElementById("ann-list");
    if (!list) {
      list = el("ul", { id: "ann-list", class: "ann-list" });
      this.slider.after(list);
    }
    list.replaceChildren(...this.annotationsHere().map((a) => el("li", { "data-annotation-id": a.id },
      `${a.author.name}: ${t(`kind_${a.kind}`)}${a.length_mm != null ? ` ${a.length_mm.toFixed(1)} mm` : ""}${a.text ? ` “${a.text}”` : ""} `,
      a.author.id === this.me ? el("button", { type: "button", class: "small link", onclick: () => this.room.deleteAnnotation(a.id) },
        t("delete")) : null)));
  }

  shareView() {
    const { state, slice } = this;
    if (this.applyingRemote || !this.room || !slice) return;
    this.room.sendViewer({
      study_uid: state.studyUid, series_uid: state.seriesUid, sop_instance_uid: slice.instance.sop_instance_uid,
      index: state.index, frame: slice.frame, wc: state.wc, ww: state.ww, zoom: state.zoom, pan: state.pan,
    });
  }

  /** Open a series at slice `index` (its middle if null). Resolves true once it is shown, false if
   *  a later openSeries took over while this one was loading (that one is then the one shown). */
  async openSeries(seriesUid, { index = null, broadcast = true } = {}) {
    const { state, seriesSelect } = this;
    const option = [...seriesSelect.options].find((o) => o.value === seriesUid) || seriesSelect.options[0];
    if (!option) return false;
    const load = ++this.loads;
    seriesSelect.value = option.value;
    const { items } = await api(`/api/cases/${this.caseId}/instances?series_uid=${encodeURIComponent(option.value)}`);
    const { items: notes } = this.room ? await api(`/api/cases/${this.caseId}/annotations`) : { items: [] };
    if (load !== this.loads) return false;
    // The series and its slices change together: until now the state was still all the old series'.
    state.seriesUid = option.value;
    state.studyUid = option.dataset.study;
    state.slices = items.flatMap((instance) =>
      Array.from({ length: instance.frames || 1 }, (_, f) => ({ instance, frame: f + 1 })));
    this.slider.max = String(Math.max(0, state.slices.length - 1));
    state.annotations = new Map(notes.map((a) => [a.id, a]));
    const start = index ?? Math.floor(state.slices.length / 2);
    const url = new URL(window.location.href);
    url.searchParams.set("series", state.seriesUid);
    window.history.replaceState(null, "", url);
    state.shown = null; // a new series: its first slice is fetched in full at once
    await this.show(start, { broadcast });
    return true;
  }

  /** Open a series the reader asked for; if it cannot be loaded, say why on the image (resolves false). */
  pickSeries(seriesUid, options = {}) {
    return this.openSeries(seriesUid, options).catch((error) => {
      document.getElementById("slice-info").textContent = error.message;
      return false;
    });
  }

  /** Open the series the page was asked for, or say there is none. */
  start() {
    this.drawing.resize();
    if (this.seriesSelect.options.length) this.pickSeries(this.seriesSelect.value);
    else document.getElementById("slice-info").textContent = "—";
  }

  /** Render with window [wc, ww] ([null, null]: the file's own) and show the slice again. */
  setWindow(wc, ww) {
    Object.assign(this.state, { wc, ww });
    this.show(this.state.index);
  }

  reset() {
    Object.assign(this.state, { zoom: 1, pan: [0, 0], wc: null, ww: null });
    this.show(this.state.index);
  }

  /** The window a drag starts from: the one asked for, else the one the server rendered the image
   *  shown with (the file's own); null for a colour image, which has none. */
  dragWindow() {
    if (this.state.wc !== null) return [this.state.wc, this.state.ww];
    return this.frames.windowOf(this.state.shown);
  }

  async saveAnnotation(kind, points, text = "") {
    const slice = this.slice;
    const payload = { sop_instance_uid: slice.instance.sop_instance_uid, frame: slice.frame, kind,
                      points: points.map(([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10]), text };
    try {
      const a = await this.room.annotate(payload);
      this.state.annotations.set(a.id, a);
    } catch (error) {
      document.getElementById("chat-error").textContent = error.message;
    }
    this.redrawAnnotations();
  }

  redrawAnnotations() {
    this.draw();
    this.renderAnnotationList();
  }

  // ---------- the room's side ----------

  /** Follow the presenter's view (series, slice, window, zoom, pan) without sharing it back.
   *  Views that arrive while a series is loading wait for it, and only the newest of them is applied:
   *  on a slow link the follower ends where the presenter is, not where the presenter was. */
  applyView(view) {
    if (!view || !view.series_uid) return;
    this.nextView = view;
    if (!this.following) this.following = this.followViews().finally(() => { this.following = null; });
  }

  async followViews() {
    this.applyingRemote = true;
    try {
      // Until this page presents itself (it took over while a series was loading): then its own view counts.
      while (this.nextView && this.room?.presenter !== this.me) {
        const view = this.nextView;
        this.nextView = null;
        Object.assign(this.state, { wc: view.wc ?? null, ww: view.ww ?? null, zoom: view.zoom ?? 1, pan: view.pan ?? [0, 0] });
        try {
          if (view.series_uid !== this.state.seriesUid) {
            await this.openSeries(view.series_uid, { index: view.index ?? 0, broadcast: false });
          } else {
            this.show(view.index ?? 0, { broadcast: false }); // not awaited: a newer slice supersedes its frames
          }
        } catch (error) { // the series could not be loaded (a dropped link): the next view tries again
          document.getElementById("chat-error").textContent = error.message;
        }
      }
    } finally {
      this.nextView = null;
      this.applyingRemote = false;
    }
    if (this.room?.presenter === this.me) this.shareView(); // taken over meanwhile: the followers get this view
  }

  /** Stop following: a view still waiting for a series to load is not applied. */
  unfollow() {
    this.nextView = null;
  }

  setAnnotation(a) {
    this.state.annotations.set(a.id, a);
    this.redrawAnnotations();
  }

  removeAnnotation(id) {
    this.state.annotations.delete(id);
    this.redrawAnnotations();
  }

  /** The image shown, as a chat message's image reference. */
  currentImage() {
    const { state, slice } = this;
    return slice && { study_uid: state.studyUid, series_uid: state.seriesUid,
                      sop_instance_uid: slice.instance.sop_instance_uid, frame: slice.frame };
  }

  async openImage(ref) {
    if (ref.series_uid !== this.state.seriesUid && !await this.pickSeries(ref.series_uid, { broadcast: false })) return;
    const index = this.state.slices.findIndex(
      (s) => s.instance.sop_instance_uid === ref.sop_instance_uid && s.frame === (ref.frame || 1));
    if (index >= 0) this.show(index);
  }
}
