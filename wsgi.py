"""Entry point for `flask --app wsgi` and WSGI servers."""

from telehealth import create_app
from telehealth.extensions import socketio

app = create_app()

if __name__ == "__main__":
    socketio.run(app, host="127.0.0.1", port=5000)
