// The pages print the stored times in UTC; this shows each <time datetime> in the reader's own time
// zone, as the room's chat already does, in the shape the page printed it (date, "MM-DD HH:MM" or
// date and time) and keeping the words around it ("截止 …").

const pad = (n) => String(n).padStart(2, "0");
const day = (d) => `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const clock = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;
const SHAPES = [
  [/\d{4}-\d{2}-\d{2} \d{2}:\d{2}/, (d) => `${d.getFullYear()}-${day(d)} ${clock(d)}`],
  [/\d{2}-\d{2} \d{2}:\d{2}/, (d) => `${day(d)} ${clock(d)}`],
  [/\d{4}-\d{2}-\d{2}/, (d) => `${d.getFullYear()}-${day(d)}`],
];

/** Rewrite the text of every <time datetime> under `root` in local time. */
export function localizeTimes(root = document) {
  for (const node of root.querySelectorAll("time[datetime]")) {
    const stamp = node.getAttribute("datetime");
    // A stamp without an offset is a stored naive-UTC time (app/core/time.py).
    const at = new Date(/(Z|[+-]\d{2}:?\d{2})$/i.test(stamp) ? stamp : `${stamp}Z`);
    if (Number.isNaN(at.getTime())) continue;
    const shape = SHAPES.find(([pattern]) => pattern.test(node.textContent));
    if (shape) node.textContent = node.textContent.replace(shape[0], shape[1](at));
  }
}

localizeTimes();
