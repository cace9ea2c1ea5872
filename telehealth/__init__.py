"""Telehealth: volunteer teleconsultation for under-resourced clinics."""

from __future__ import annotations

from typing import Any

from flask import Flask

from telehealth.config import INSTANCE_DIR, Config


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application: bind extensions, register every feature."""
    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.from_object(Config)
    if config:
        app.config.update(config)

    from telehealth import models, web  # noqa: F401  (models: metadata sees every table)

    app.url_map.converters["int"] = web.DatabaseIdConverter  # before any route is added
    from telehealth.extensions import babel, csrf, db, login_manager, migrate, socketio
    from telehealth.video.directory import socket_origins

    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=web.select_locale, timezone_selector=web.select_timezone)
    socketio.init_app(app, message_queue=app.config["SOCKETIO_MESSAGE_QUEUE"],
                      cors_allowed_origins=socket_origins(app.config))

    from telehealth.accounts.views import bp as accounts_bp
    from telehealth.admin.views import bp as admin_bp
    from telehealth.consults.views import bp as consults_bp
    from telehealth.diagnoses.views import bp as diagnoses_bp
    from telehealth.i18n.views import bp as i18n_bp
    from telehealth.main.views import bp as main_bp
    from telehealth.matching.views import bp as matching_bp
    from telehealth.notes.views import bp as notes_bp
    from telehealth.roster.views import bp as roster_bp
    from telehealth.translation.views import bp as translation_bp
    from telehealth.video import events as video_events  # noqa: F401  (registers /call)
    from telehealth.video.views import bp as video_bp

    for blueprint in (main_bp, accounts_bp, consults_bp, notes_bp, admin_bp, i18n_bp,
                      translation_bp, diagnoses_bp, roster_bp, matching_bp, video_bp):
        app.register_blueprint(blueprint)
    from telehealth.notifications import events  # noqa: F401  (Socket.IO handlers)

    web.init_app(app)

    from telehealth import cli, security, weight
    from telehealth.audit import commands as audit_commands
    from telehealth.backup import commands as backup_commands
    from telehealth.i18n import cli as i18n_cli
    from telehealth.matching import sweeper

    security.init_app(app)
    weight.init_app(app)
    cli.init_app(app)
    i18n_cli.init_app(app)
    audit_commands.init_app(app)
    backup_commands.init_app(app)
    sweeper.init_app(app)
    return app
