// The viewer's canvas: the image shown, fitted and then zoomed and panned, with the slice's
// annotations (and the one being drawn) over it in image coordinates.

export class Drawing {
  /** Draw `viewer`'s state (state.shown, zoom, pan, draft and the slice's annotations) on `canvas`. */
  constructor({ canvas, stage, viewer }) {
    Object.assign(this, { canvas, stage, viewer });
    this.ctx = canvas.getContext("2d");
  }

  resize() {
    const rect = this.stage.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(rect.width * ratio));
    this.canvas.height = Math.max(1, Math.round(rect.height * ratio));
    this.canvas.style.width = `${rect.width}px`;
    this.canvas.style.height = `${rect.height}px`;
    this.draw();
  }

  /** Image → canvas transform: fit, then the user's zoom and pan (pan in canvas pixels). */
  transform() {
    const { state, slice } = this.viewer;
    const { canvas } = this;
    // Image coordinates are the frame's own pixels, whether a preview or the full frame is drawn.
    const w = slice?.instance.columns || state.shown?.naturalWidth || 512;
    const h = slice?.instance.rows || state.shown?.naturalHeight || 512;
    const fit = Math.min(canvas.width / w, canvas.height / h);
    const scale = fit * state.zoom;
    const x = (canvas.width - w * scale) / 2 + state.pan[0] * (window.devicePixelRatio || 1);
    const y = (canvas.height - h * scale) / 2 + state.pan[1] * (window.devicePixelRatio || 1);
    return { scale, x, y };
  }

  /** The image coordinates under a pointer event. */
  toImage(event) {
    const rect = this.canvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    const { scale, x, y } = this.transform();
    return [((event.clientX - rect.left) * ratio - x) / scale, ((event.clientY - rect.top) * ratio - y) / scale];
  }

  draw() {
    const { ctx, canvas } = this;
    const { state, slice } = this.viewer;
    const shown = state.shown;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!shown) return;
    const { scale, x, y } = this.transform();
    ctx.setTransform(scale, 0, 0, scale, x, y);
    ctx.imageSmoothingEnabled = state.zoom < 3;
    ctx.drawImage(shown, 0, 0, slice?.instance.columns || shown.naturalWidth, slice?.instance.rows || shown.naturalHeight);
    const mine = this.viewer.annotationsHere();
    if (state.draft) mine.push(state.draft);
    for (const a of mine) this.drawAnnotation(a, scale);
  }

  drawAnnotation(a, scale) {
    const { ctx } = this;
    ctx.lineWidth = 2 / scale;
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
        const label = a.length_mm != null ? `${a.length_mm.toFixed(1)} mm` : this.lengthLabel(a.points);
        ctx.fillText(label, x1 + 6 / scale, y1);
      }
    } else if (a.kind === "ellipse") {
      ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, Math.abs(x1 - x0) / 2, Math.abs(y1 - y0) / 2, 0, 0, 2 * Math.PI);
      ctx.stroke();
    }
    if (a.text) ctx.fillText(a.text, x0, y0 - 4 / scale);
  }

  /** A line's length in mm from the slice's pixel spacing (px without one), while it is drawn. */
  lengthLabel(points) {
    const spacing = this.viewer.slice?.instance.pixel_spacing;
    const [[x0, y0], [x1, y1]] = points;
    if (!spacing) return `${Math.hypot(x1 - x0, y1 - y0).toFixed(0)} px`;
    return `${Math.hypot((x1 - x0) * spacing[1], (y1 - y0) * spacing[0]).toFixed(1)} mm`;
  }
}
