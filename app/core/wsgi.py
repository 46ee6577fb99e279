"""WSGI middleware the whole app sits behind."""

import contextlib


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
