"""Telehealth: volunteer teleconsultation for under-resourced clinics."""

from __future__ import annotations

from typing import Any

from telehealth.boundary import TelehealthFlask
from telehealth.config import INSTANCE_DIR, Config, persistent_secret_key


def create_app(config: dict[str, Any] | None = None) -> TelehealthFlask:
    """Build the application: bind extensions, register every feature."""
    app = TelehealthFlask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.from_object(Config)
    if config:
        app.config.update(config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = persistent_secret_key()
    uri = str(app.config.get("SQLALCHEMY_DATABASE_URI") or "")
    if uri in ("sqlite://", "sqlite:///:memory:"):
        # An in-memory database is one connection (StaticPool): no pool to size.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            key: value for key, value in app.config["SQLALCHEMY_ENGINE_OPTIONS"].items()
            if key not in ("pool_size", "max_overflow", "pool_timeout")}
    elif uri.startswith("sqlite"):
        # SQLite's busy timeout bounds a writer's wait for the one write lock, as
        # lock_timeout does on PostgreSQL (audit/chain.py): then a 503 "try again".
        options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
        options["connect_args"] = {"timeout": float(app.config["DATABASE_LOCK_TIMEOUT_SECONDS"]),
                                   **options.get("connect_args", {})}
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options

    from telehealth import models, realtime, web  # noqa: F401  (models: every table)

    app.url_map.converters["int"] = web.DatabaseIdConverter  # before any route is added
    from telehealth.extensions import babel, csrf, db, login_manager, migrate, socketio
    from telehealth.security.sessions import disconnect_user_sockets
    from telehealth.video.directory import socket_origins

    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=web.select_locale, timezone_selector=web.select_timezone)
    # async_handlers=False: one socket's events are handled in the order they were sent, in
    # that socket's own connection thread (see video/guard.py).
    socketio.init_app(app, message_queue=app.config["SOCKETIO_MESSAGE_QUEUE"],
                      cors_allowed_origins=socket_origins(app.config), async_handlers=False,
                      client_manager=realtime.client_manager(app.config,
                                                             disconnect_user_sockets))

    from telehealth.accounts.views import bp as accounts_bp
    from telehealth.admin.views import bp as admin_bp
    from telehealth.conferences import events as conference_events
    from telehealth.conferences.views import bp as conferences_bp
    from telehealth.consults.views import bp as consults_bp
    from telehealth.diagnoses.views import bp as diagnoses_bp
    from telehealth.i18n.views import bp as i18n_bp
    from telehealth.main.views import bp as main_bp
    from telehealth.matching.views import bp as matching_bp
    from telehealth.notes.views import bp as notes_bp
    from telehealth.places.views import bp as places_bp
    from telehealth.roster.views import bp as roster_bp
    from telehealth.situation import events as situation_events  # noqa: F401  (/situation)
    from telehealth.situation.views import bp as situation_bp
    from telehealth.surveillance.views import bp as surveillance_bp
    from telehealth.translation.views import bp as translation_bp
    from telehealth.video import events as video_events
    from telehealth.video.views import bp as video_bp

    for blueprint in (main_bp, accounts_bp, consults_bp, notes_bp, admin_bp, i18n_bp,
                      translation_bp, diagnoses_bp, roster_bp, matching_bp, video_bp,
                      situation_bp, places_bp, surveillance_bp, conferences_bp):
        app.register_blueprint(blueprint)
    from telehealth.matching.services import connect_signals as matching_listens
    from telehealth.notes.views import connect_signals as notes_listen
    from telehealth.notifications import events  # noqa: F401  (Socket.IO handlers)
    from telehealth.translation.views import connect_signals as translation_listens

    matching_listens()  # offers submitted consults, re-offers after roster changes
    notes_listen()  # the consult page shows the notes
    situation_events.connect_signals()  # the room refreshes when a consult's status changes
    translation_listens()  # ... each in the reader's language, the thread's translations at once

    video_events.init_app(app)
    conference_events.init_app(app)

    web.init_app(app)

    from telehealth import cli, security, weight
    from telehealth.audit import commands as audit_commands
    from telehealth.backup import commands as backup_commands
    from telehealth.i18n import commands as i18n_commands
    from telehealth.matching import sweeper
    from telehealth.surveillance import commands as surveillance_commands

    security.init_app(app)
    weight.init_app(app)
    cli.init_app(app)
    i18n_commands.init_app(app)
    audit_commands.init_app(app)
    backup_commands.init_app(app)
    surveillance_commands.init_app(app)
    sweeper.init_app(app)

    from telehealth import jobs

    jobs.init_app(app)
    return app
