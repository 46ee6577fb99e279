"""A real S3 wire-protocol server for tests: moto's server mode on 127.0.0.1, in a thread.

No MinIO binary can be installed here, so the S3 code talks to moto's S3 implementation over
HTTP through the real minio client. ``fail_after_puts`` turns the server into one that answers
503 to everything after that many object PUTs: a deterministic outage in the middle of an upload.

Like AWS S3 and MinIO (and unlike moto), the server checks a request body against the SHA-256
its signature carries (``x-amz-content-sha256``) and refuses a mismatch with
XAmzContentSHA256Mismatch; ``signed_puts`` records the digest each object PUT carried.
"""

import hashlib
import io
import re
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from tests.conftest import free_port

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class S3Server:
    """Start and stop a moto S3 server; its data lives on across a stop and restart."""

    def __init__(self):
        self.host, self.port = "127.0.0.1", free_port()
        self.fail_after_puts: int | None = None
        self.object_puts = 0
        self.signed_puts: dict[str, str] = {}  # object path -> the payload SHA-256 its PUT was signed with
        self._app = DomainDispatcherApplication(create_backend_app)
        self._server = None
        self._thread = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _wsgi(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        with self._lock:
            if method == "PUT" and path.strip("/").count("/") >= 1:
                self.object_puts += 1
            failing = self.fail_after_puts is not None and self.object_puts > self.fail_after_puts
        if failing:
            start_response("503 Service Unavailable", [("Content-Type", "application/xml")])
            return [b"<Error><Code>ServiceUnavailable</Code><Message>injected outage</Message></Error>"]
        signed = environ.get("HTTP_X_AMZ_CONTENT_SHA256", "")
        if method in ("PUT", "POST") and _HEX_DIGEST.fullmatch(signed):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            if hashlib.sha256(body).hexdigest() != signed:
                start_response("400 Bad Request", [("Content-Type", "application/xml")])
                return [b"<Error><Code>XAmzContentSHA256Mismatch</Code>"
                        b"<Message>The provided 'x-amz-content-sha256' header does not match what was computed."
                        b"</Message></Error>"]
            environ["wsgi.input"] = io.BytesIO(body)
            if method == "PUT" and "uploadId" not in environ.get("QUERY_STRING", ""):
                with self._lock:
                    self.signed_puts[path] = signed
        return self._app(environ, start_response)

    def start(self) -> "S3Server":
        self._server = make_server(self.host, self.port, self._wsgi, threaded=True,
                                   request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None
