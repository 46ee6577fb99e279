"""WSGI middleware the whole app sits behind."""

import contextlib

from werkzeug.exceptions import RequestTimeout


class Utf8QueryString:
    """Percent-encode raw non-ASCII bytes in the query string, so they are read as UTF-8.

    curl and many clients send ``?q=长沙`` as raw UTF-8 bytes; WSGI hands them over decoded as
    latin-1 and werkzeug would read mojibake, while the percent-encoded form works. Encoding those
    bytes (and only those) makes both forms the same request, on werkzeug's server and others.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        query = environ.get("QUERY_STRING", "")
        if not query.isascii():
            raw = query.encode("latin-1", "replace")
            if "werkzeug.socket" in environ:
                # Werkzeug's own server has already UTF-8-encoded the latin-1 text once more.
                with contextlib.suppress(UnicodeError):
                    raw = raw.decode("utf-8").encode("latin-1")
            environ["QUERY_STRING"] = "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)
        return self.wsgi_app(environ, start_response)


class _TimedInput:
    """wsgi.input whose socket timeouts end the request with a 408 instead of a 500 traceback."""

    def __init__(self, stream):
        self._stream = stream
        self.timed_out = False

    def _guard(self, method, *args):
        try:
            return method(*args)
        except TimeoutError as exc:
            self.timed_out = True
            raise RequestTimeout("the request body stopped arriving") from exc

    def read(self, *args):
        return self._guard(self._stream.read, *args)

    def readline(self, *args):
        return self._guard(self._stream.readline, *args)

    def readlines(self, *args):
        return self._guard(self._stream.readlines, *args)

    def __iter__(self):
        return iter(self.readline, b"")


class ReadTimeout:
    """Bound how long a request's connection may sit idle, so a stalled upload frees its thread.

    Both werkzeug's server (``python run.py``) and gunicorn hand the WSGI app the client's socket;
    neither bounds a read of the request body by default. A WebSocket upgrade keeps no timeout:
    Socket.IO's own ping/pong notices a dead peer.
    """

    def __init__(self, wsgi_app, seconds: float):
        self.wsgi_app = wsgi_app
        self.seconds = seconds or None

    def __call__(self, environ, start_response):
        sock = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
        if sock is not None and self.seconds:
            websocket = environ.get("HTTP_UPGRADE", "").lower() == "websocket"
            with contextlib.suppress(OSError):
                sock.settimeout(None if websocket else self.seconds)
            if not websocket:
                body = environ["wsgi.input"] = _TimedInput(environ["wsgi.input"])

                def start(status, headers, exc_info=None):
                    if body.timed_out:
                        # The rest of the body may still come: do not read it as the next request.
                        headers = [*[(k, v) for k, v in headers if k.lower() != "connection"], ("Connection", "close")]
                    return start_response(status, headers, exc_info)

                return self.wsgi_app(environ, start)
        return self.wsgi_app(environ, start_response)
