"""Viewer benchmark: scrolling a 200-slice CT series in the browser, on a fast and a slow network.

Starts the app (SQLite, local object store, a temporary folder), uploads a synthetic 512x512 CT
series as the demo gp, then in headless chromium (Playwright, Debian's chromium) logs in, opens the
viewer and scrolls the whole series with the arrow key at --rate slices per second, as a held key
does. For each slice: the time from the key press to that slice being drawn on the canvas, or
"skipped" when the user had already moved past it before anything of it was drawn; how many were
first drawn as the small preview; and how long after the last key press the last slice is in full.
Each network condition runs in a fresh browser context (empty cache); the server's render cache is
warmed first (full frames and previews), so the figures are the network's and the browser's, not
the renderer's (bench/ingest.py times that).

    python bench/viewer.py [--slices 200] [--rate 20] [--conditions local,4g,3g]
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import new_case, pct, start_app, token, upload_dicom  # noqa: E402
from ingest import synthetic_series  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
# Chrome DevTools network emulation: latency in ms, throughput in bytes/s.
CONDITIONS = {
    "local": None,
    "4g": {"latency": 60, "downloadThroughput": 10e6 / 8, "uploadThroughput": 5e6 / 8},
    "3g": {"latency": 150, "downloadThroughput": 1.6e6 / 8, "uploadThroughput": 0.75e6 / 8},
}

# Runs in the page: press ArrowDown on the stage every `interval` ms and time when each slice is first
# drawn (a preview or the full frame) and when in full; the viewer marks each draw in stage[data-drawn].
SCROLL_JS = """
async ({ steps, interval }) => {
  const stage = document.getElementById("stage");
  stage.dispatchEvent(new KeyboardEvent("keydown", { key: "Home", bubbles: true }));  // it opens mid-series
  await new Promise((r) => setTimeout(r, 1500));
  const first = Number(document.getElementById("slice-info").dataset.index);
  const drawn = new Map();
  const full = new Map();
  const info = document.getElementById("slice-info");
  const observer = new MutationObserver(() => {
    // data-drawn = "index:quality"; a viewer without previews only marks full frames (data-loaded).
    const [index, quality] = (stage.dataset.drawn || `${info.dataset.index}:full`).split(":");
    const i = Number(index);
    if (!drawn.has(i)) drawn.set(i, { at: performance.now(), quality });
    if (quality === "full" && !full.has(i)) full.set(i, performance.now());
  });
  observer.observe(stage, { attributes: true, attributeFilter: ["data-drawn", "data-loaded"] });
  const pressed = [];
  for (let k = 1; k <= steps; k += 1) {
    pressed.push(performance.now());
    stage.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    await new Promise((r) => setTimeout(r, interval));
  }
  const last = first + steps;
  const deadline = performance.now() + 30000;
  while (!full.has(last) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  observer.disconnect();
  return {
    latencies: pressed.map((t, k) => (drawn.has(first + k + 1) ? drawn.get(first + k + 1).at - t : null)),
    previews: [...drawn.values()].filter((d) => d.quality === "preview").length,
    full_after_stop: full.has(last) ? full.get(last) - pressed[pressed.length - 1] : null,
  };
}
"""


def run_condition(browser, url: str, case_id: int, name: str, steps: int, rate: float) -> dict:
    context = browser.new_context(viewport={"width": 1366, "height": 860}, base_url=url)
    try:
        page = context.new_page()
        page.goto("/login")
        page.fill("input[name=email]", "gp@demo.huizhen")
        page.fill("input[name=password]", "huizhen-demo")
        page.click("form button[type=submit]")
        page.wait_for_url(lambda u: "/login" not in u)
        if CONDITIONS[name]:
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", {"offline": False, **CONDITIONS[name]})
        t0 = time.perf_counter()
        page.goto(f"/cases/{case_id}/viewer")
        page.wait_for_selector("#stage[data-loaded]", timeout=60000)
        first_image = time.perf_counter() - t0
        page.wait_for_timeout(1000)  # as a reader looks at the first slice before scrolling
        out = page.evaluate(SCROLL_JS, {"steps": steps, "interval": 1000 / rate})
    finally:
        context.close()
    latencies = out["latencies"]
    drawn = [v for v in latencies if v is not None]
    return {"first": first_image, "n": len(latencies), "skipped": len(latencies) - len(drawn),
            "previews": out["previews"], "settle": out["full_after_stop"],
            "p50": statistics.median(drawn) if drawn else float("nan"),
            "p95": pct(drawn, 95) if drawn else float("nan"), "max": max(drawn) if drawn else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0, help="slices per second while scrolling")
    ap.add_argument("--conditions", default="local,4g,3g")
    args = ap.parse_args()
    executable = shutil.which("chromium")
    if executable is None:
        sys.exit("chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    files = synthetic_series(args.slices)
    tmp = tempfile.TemporaryDirectory()
    env = {"DATABASE_URL": f"sqlite:///{tmp.name}/bench.db", "UPLOAD_FOLDER": f"{tmp.name}/uploads",
           "SECRET_KEY": "bench", "MAX_UPLOAD_MB": "2048", "LOGIN_RATE_LIMIT": "1000 per minute"}
    app, url = start_app(env)
    try:
        headers = {"Authorization": f"Bearer {token(url)}"}
        session = requests.Session()
        case_id = new_case(url, headers, session)
        upload_dicom(url, case_id, files, headers, session)
        items = session.get(f"{url}/api/cases/{case_id}/instances", headers=headers, timeout=30).json()["items"]
        sizes = []
        previews = []
        for item in items:  # warm the server's render cache with the frames the viewer will ask for
            r = session.get(f"{url}{item['rendered']}?frame=1", headers=headers, timeout=30)
            r.raise_for_status()
            sizes.append(len(r.content))
            p = session.get(f"{url}{item['rendered']}?frame=1&size=256&format=jpeg", headers=headers, timeout=30)
            p.raise_for_status()
            previews.append(len(p.content))
        print(f"{len(items)} slices 512x512 CT; a rendered frame is {statistics.median(sizes) / 1024:.0f} KiB "
              f"({r.headers['Content-Type']}), a preview {statistics.median(previews) / 1024:.0f} KiB (256 px JPEG); "
              f"scrolling at {args.rate:g} slices/s, "
              f"{len(items) - 1} key presses")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
            try:
                for name in args.conditions.split(","):
                    r = run_condition(browser, url, case_id, name, len(items) - 1, args.rate)
                    settle = "never" if r["settle"] is None else f"{r['settle']:.0f} ms"
                    print(f"{name:6s} first image {r['first'] * 1000:5.0f} ms | key -> drawn p50 {r['p50']:6.1f} ms  "
                          f"p95 {r['p95']:7.1f} ms  max {r['max']:7.1f} ms | skipped {r['skipped']:3d}/{r['n']}  "
                          f"as preview {r['previews']:3d} | last slice in full {settle} after the last key")
            finally:
                browser.close()
    finally:
        app.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
