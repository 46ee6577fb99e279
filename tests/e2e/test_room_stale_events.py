"""The room page keeps the newest presence list and presenter when an older one arrives late.

The server numbers both (``version`` in the ``presence`` and ``presenter`` events). Two events
handled at once on the server can reach a page out of order; which one is late cannot be forced
from outside, so the test stands between the page and the server on the page's WebSocket
(Playwright's ``route_web_socket``): every frame passes through unchanged, and the test adds one
more, an older event as the server would have sent it, and checks the page ignores it.
"""

import json
import time

from playwright.sync_api import expect


class SocketTap:
    """Forward the page's Socket.IO WebSocket both ways; send the page extra frames on request."""

    def __init__(self, page):
        self.page = page
        self.to_page = None
        self.upgraded = False
        page.route_web_socket("**/socket.io/**", self._route)

    def _route(self, ws) -> None:
        server = ws.connect_to_server()

        def from_page(message) -> None:
            if message == "5":  # Engine.IO "upgrade": the page now talks over this WebSocket
                self.upgraded = True
            server.send(message)

        ws.on_message(from_page)
        server.on_message(ws.send)
        self.to_page = ws

    def wait_upgraded(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.upgraded and self.to_page):
            assert time.monotonic() < deadline, "the page's Socket.IO never moved to its WebSocket"
            self.page.wait_for_timeout(50)

    def emit(self, event: str, payload: dict) -> None:
        """Deliver an event of namespace /consult to the page, as the server frames it."""
        self.to_page.send("42/consult," + json.dumps([event, payload]))


def test_an_older_presence_list_or_presenter_arriving_late_is_ignored(open_as, demo, api_as, make_case):
    case_id = make_case(demo["gp"])
    api_as(demo["gp"]).post(f"/api/cases/{case_id}/share", json={"specialist_id": demo["gyn"]})
    api_as(demo["gyn"]).post(f"/api/cases/{case_id}/accept")
    gp = open_as("gp", phone=True)
    tap = SocketTap(gp)
    gp.goto(f"/cases/{case_id}/viewer")
    expect(gp.locator("#conn-state")).to_have_class("ok")
    gyn = open_as("gyn")
    gyn.goto(f"/cases/{case_id}/viewer")
    online = gp.locator("#online li")
    expect(online).to_have_count(2)
    tap.wait_upgraded()

    # Who was online before the specialist came in (version 1, older than any the server sends now).
    tap.emit("presence", {"case_id": case_id, "online": [demo["gp"]], "version": 1})
    gyn.click("#present-btn")  # the specialist presents: a real, newer event after the stale one
    expect(gp.locator("#presenter-info")).to_have_attribute("data-presenter", str(demo["gyn"]))
    expect(online).to_have_count(2)

    # A presenter event from before the specialist took over: nobody presented then.
    tap.emit("presenter", {"case_id": case_id, "user_id": None, "version": 1})
    gyn.fill("#chat-input", "之后的消息")  # a real event after the stale one, to know it was handled
    gyn.keyboard.press("Enter")
    expect(gp.locator("#messages li[data-seq] .body")).to_have_text(["之后的消息"])
    expect(gp.locator("#presenter-info")).to_have_attribute("data-presenter", str(demo["gyn"]))

    # Newer events still apply: the specialist hands back, then leaves.
    gyn.click("#present-btn")
    expect(gp.locator("#presenter-info")).to_have_attribute("data-presenter", "")
    gyn.close()
    expect(online).to_have_count(1)
    expect(gp.locator("#online li").first).to_have_attribute("data-user-id", str(demo["gp"]))
