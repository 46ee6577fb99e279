// The viewer's other controls: scrolling (wheel, keys, slider), the series picker, the tool buttons,
// window presets, reset and cine.

const KEY_STEPS = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 };

export class Controls {
  constructor(viewer) {
    this.viewer = viewer;
    this.cineTimer = null;
    const { stage, slider, seriesSelect, state } = viewer;
    stage.addEventListener("wheel", (event) => this.wheel(event), { passive: false });
    stage.addEventListener("keydown", (event) => this.key(event));
    slider.addEventListener("input", () => viewer.show(Number(slider.value)));
    seriesSelect.addEventListener("change", () => viewer.pickSeries(seriesSelect.value));
    document.getElementById("tools").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-tool]");
      if (!button) return;
      state.tool = button.dataset.tool;
      for (const b of document.querySelectorAll("#tools button")) b.setAttribute("aria-pressed", String(b === button));
    });
    const preset = document.getElementById("preset");
    preset.addEventListener("change", () => {
      const [wc, ww] = preset.value ? preset.value.split(",").map(Number) : [null, null];
      viewer.setWindow(wc, ww);
    });
    document.getElementById("reset").addEventListener("click", () => {
      preset.value = "";
      viewer.reset();
    });
    const cine = document.getElementById("cine");
    cine.addEventListener("click", () => {
      this.toggleCine();
      cine.setAttribute("aria-pressed", String(Boolean(this.cineTimer)));
    });
  }

  wheel(event) {
    const { viewer } = this;
    const { state } = viewer;
    event.preventDefault();
    if (event.ctrlKey || state.tool === "zoom") {
      state.zoom = Math.min(20, Math.max(0.2, state.zoom * (event.deltaY < 0 ? 1.1 : 1 / 1.1)));
      viewer.draw();
      viewer.shareView();
      return;
    }
    const step = Math.sign(event.deltaY) || 0;
    if (step) viewer.show(state.index + step, { direction: step });
  }

  key(event) {
    const { viewer } = this;
    if (event.key in KEY_STEPS) {
      event.preventDefault();
      viewer.show(viewer.state.index + KEY_STEPS[event.key], { direction: Math.sign(KEY_STEPS[event.key]) });
    } else if (event.key === "Home") viewer.show(0);
    else if (event.key === "End") viewer.show(viewer.state.slices.length - 1);
  }

  toggleCine() {
    const { viewer } = this;
    if (this.cineTimer) {
      clearInterval(this.cineTimer);
      this.cineTimer = null;
    } else {
      this.cineTimer = setInterval(
        () => viewer.show((viewer.state.index + 1) % viewer.state.slices.length, { broadcast: false }), 100);
    }
  }
}
