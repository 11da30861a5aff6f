"""Hub's launcher.

    python run.py              the whole system on embedded defaults: SQLite, an embedded
                               Redis, the hub, one worker and beat, logs prefixed
    python run.py web          the hub (REST, Socket.IO, dashboard) only
    python run.py worker       a Celery worker (HUB_WORKER_POOL: prefork, threads or gevent)
    python run.py beat         the Celery beat scheduler

REDIS_URL and DATABASE_URL switch to external services.
"""

import os
import sys
import warnings

ROOT = os.path.dirname(os.path.abspath(__file__))


def patch_for_async_mode() -> str:
    """The web process picks its async library once, before anything opens a socket."""
    mode = os.environ.get("HUB_ASYNC_MODE") or "eventlet"
    if mode == "eventlet":
        os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")  # psycopg 3 under eventlet
        # The design card chose eventlet; gevent is the supported way out (HUB_ASYNC_MODE).
        warnings.filterwarnings("ignore", message="\\s*Eventlet is deprecated")
        import eventlet

        eventlet.monkey_patch()
    elif mode == "gevent":
        from gevent import monkey

        monkey.patch_all()
    return mode


def web() -> None:
    mode = patch_for_async_mode()
    from hub import create_app
    from hub.heap import settle_after_start_up, time_collections

    app = create_app({"HUB_PROCESS": "web"})
    settle_after_start_up()
    time_collections()  # /metrics: the pauses every client of this process waits through
    if mode == "eventlet":
        from hub import eventlet_http

        eventlet_http.serve(app, app.config["HUB_HOST"], app.config["HUB_PORT"],
                            app.config["HUB_MAX_CONNECTIONS"])
        return
    options: dict[str, object] = {"log_output": False}
    if mode == "threading":
        options["allow_unsafe_werkzeug"] = True
    app.extensions["socketio"].run(app, host=app.config["HUB_HOST"],
                                   port=app.config["HUB_PORT"], **options)


# The worker pools (HUB_WORKER_POOL) and the extra Celery options each needs. prefork for
# CPU-bound tasks; threads or gevent, with a high concurrency, for tasks that mostly wait on
# I/O, so that many run at once without a process each. gevent runs them as greenlets, each
# until it waits, where 100 threads queue for the GIL: in the bench's 100-task burst, the
# time from a task's end to its event at the client is ~40 ms at p99 against ~250 ms.
WORKER_POOLS: dict[str, list[str]] = {
    "prefork": [],
    "threads": [],
    # A gevent worker runs Celery's blocking consumer loop, which sends the acks of finished
    # tasks (acks_late) only between waits of up to 2 s for the broker. With the prefetch
    # window equal to the concurrency, a burst fills it with finished, unacknowledged tasks
    # and the next ones wait up to 2 s to start (celery/celery#10263; the bench saw 1.3 s).
    # A window 4x the pool leaves room; the pool itself still bounds what runs.
    "gevent": ["--prefetch-multiplier", "4"],
}


def worker_options(pool: str, concurrency: str) -> list[str]:
    if pool not in WORKER_POOLS:
        sys.exit(f"HUB_WORKER_POOL must be one of {', '.join(WORKER_POOLS)}, not {pool!r}")
    return ["--pool", pool, "--concurrency", concurrency, *WORKER_POOLS[pool]]


def celery(role: str) -> None:
    argv = [sys.executable, "-m", "celery", "-A", "tasks", role, "--loglevel",
            os.environ.get("HUB_LOG_LEVEL", "INFO")]
    if role == "worker":
        argv += worker_options(os.environ.get("HUB_WORKER_POOL") or "prefork",
                               os.environ.get("HUB_WORKER_CONCURRENCY") or "2")
    # Celery imports `tasks` and `celeryconfig` from the project root, wherever we run.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    os.execv(sys.executable, argv + sys.argv[2:])


def main() -> None:
    role = sys.argv[1] if len(sys.argv) > 1 else "all"
    if role == "web":
        web()
    elif role in ("worker", "beat"):
        celery(role)
    elif role == "all":
        from hub.launcher import run_all

        sys.exit(run_all())
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
