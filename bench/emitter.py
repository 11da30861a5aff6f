"""Publish like a Celery worker does: Hub's app in worker mode, events.publish().

    python -m bench.emitter CHANNEL COUNT [RATE]

Run with Hub's environment. Prints {"event": "ready"} once the app is built, waits
for a line "start" on stdin, publishes COUNT publications (as fast as possible, or
RATE per second, each carrying its due time "bt" in ms since the epoch), then
prints {"event": "done", "published", "seconds"}.
"""

import json
import sys
import time


def main() -> None:
    channel, count = sys.argv[1], int(sys.argv[2])
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    from hub import create_app

    app = create_app({"HUB_PROCESS": "worker"})
    with app.app_context():
        from events import publish

        print(json.dumps({"event": "ready"}), flush=True)
        for line in sys.stdin:
            if line.strip() == "start":
                break
        start = time.time()
        for seq in range(count):
            due = start + seq / rate if rate > 0 else time.time()
            if rate > 0 and due > time.time():
                time.sleep(due - time.time())
            publish(channel, "bench.msg", {"bseq": seq, "bt": due * 1000.0})
        print(json.dumps({"event": "done", "published": count,
                          "seconds": time.time() - start}), flush=True)


if __name__ == "__main__":
    main()
