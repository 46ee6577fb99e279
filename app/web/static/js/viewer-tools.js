// The viewer's pointer tools (mouse, pen and touch): window by drag, pan, zoom, measure, arrow,
// ellipse, and text notes typed into a small form at the tapped point. A vertical swipe on a phone
// scrolls the series.

const DRAWN = ["line", "arrow", "ellipse"];

export class Tools {
  constructor(viewer) {
    this.viewer = viewer;
    this.stage = viewer.stage;
    this.drag = null;
    this.windowing = false; // a render of the dragged window is in flight
    this.noteForm = document.getElementById("note-form");
    this.noteText = document.getElementById("note-text");
    this.notePoint = null;
    this.stage.addEventListener("pointerdown", (event) => this.down(event));
    this.stage.addEventListener("pointermove", (event) => this.move(event));
    this.stage.addEventListener("pointerup", (event) => this.up(event));
    this.noteForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = this.noteText.value.trim();
      if (text && this.notePoint) viewer.saveAnnotation("text", [this.notePoint], text);
      this.closeNote();
    });
    document.getElementById("note-cancel").addEventListener("click", () => this.closeNote());
    this.noteText.addEventListener("keydown", (event) => { if (event.key === "Escape") this.closeNote(); });
  }

  down(event) {
    const { viewer, stage } = this;
    const { state } = viewer;
    stage.focus();
    stage.setPointerCapture(event.pointerId);
    const point = viewer.drawing.toImage(event);
    const [wc, ww] = viewer.dragWindow() ?? [null, null];
    this.drag = { x: event.clientX, y: event.clientY, wc, ww, zoom: state.zoom, pan: [...state.pan],
                  index: state.index, start: point, touch: event.pointerType === "touch" };
    if (DRAWN.includes(state.tool)) state.draft = { kind: state.tool, points: [point, point] };
  }

  move(event) {
    const { drag, viewer } = this;
    const { state } = viewer;
    if (!drag) return;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (state.draft) {
      state.draft.points = [drag.start, viewer.drawing.toImage(event)];
      viewer.draw();
    } else if (drag.touch && state.tool === "window" && Math.abs(dy) > Math.abs(dx)) {
      const step = Math.trunc(-dy / 12);
      if (drag.index + step !== state.index) viewer.show(drag.index + step, { direction: Math.sign(step) || 1 });
    } else if (state.tool === "window" && drag.wc !== null) {
      const step = Math.max(1, drag.ww / 200);
      state.ww = Math.max(1, drag.ww + dx * step);
      state.wc = drag.wc + dy * step;
      if (!this.windowing) { // one render in flight while dragging; the last value is drawn on release
        this.windowing = true;
        viewer.show(state.index, { broadcast: false, ahead: false }).finally(() => { this.windowing = false; });
      }
    } else if (state.tool === "pan") {
      state.pan = [drag.pan[0] + dx, drag.pan[1] + dy];
      viewer.draw();
    } else if (state.tool === "zoom") {
      state.zoom = Math.min(20, Math.max(0.2, drag.zoom * Math.exp(-dy / 150)));
      viewer.draw();
    }
  }

  up(event) {
    const { drag, viewer } = this;
    const { state } = viewer;
    if (!drag) return;
    const finished = state.draft;
    state.draft = null;
    if (finished) {
      const [[x0, y0], [x1, y1]] = finished.points;
      if (Math.hypot(x1 - x0, y1 - y0) > 2) viewer.saveAnnotation(finished.kind, finished.points);
      else viewer.draw();
    } else if (state.tool === "text") {
      this.askNote(event);
    } else if (state.tool === "window" && state.wc !== null && !drag.touch) {
      viewer.show(state.index);
    } else {
      viewer.shareView();
    }
    this.drag = null;
  }

  askNote(event) {
    const { noteForm, noteText } = this;
    this.notePoint = this.viewer.drawing.toImage(event);
    noteText.value = "";
    noteForm.hidden = false;
    const area = document.getElementById("viewer").getBoundingClientRect();
    const left = Math.min(event.clientX - area.left, area.width - noteForm.offsetWidth - 6);
    noteForm.style.left = `${Math.max(6, left)}px`;
    noteForm.style.top = `${Math.max(6, event.clientY - area.top + 8)}px`;
    noteText.focus();
  }

  closeNote() {
    this.noteForm.hidden = true;
    this.notePoint = null;
    this.stage.focus();
  }
}
