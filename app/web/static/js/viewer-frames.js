// Frames of a series rendered by the server, kept in a recency cache and prefetched in the scrolling
// direction. On a slow link a small JPEG preview of a slice is drawn at once and the full frame
// replaces it when the reader rests (docs/BENCHMARKS.md, bench/viewer.py).
import { t } from "./common.js";

const PREFETCH = 6; // full frames fetched ahead of the scrolling direction
const PREVIEW_AHEAD = 30; // previews fetched ahead
const PREVIEW_SIZE = 256;
const REST_MS = 120; // a slice shown this long without its full frame asks for it
const SLOW_MS = 250; // full frames arriving slower than this: the link is too slow to prefetch them
const CACHE_LIMIT = 800;

/** Decode an image file into an <img> that can be drawn on a canvas. */
function decode(blob) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    const src = URL.createObjectURL(blob);
    img.decoding = "async";
    img.onload = () => { URL.revokeObjectURL(src); resolve(img); };
    img.onerror = () => { URL.revokeObjectURL(src); reject(new Error(t("not_renderable"))); };
    img.src = src;
  });
}

export class Frames {
  /** `currentWindow()` gives the [wc, ww] to render with ([null, null]: the server's own). */
  constructor({ currentWindow }) {
    this.currentWindow = currentWindow;
    this.images = new Map(); // url -> Promise<HTMLImageElement>
    this.arrived = new Map(); // url -> HTMLImageElement, for the images that have loaded
    this.restTimer = null;
    this.fullMs = 0; // moving average of the time a full frame takes to arrive
    this.wanted = null; // url of the slice the user wants now
    this.windows = new WeakMap(); // image -> [wc, ww] the server rendered it with (grey images)
  }

  /** The window [wc, ww] an image was rendered with, or null (a colour image). */
  windowOf(img) {
    return (img && this.windows.get(img)) || null;
  }

  /** The rendered-frame URL of a slice at the current window, in full or as a preview. */
  url(slice, { preview = false } = {}) {
    const params = new URLSearchParams({ frame: String(slice.frame) });
    const [wc, ww] = this.currentWindow();
    if (wc !== null && ww !== null) {
      params.set("wc", String(Math.round(wc)));
      params.set("ww", String(Math.max(1, Math.round(ww))));
    }
    if (preview) {
      params.set("size", String(PREVIEW_SIZE));
      params.set("format", "jpeg");
    }
    return `${slice.instance.rendered}?${params}`;
  }

  get slow() {
    return this.fullMs > SLOW_MS;
  }

  load(url, { preview = false } = {}) {
    if (this.images.has(url)) {
      const p = this.images.get(url);
      this.images.delete(url); // keep insertion order as recency
      this.images.set(url, p);
      return p;
    }
    const started = performance.now();
    // Fetched rather than set as an <img> src: the response says which window the server used.
    const promise = fetch(url, { credentials: "same-origin" }).then(async (response) => {
      if (!response.ok) throw new Error(t("not_renderable"));
      const img = await decode(await response.blob());
      if (!preview) { // a full frame: how fast the link brings them
        const took = performance.now() - started;
        this.fullMs = this.fullMs ? 0.7 * this.fullMs + 0.3 * took : took;
      }
      const center = response.headers.get("X-Window-Center");
      const width = response.headers.get("X-Window-Width");
      if (center !== null && width !== null) this.windows.set(img, [Number(center), Number(width)]);
      if (this.images.has(url)) this.arrived.set(url, img);
      return img;
    }).catch(() => { throw new Error(t("not_renderable")); });
    promise.catch(() => this.images.delete(url));
    this.images.set(url, promise);
    while (this.images.size > CACHE_LIMIT) {
      const oldest = this.images.keys().next().value;
      this.images.delete(oldest);
      this.arrived.delete(oldest);
    }
    return promise;
  }

  /** Load the next slices in the scrolling direction before they are asked for: full frames (and a
   *  few behind) while they keep up; only the small previews, further ahead, once the reader is ahead
   *  of them. `at(step)` is the renderable slice `step` away from the shown one, or null. */
  prefetch(at, direction = 1, { behind = false } = {}) {
    if (behind) {
      for (let step = 1; step <= PREVIEW_AHEAD; step += 1) {
        const slice = at(direction * step);
        if (slice && !this.arrived.has(this.url(slice))) {
          this.load(this.url(slice, { preview: true }), { preview: true }).catch(() => {});
        }
      }
      return;
    }
    for (let step = 1; step <= PREFETCH; step += 1) {
      const slice = at(direction * step);
      if (slice) this.load(this.url(slice)).catch(() => {});
    }
    for (let step = 1; step <= PREFETCH / 2; step += 1) {
      const slice = at(-direction * step);
      if (slice) this.load(this.url(slice)).catch(() => {});
    }
  }

  /** Bring the slice at `index` of `slices` to `paint(img, url, quality)`; resolves once something of
   *  it is painted (or the reader has moved on). The caller has set `wanted` to its URL.
   *
   * While the full frames keep up (prefetched ahead), they are all there is. When the reader outruns
   * them (a slow link), the slice's small preview is painted at once, only previews are fetched
   * ahead, and the full frame is asked for when the reader rests on a slice, so a fast scroll does
   * not queue full frames it will skip. The synchronous part runs before the first await, so the
   * caller may act (share the view) before the preview has arrived. */
  async bring(slices, index, { direction, ahead, canvasEmpty, paint, fail }) {
    const slice = slices[index];
    const at = (step) => {
      const next = slices[index + step];
      return next?.instance.renderable ? next : null;
    };
    const url = this.url(slice);
    clearTimeout(this.restTimer);
    const full = this.arrived.get(url);
    const previewUrl = this.url(slice, { preview: true });
    const preview = this.arrived.get(previewUrl);
    if (full) {
      paint(full, url, "full");
    } else {
      if (preview) paint(preview, url, "preview");
      const fetchFull = () => this.load(url).then((img) => {
        if (this.wanted !== url) return;
        paint(img, url, "full");
        if (ahead) this.prefetch(at, direction, { behind: this.slow });
      }, (error) => { if (this.wanted === url) fail(error); });
      if (this.images.has(url) || canvasEmpty) fetchFull(); // on its way already, or nothing to show meanwhile
      else this.restTimer = setTimeout(fetchFull, REST_MS);
    }
    // On an empty canvas the first frame goes first; what is ahead is asked for once it is drawn.
    if (ahead && (full || !canvasEmpty)) this.prefetch(at, direction, { behind: !full || this.slow });
    if (!full && !preview && !canvasEmpty) {
      await this.load(previewUrl, { preview: true }).then(
        (img) => { if (this.wanted === url && !this.arrived.has(url)) paint(img, url, "preview"); }, () => {});
    }
  }
}
