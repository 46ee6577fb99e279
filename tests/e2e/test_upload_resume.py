"""Resumable upload: a batch stored by the server whose answer is lost on a dropping link is not sent again."""

import re
import socket
import threading

import sqlalchemy as sa
from playwright.sync_api import expect

from tests.imaging.dicom_samples import ct_series

FILES = 30  # 8 per batch: 4 batches
FILENAME = re.compile(rb'filename="([^"]+)"')


class DroppingLink:
    """WSGI middleware: the ``nth`` upload is stored, then the connection dies before the answer is sent."""

    def __init__(self, wsgi_app, nth: int, on_drop):
        self.wsgi_app, self.nth, self.on_drop = wsgi_app, nth, on_drop
        self.uploads = 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"].endswith("/files"):
            with self.lock:
                self.uploads += 1
                drop = self.uploads == self.nth
            if drop:
                response = self.wsgi_app(environ, lambda *args, **kwargs: None)
                b"".join(response)  # the upload is processed and committed...
                response.close()
                self.on_drop()
                environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)  # ...and the phone never hears back
                start_response("200 OK", [("Content-Type", "application/json")])
                return [b""]
        return self.wsgi_app(environ, start_response)


def test_interrupted_upload_resumes_without_resending_stored_files(open_as, demo, make_case, tmp_path, app):
    case_id = make_case(demo["gp"])
    paths = []
    for name, data in ct_series(FILES, study_uid="1.2.826.0.1.3680043.2.1125.77.1",
                                series_uid="1.2.826.0.1.3680043.2.1125.77.1.2"):
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(str(path))
    lock = threading.Lock()
    down = {"requests": 0}  # how many more requests the dead link swallows
    sent: list[str] = []  # names of the files in every upload request that went out to the server

    def link_dies():
        with lock:
            down["requests"] = 2

    app.wsgi_app = DroppingLink(app.wsgi_app, nth=3, on_drop=link_dies)

    def network(route):
        """While the link is down requests die on the way; otherwise they go through (and are counted)."""
        with lock:
            dead = down["requests"] > 0
            down["requests"] -= dead
            if not dead and route.request.url.endswith("/files"):
                sent.extend(n.decode() for n in FILENAME.findall(route.request.post_data_buffer or b""))
        if dead:
            route.abort("internetdisconnected")
        else:
            route.continue_()

    gp = open_as("gp", phone=True)
    gp.route(re.compile(r".*/api/cases/\d+/files(/check)?$"), network)
    gp.goto(f"/cases/{case_id}")
    gp.set_input_files("#pick-files", paths)

    expect(gp.locator("#overall-text")).to_contain_text(re.compile(rf"已上传 \d+/{FILES}，正在续传"))
    expect(gp.locator("#overall-text")).to_contain_text(f"全部完成: 已接收 {FILES}", timeout=30_000)
    expect(gp.locator(".upload-item.accepted")).to_have_count(FILES)
    # The batch whose answer was lost was found stored when the upload resumed, and said so.
    skipped = gp.locator(".upload-item .upload-status", has_text="病例中已有，跳过")
    expect(skipped).not_to_have_count(0)

    # Every file went out exactly once: nothing was sent twice after the resume.
    assert sorted(sent) == [f"IM{n:04d}" for n in range(1, FILES + 1)]
    from app.extensions import db
    from app.imaging.models import Instance

    with app.app_context():
        stored = db.session.scalar(sa.select(sa.func.count()).select_from(Instance).where(Instance.case_id == case_id))
    assert stored == FILES
