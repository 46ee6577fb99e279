"""The baseline for bench/realtime.py: a bare python-socketio server that only relays.

Same server stack as the app (threading mode, werkzeug's threaded server, simple-websocket),
no authentication, no database: ``join`` enters a room, ``message`` is broadcast to it and acked.
"""

import sys

import socketio
from werkzeug.serving import make_server

sio = socketio.Server(async_mode="threading")
app = socketio.WSGIApp(sio)
seq = 0


@sio.on("join", namespace="/consult")
def join(sid, data):
    sio.enter_room(sid, f"case:{data['case_id']}", namespace="/consult")
    return {"ok": True, "messages": [], "online": []}


@sio.on("message", namespace="/consult")
def message(sid, data):
    global seq
    seq += 1
    sio.emit("message", {**data, "seq": seq}, to=f"case:{data['case_id']}", namespace="/consult")
    return {"ok": True, "seq": seq}


if __name__ == "__main__":
    make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True).serve_forever()
