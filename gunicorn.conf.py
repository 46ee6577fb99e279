"""Gunicorn settings of the production server (``make serve-production``), taken from config.py.

The threaded worker (gthread) serves HTTP and, through simple-websocket, Socket.IO's WebSockets:
each open WebSocket holds one of the worker's threads. Socket.IO keeps a long-polling session in
the worker that accepted it and gunicorn cannot route by session, so keep one worker per server
for browsers; scale out with more servers behind a sticky proxy, sharing the Redis message queue
(README, "Production").
"""

from config import config_for_env

# Instantiating checks the settings now, before anything listens (production needs SECRET_KEY).
_config = config_for_env()()
if _config.WORKERS > 1 and not _config.SOCKETIO_MESSAGE_QUEUE:
    raise RuntimeError("WORKERS > 1 needs SOCKETIO_MESSAGE_QUEUE (Redis): each worker holds its own rooms")

wsgi_app = "run:app"
bind = [f"{_config.HOST}:{_config.PORT}"]
worker_class = "gthread"
workers = _config.WORKERS
threads = _config.THREADS
# Uploads of a whole study can take minutes on a county hospital's link; the worker's heartbeat
# keeps running meanwhile (gthread), so this only bounds a worker that hangs. A stalled client is
# cut off by the app itself (UPLOAD_READ_TIMEOUT_SECONDS on the request socket, app/core/wsgi.py),
# which frees its thread; gunicorn has no such per-read bound of its own.
timeout = 120
graceful_timeout = 10
# gunicorn's control socket sits at one path per user, shared by every server of that user:
# several servers on one host (ports 5001, 5002, ...) would take it from each other.
control_socket_disable = True
accesslog = "-"
# A share link's token is in its URL; the access lines carry it redacted (app/core/accesslog.py).
logger_class = "app.core.gunicorn_log.RedactingLogger"
errorlog = "-"


def post_worker_init(worker) -> None:
    """Tune each worker like ``python run.py`` tunes its one process."""
    import run

    run.tune_for_serving()
