"""Configuration from the environment (SPEC section 9): one class per environment."""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEV_SECRET = "hub-development-secret-not-for-production"  # noqa: S105 - refused in production


# gevent_uwsgi: Flask-SocketIO's mode for uWSGI's own websocket API (deploy/uwsgi.ini).
ASYNC_MODES = ("eventlet", "gevent", "gevent_uwsgi", "threading")


class ConfigError(RuntimeError):
    """The configuration cannot run safely (production with default secrets, bad values)."""


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _list(environ: Mapping[str, str], name: str) -> list[str]:
    return [item.strip() for item in environ.get(name, "").split(",") if item.strip()]


def database_url(raw: str) -> str:
    """Accept the usual postgres:// spellings and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


class BaseConfig:
    ENV_NAME = "development"
    TESTING = False
    DEBUG = False

    @classmethod
    def load(cls, environ: Mapping[str, str]) -> dict[str, Any]:
        instance = Path(environ.get("HUB_INSTANCE_DIR") or Path.cwd() / "instance").resolve()
        redis_url = environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        return {
            "HUB_ENV": cls.ENV_NAME,
            "TESTING": cls.TESTING,
            "DEBUG": cls.DEBUG,
            "INSTANCE_DIR": str(instance),
            "SECRET_KEY": environ.get("HUB_SECRET_KEY") or DEV_SECRET,
            "HUB_JWT_SECRET": environ.get("HUB_JWT_SECRET") or DEV_SECRET,
            "SQLALCHEMY_DATABASE_URI": database_url(
                environ.get("DATABASE_URL") or f"sqlite:///{instance / 'hub.db'}"
            ),
            "REDIS_URL": redis_url,
            "HUB_BROKER_URL": environ.get("HUB_BROKER_URL") or redis_url,
            "HUB_ASYNC_MODE": environ.get("HUB_ASYNC_MODE") or "eventlet",
            "HUB_PROCESS": environ.get("HUB_PROCESS") or "web",
            "HUB_CORS_ORIGINS": _list(environ, "HUB_CORS_ORIGINS"),
            "HUB_HISTORY_BACKEND": environ.get("HUB_HISTORY_BACKEND") or "redis",
            "HUB_HISTORY_SIZE": _int(environ, "HUB_HISTORY_SIZE", 1000),
            "HUB_HISTORY_TTL": _int(environ, "HUB_HISTORY_TTL", 24 * 3600),
            "HUB_PROGRESS_HZ": _int(environ, "HUB_PROGRESS_HZ", 10),
            "HUB_MAX_MESSAGE_BYTES": _int(environ, "HUB_MAX_MESSAGE_BYTES", 64 * 1024),
            "HUB_HOST": environ.get("HUB_HOST") or "127.0.0.1",
            "HUB_PORT": _int(environ, "HUB_PORT", 5000),
            # `python run.py` starts this many web processes on the one port (SO_REUSEPORT).
            "HUB_WEB_PROCESSES": _int(environ, "HUB_WEB_PROCESSES", 1),
            "HUB_WS_COMPRESSION": environ.get("HUB_WS_COMPRESSION", "").lower() in ("1", "true"),
            "HUB_REST_RATE": _int(environ, "HUB_REST_RATE", 1000),
            "HUB_SOCKET_RATE": _int(environ, "HUB_SOCKET_RATE", 20),
            "HUB_MAX_SUBSCRIPTIONS": _int(environ, "HUB_MAX_SUBSCRIPTIONS", 100),
            "HUB_MAX_CONNECTIONS_PER_USER": _int(environ, "HUB_MAX_CONNECTIONS_PER_USER", 20),
            "HUB_MAX_CONNECTIONS": _int(environ, "HUB_MAX_CONNECTIONS", 100_000),  # per process
            "HUB_TOKEN_CHECK_SECONDS": float(environ.get("HUB_TOKEN_CHECK_SECONDS") or 1.0),
            "HUB_TASK_TIME_LIMIT": _int(environ, "HUB_TASK_TIME_LIMIT", 600),
            # A task whose worker stopped beating this long is announced stalled (task.stalled).
            "HUB_STALL_SECONDS": (stall := _float(environ, "HUB_STALL_SECONDS", 30.0)),
            # A dead worker's unacked task is redelivered this long after its last beat; a live
            # worker re-scores what it holds (tasks.visibility), so this need not exceed the
            # task time limit. A third past the stall: task.stalled is out first.
            "HUB_VISIBILITY_TIMEOUT": _float(environ, "HUB_VISIBILITY_TIMEOUT", 1.5 * stall),
            "HUB_REDIS_PREFIX": environ.get("HUB_REDIS_PREFIX") or "hub",
            # Seconds any Redis call waits for an answer; read by events.redis_backend, since
            # workers and beat connect outside the app too. Checked here.
            "HUB_REDIS_TIMEOUT": _float(environ, "HUB_REDIS_TIMEOUT", 1.0),
            "HUB_DEV_DASHBOARD": cls.ENV_NAME == "development",
            "TEMPLATES_AUTO_RELOAD": cls.ENV_NAME == "development",
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
            # Request bodies may carry a broadcast's user list; publications stay <= 64 KiB.
            "MAX_CONTENT_LENGTH": _int(environ, "HUB_MAX_REQUEST_BYTES", 2 * 1024 * 1024),
            # flask-smorest: OpenAPI at /api/openapi.json, docs at /api/docs, all served locally.
            "API_TITLE": "Hub",
            "API_VERSION": "v1",
            "OPENAPI_VERSION": "3.0.3",
            "OPENAPI_URL_PREFIX": "/api",
            "OPENAPI_JSON_PATH": "openapi.json",
            "OPENAPI_SWAGGER_UI_PATH": "docs",
            "OPENAPI_SWAGGER_UI_URL": "/static/vendor/swagger-ui/",
        }

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> None:
        if config["HUB_ASYNC_MODE"] not in ASYNC_MODES:
            raise ConfigError(f"HUB_ASYNC_MODE must be one of {', '.join(ASYNC_MODES)}")
        if config["HUB_HISTORY_SIZE"] < 1 or config["HUB_HISTORY_TTL"] < 1:
            raise ConfigError("HUB_HISTORY_SIZE and HUB_HISTORY_TTL must be positive")
        if config["HUB_WEB_PROCESSES"] < 1:
            raise ConfigError("HUB_WEB_PROCESSES must be at least 1")
        if config["HUB_WEB_PROCESSES"] > 1 and config["HUB_ASYNC_MODE"] != "eventlet":
            raise ConfigError("HUB_WEB_PROCESSES > 1 needs HUB_ASYNC_MODE=eventlet "
                              "(its listener shares the port with SO_REUSEPORT)")


class DevelopmentConfig(BaseConfig):
    ENV_NAME = "development"


class ProductionConfig(BaseConfig):
    ENV_NAME = "production"

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> None:
        super().check(config)
        for name in ("SECRET_KEY", "HUB_JWT_SECRET"):
            value = config[name]
            label = "HUB_SECRET_KEY" if name == "SECRET_KEY" else name
            if value == DEV_SECRET or len(value) < 32:
                raise ConfigError(
                    f"{label} must be set to a random value of at least 32 characters in "
                    "production (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
        if "*" in config["HUB_CORS_ORIGINS"]:
            raise ConfigError("HUB_CORS_ORIGINS must list origins explicitly in production")


class TestingConfig(BaseConfig):
    ENV_NAME = "testing"
    TESTING = True

    @classmethod
    def load(cls, environ: Mapping[str, str]) -> dict[str, Any]:
        config = super().load(environ)
        config.update(HUB_ASYNC_MODE="threading", HUB_HISTORY_BACKEND="memory",
                      HUB_PROCESS="web", HUB_DEV_DASHBOARD=True)
        return config


CONFIGS: dict[str, type[BaseConfig]] = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestingConfig,
}


def load_config(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Read the environment for HUB_ENV's class, apply overrides, refuse unsafe settings."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    env_name = overrides.pop("HUB_ENV", None) or environ.get("HUB_ENV") or "development"
    if overrides.get("TESTING") and env_name == "development":
        env_name = "testing"
    if env_name not in CONFIGS:
        raise ConfigError(f"HUB_ENV must be one of {', '.join(CONFIGS)}, got {env_name!r}")
    config_class = CONFIGS[env_name]
    config = config_class.load(environ)
    config.update(overrides)
    config_class.check(config)
    return config
