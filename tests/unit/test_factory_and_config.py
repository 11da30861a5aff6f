from pathlib import Path

import pytest

from hub import create_app
from hub.config import DEV_SECRET, ConfigError, database_url, load_config
from hub.launcher import processes


def test_factory_takes_test_config(tmp_path: Path) -> None:
    app = create_app({"TESTING": True, "INSTANCE_DIR": str(tmp_path),
                      "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.testing
    assert app.config["HUB_HISTORY_BACKEND"] == "memory"
    assert "socketio" in app.extensions and "celery" in app.extensions


def test_default_is_development_without_testing() -> None:
    config = load_config({}, {})
    assert config["HUB_ENV"] == "development"
    assert config["HUB_ASYNC_MODE"] == "eventlet"
    assert config["HUB_HISTORY_SIZE"] == 1000
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")


def test_production_refuses_default_secrets() -> None:
    with pytest.raises(ConfigError, match="HUB_SECRET_KEY"):
        load_config({"HUB_ENV": "production"})
    with pytest.raises(ConfigError, match="HUB_JWT_SECRET"):
        load_config({"HUB_ENV": "production", "HUB_SECRET_KEY": "x" * 40,
                     "HUB_JWT_SECRET": DEV_SECRET})


def test_production_with_real_secrets_and_explicit_cors() -> None:
    env = {"HUB_ENV": "production", "HUB_SECRET_KEY": "s" * 40, "HUB_JWT_SECRET": "j" * 40,
           "HUB_CORS_ORIGINS": "https://app.example.com, https://admin.example.com"}
    config = load_config(env)
    assert config["HUB_CORS_ORIGINS"] == ["https://app.example.com", "https://admin.example.com"]
    with pytest.raises(ConfigError, match="CORS"):
        load_config({**env, "HUB_CORS_ORIGINS": "*"})


@pytest.mark.parametrize("name", ["HUB_HISTORY_SIZE", "HUB_PORT", "HUB_PROGRESS_HZ"])
def test_bad_integers_are_named(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_config({name: "lots"})


def test_unknown_env_and_async_mode() -> None:
    with pytest.raises(ConfigError, match="HUB_ENV"):
        load_config({"HUB_ENV": "staging"})
    with pytest.raises(ConfigError, match="HUB_ASYNC_MODE"):
        load_config({"HUB_ASYNC_MODE": "asyncio"})


def test_web_processes() -> None:
    assert load_config({})["HUB_WEB_PROCESSES"] == 1
    assert processes(1)[0] == ("web", "web")
    assert [name for name, _ in processes(2)] == ["web.1", "web.2", "worker", "beat"]
    with pytest.raises(ConfigError, match="at least 1"):
        load_config({"HUB_WEB_PROCESSES": "0"})
    with pytest.raises(ConfigError, match="eventlet"):  # only its listener shares the port
        load_config({"HUB_WEB_PROCESSES": "2", "HUB_ASYNC_MODE": "gevent"})


def test_postgres_urls_use_psycopg3() -> None:
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_worker_pools() -> None:
    from run import worker_options

    assert worker_options("prefork", "2") == ["--pool", "prefork", "--concurrency", "2"]
    # gevent's consumer acknowledges finished tasks only between its waits on the broker:
    # a wider prefetch window keeps those from holding back the next tasks.
    assert worker_options("gevent", "100")[-2:] == ["--prefetch-multiplier", "4"]
    with pytest.raises(SystemExit, match="HUB_WORKER_POOL must be one of prefork, threads"):
        worker_options("eventlet", "2")
