"""The Celery application: `celery -A telehealth.jobs.celery_app worker` and `... beat`.

Importing this module builds the Flask app from the environment (the same variables as the
web processes: database, broker, mail, message queue for live events).
"""

from __future__ import annotations

from celery import Celery

from telehealth import create_app
from telehealth.jobs import make_celery

flask_app = create_app()
celery: Celery = flask_app.extensions.get("celery") or make_celery(flask_app)
app = celery
