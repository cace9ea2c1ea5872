"""Entry point for `flask --app wsgi` and WSGI servers."""

import gc
import os

from telehealth import create_app
from telehealth.extensions import socketio
from telehealth.video.hub import close_on_sigterm


def tune_collector(threshold: str) -> None:
    """Keep Python's cyclic garbage collector out of the response times of a serving process.

    With the default thresholds (700, 10, 10) a busy process ran a full collection every few
    seconds, and each walked every object the app had made at start (routes, models,
    catalogs, the situation room's figures): the pauses, tens of milliseconds with every
    thread stopped, were most of the slowest 1 % of responses (bench/README.md, "Lists at
    national size"). What exists once the app is made lives as long as the process, so it is
    frozen out of the collector's walks (gc.freeze), and young objects are collected after
    more allocations (Instagram's production setting does the same). Reference counting
    still frees almost everything at once; only cycles wait a little longer.
    `TELEHEALTH_GC_THRESHOLD=""` keeps Python's defaults.
    """
    if not threshold:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*(int(part) for part in threshold.split(",")))


app = create_app()
# SIGTERM moves this process's calls at once instead of leaving them until the lease lapses.
close_on_sigterm(app)
tune_collector(os.environ.get("TELEHEALTH_GC_THRESHOLD", "50000,20,100"))

if __name__ == "__main__":
    socketio.run(app, host="127.0.0.1", port=5000)
