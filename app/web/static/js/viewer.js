// The image viewer page: scroll a series (wheel, keys, slider, touch swipe), window by drag and
// presets, zoom/pan, measure in mm, arrows/ellipses/text, cine. This module only wires the parts:
// the Viewer (viewer-core.js: state, frames from viewer-frames.js, canvas from viewer-drawing.js),
// its input (viewer-tools.js, viewer-controls.js) and the consultation room (room.js), which shares
// the view and the annotations.
import { Room } from "./room.js";
import { Controls } from "./viewer-controls.js";
import { Viewer } from "./viewer-core.js";
import { Tools } from "./viewer-tools.js";

const data = JSON.parse(document.getElementById("viewer-data").textContent);
const viewer = new Viewer({
  caseId: data.case_id, me: data.me,
  stage: document.getElementById("stage"), canvas: document.getElementById("canvas"),
  slider: document.getElementById("slider"), seriesSelect: document.getElementById("series-select"),
});
new Tools(viewer);
new Controls(viewer);
// A teaching case's images are read-only: no room, no shared view, no annotations.
if (!data.read_only) viewer.room = new Room({
  caseId: data.case_id, me: data.me, people: data.people,
  onViewer(view) { if (document.getElementById("follow").checked) viewer.applyView(view); },
  onAnnotation: (a) => viewer.setAnnotation(a),
  onAnnotationDeleted: (id) => viewer.removeAnnotation(id),
  currentImage: () => viewer.currentImage(),
  openImage: (ref) => viewer.openImage(ref),
  onPresent: () => viewer.shareView(),
});
document.getElementById("follow")?.addEventListener("change", (event) => { if (!event.target.checked) viewer.unfollow(); });
window.addEventListener("resize", () => viewer.drawing.resize());
viewer.start();
