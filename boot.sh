#!/bin/sh
# Container entry point: the role is the first argument, `web` by default.
#   web       migrate, then the hub on eventlet's server (python run.py web)
#   gunicorn  migrate, then the hub under gunicorn's gevent worker (HUB_ASYNC_MODE=gevent)
#   worker    a Celery worker (HUB_WORKER_POOL, prefork by default); extra arguments go to celery
#   beat      the Celery beat scheduler (a Redis lock keeps it to one); extra arguments go to celery
# Anything else runs as a command (e.g. `sh`, `flask --app hub ...`). Every server is
# exec'd, so it is PID 1 and receives the container's SIGTERM directly.
set -e
cd "$(dirname "$0")"  # run.py, `flask --app hub` and celery import from the project root

migrate() {
    # Several hubs may boot at once against one database: a loser of the race (or a
    # database still starting) retries, and finds the schema already at head.
    attempt=1
    until flask --app hub db upgrade; do
        if [ "$attempt" -ge 10 ]; then
            echo "boot.sh: database migration failed after $attempt attempts" >&2
            exit 1
        fi
        attempt=$((attempt + 1))
        echo "boot.sh: migration failed; retrying in 3s (attempt $attempt)" >&2
        sleep 3
    done
}

role="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$role" in
    web)
        migrate
        exec python run.py web
        ;;
    gunicorn)
        migrate
        export HUB_ASYNC_MODE=gevent HUB_PROCESS=web
        # One worker: Socket.IO sessions live in the process; scale with more containers.
        exec gunicorn -k gevent -w 1 -b "0.0.0.0:${HUB_PORT:-5000}" "$@" 'hub:create_app()'
        ;;
    worker | beat)
        exec python run.py "$role" "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
