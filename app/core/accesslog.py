"""Access logs without capability tokens: a share link's token is the whole of its secret.

A share link is used as ``/dicomweb/link/<token>/...``, ``/viewer/link/<token>`` and
``/ohif/link/<token>/...``; every request line of it went into the server's access log (werkzeug's
under ``python run.py``, gunicorn's in production) and from there to whoever reads or ships the
logs, who could open the case's images until the link expired. Only the sha256 of a token is
stored; the logs now keep no more than the database does.
"""

import re

from werkzeug.serving import WSGIRequestHandler

# The path segment after /link/ (any root), and a token's prefix wherever else one appears (a Referer).
_LINK_SEGMENT = re.compile(r"(/link/)[^/?#\s\"']+")
_TOKEN = re.compile(r"hzl_[A-Za-z0-9_\-%]+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """Return text with every share-link token in it replaced by [redacted]."""
    return _TOKEN.sub("hzl_" + REDACTED, _LINK_SEGMENT.sub(r"\1" + REDACTED, text))


def redacted(value):
    """Return a log value with its tokens redacted if it is text, else as it is."""
    return redact(value) if isinstance(value, str) else value


_werkzeug_log = WSGIRequestHandler.log


def _log(self, type: str, message: str, *args) -> None:  # noqa: A002 - werkzeug's name
    _werkzeug_log(self, type, message, *(redacted(a) for a in args))


def init_app(app) -> None:
    """Make werkzeug's server (``python run.py``) log request lines without share-link tokens."""
    # The handler class is the server's, shared by every app of the process: patched once.
    WSGIRequestHandler.log = _log

