"""Entry point: ``python run.py`` serves HTTP and Socket.IO; ``flask --app run ...`` for commands."""

from app import create_app
from app.extensions import socketio

app = create_app()

if __name__ == "__main__":
    socketio.run(app, host=app.config["HOST"], port=app.config["PORT"], allow_unsafe_werkzeug=True)
