"""Entry point for `flask --app wsgi` and WSGI servers."""

from telehealth import create_app
from telehealth.extensions import socketio
from telehealth.video.hub import close_on_sigterm

app = create_app()
# SIGTERM moves this process's calls at once instead of leaving them until the lease lapses.
close_on_sigterm(app)

if __name__ == "__main__":
    socketio.run(app, host="127.0.0.1", port=5000)
