"""Hub's benchmark: Hub against a bare Flask-SocketIO floor and a Node socket.io reference.

    python -m bench                      the default sizes (make bench)
    python -m bench --smoke              tiny sizes, one run (make bench-smoke, CI)
    python -m bench --scenarios fanout,latency --runs 5 --clients 2000 --deflate both

Servers run one at a time, interleaved per run (hub flask node hub flask node ...) so
the machine's drift hits all alike; every figure is the median of the runs with its
min-max. The table goes to stdout and, as Markdown, to bench/results/latest.md.
"""

import argparse
import resource
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.report import Results, markdown_table, text_table
from bench.scenarios import SCENARIOS, Context, Sizes
from bench.servers import ROOT, SERVER_KINDS, BenchEnv, Server, ensure_node_deps, make_server

SMOKE_SCENARIOS = ["capacity", "fanout", "latency", "emitter", "tasks", "rest", "flood"]


def ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma list of {', '.join(SCENARIOS)}")
    parser.add_argument("--servers", default="hub,flask-tuned,flask,node",
                        help=f"comma list of {', '.join(SERVER_KINDS)}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, help="clients for fanout/latency/emitter")
    parser.add_argument("--pubs", type=int, help="publications per fan-out")
    parser.add_argument("--rates", type=ints, help="publication rates per second, e.g. 10,50")
    parser.add_argument("--rate-seconds", type=float, help="seconds per rate")
    parser.add_argument("--capacity", type=ints, help="connection counts, e.g. 1000,5000")
    parser.add_argument("--tasks", type=int, help="concurrent tasks in the round trip")
    parser.add_argument("--rest-seconds", type=float, help="seconds per REST load")
    parser.add_argument("--flood-events", type=int, help="events in one flood (Hub only)")
    parser.add_argument("--worker-setups", type=names,
                        help="task round trip worker setups, e.g. gevent,threads (default: "
                             "prefork, threads and gevent)")
    parser.add_argument("--deflate", choices=["off", "on", "both"], default="off",
                        help="servers accept permessage-deflate (on), decline it (off: every "
                             "server's default), or run both variants")
    parser.add_argument("--client-deflate", choices=["on", "off"], default="on",
                        help="the load client offers permessage-deflate like a browser")
    parser.add_argument("--hub-async-mode", choices=["eventlet", "gevent"], default="eventlet",
                        help="async mode for Hub's CLI tasks (migrate, emitter)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "latest.md")
    return parser.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = Sizes()
    if args.smoke:
        sizes = Sizes(clients=20, fanout_pubs=50, rates=[20, 50], rate_seconds=1.0,
                      capacity=[50], tasks=5, rest_seconds=1.0, rest_concurrency=4,
                      flood_events=2000, flood_seconds=1.0)
    for name, attr in [("clients", "clients"), ("pubs", "fanout_pubs"), ("rates", "rates"),
                       ("rate_seconds", "rate_seconds"), ("capacity", "capacity"),
                       ("tasks", "tasks"), ("rest_seconds", "rest_seconds"),
                       ("worker_setups", "worker_setups"), ("flood_events", "flood_events")]:
        value = getattr(args, name)
        if value is not None:
            setattr(sizes, attr, value)
    return sizes


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    runs = 1 if args.smoke else args.runs
    scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    kinds = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS] + \
        [k for k in kinds if k not in SERVER_KINDS] + \
        [w for w in args.worker_setups or [] if w not in ("prefork", "threads", "gevent")]
    if unknown:
        sys.exit(f"unknown scenario, server or worker setup: {', '.join(unknown)}")
    deflates = {"off": [False], "on": [True], "both": [False, True]}[args.deflate]
    raise_fd_limit()
    ensure_node_deps()
    results = Results()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        env = BenchEnv(Path(tmp), async_mode=args.hub_async_mode)
        env.start()
        ctx = Context(env, sizes_from(args), results,
                      client_deflate=args.client_deflate == "on")
        try:
            for run in range(1, runs + 1):
                for deflate in deflates:
                    for kind in kinds:
                        run_server(ctx, make_server(env, kind, deflate), scenarios, run)
        finally:
            env.stop()
            if results.errors:
                log(f"logs were in {env.log_dir} (now removed)")
    command = "python -m bench " + " ".join(shlex.quote(a) for a in argv)
    table = text_table(results)
    print(f"\n{command}  ({time.monotonic() - started:.0f} s)\n")
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(f"Command: `{command.strip()}`\n\n{markdown_table(results)}\n")
    for error in results.errors:
        print(f"ERROR {error}", file=sys.stderr)
    return 1 if results.errors else 0


def run_server(ctx: Context, server: Server, scenarios: list[str], run: int) -> None:
    log(f"run {run}: starting {server.name}")
    try:
        server.start()
    except Exception as exc:  # a server that cannot start is an error in the table's stead
        ctx.results.errors.append(f"run {run} {server.name} start: {exc}")
        log(f"run {run}: {server.name} failed to start: {exc}")
        server.stop()
        return
    try:
        for name in scenarios:
            log(f"run {run}: {server.name} {name}")
            try:
                SCENARIOS[name](ctx, server)
            except Exception as exc:
                ctx.results.errors.append(f"run {run} {server.name} {name}: {exc}")
                log(f"run {run}: {server.name} {name} FAILED: {exc}\n{traceback.format_exc()}")
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
