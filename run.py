"""Entry point: ``python run.py`` serves HTTP and Socket.IO; ``flask --app run ...`` for commands.

In production gunicorn serves ``run:app`` instead (``make serve-production``, gunicorn.conf.py).
"""

import gc
import sys

from app import create_app
from app.extensions import socketio
from config import config_for_env

app = create_app(config_for_env())


def tune_for_serving() -> None:
    """Tune this server process for many threads: a short GIL switch interval, start-up objects frozen."""
    # The threaded servers run a thread per WebSocket; a broadcast wakes one writer per member.
    # A shorter GIL switch interval keeps them from queueing behind a busy handler (p99 latency,
    # see docs/BENCHMARKS.md), and freezing the start-up objects keeps GC passes short.
    sys.setswitchinterval(app.config["GIL_SWITCH_INTERVAL_MS"] / 1000)
    gc.freeze()


if __name__ == "__main__":
    tune_for_serving()
    # The embedded default also listens for DICOM C-STORE; in production the listener runs as
    # its own process (flask --app run dicom-scp), so that several server workers never compete.
    if app.config["DICOM_SCP_ENABLED"]:
        from app.dicomnet.scp import start_in_background

        start_in_background(app)
    socketio.run(app, host=app.config["HOST"], port=app.config["PORT"], allow_unsafe_werkzeug=True)
