"""The servers under test: start, wait for readiness, measure RSS from /proc, stop.

Every server runs on 127.0.0.1 on a free port against the bench's private Redis.
"""

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hub import launcher
from hub.embedded import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bench" / "node"
PYTHON = sys.executable
JWT_SECRET = "hub-bench-secret-not-for-production-0123456789"  # noqa: S105 - bench only
CHANNEL = "public:bench"


def ensure_node_deps() -> None:
    """The bench's npm packages (ws, socket.io, the Redis adapter), installed once."""
    if (NODE_DIR / "node_modules" / "socket.io").is_dir() and \
            (NODE_DIR / "node_modules" / "ws").is_dir():
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=NODE_DIR, check=True)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far, from /proc/<pid>/stat: steadier than
    wall-clock rates on a machine the load client shares."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of one process, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """hub.launcher's readiness poll, raising with the server's log when it fails."""
    if not launcher.wait_ready(url, [process], timeout):
        state = f"exited with {process.returncode}" if process.poll() is not None \
            else f"not ready after {timeout:.0f}s"
        raise RuntimeError(f"{url}: server {state}:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """Stop a child we started, with its process group (hub.launcher's stop)."""
    if process is not None:
        launcher.stop({"server": process}, grace=timeout)


@dataclass
class BenchEnv:
    """The shared ground: a temp dir, a private Redis, Hub's database and service key."""

    workdir: Path
    async_mode: str = "eventlet"
    redis: EmbeddedRedis | None = None
    redis_url: str = ""
    service_key: str = ""
    log_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.redis = EmbeddedRedis(self.workdir / "redis", persist=False)
        self.redis_url = self.redis.start()
        env = self.hub_env()
        flask = [PYTHON, "-m", "flask", "--app", "hub"]
        subprocess.run(flask + ["db", "upgrade"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        scopes = "tasks,notify,publish,tokens,admin"
        created = subprocess.run(flask + ["services", "create", "bench", "--scopes", scopes],
                                 cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        self.service_key = created.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()

    def hub_env(self, async_mode: str | None = None, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "HUB_ENV": "development", "HUB_INSTANCE_DIR": str(self.workdir / "instance"),
            "REDIS_URL": self.redis_url, "HUB_JWT_SECRET": JWT_SECRET,
            "HUB_REDIS_PREFIX": "bench", "HUB_REST_RATE": "0", "HUB_SOCKET_RATE": "1000",
            "HUB_MAX_CONNECTIONS_PER_USER": "100000",
            "HUB_ASYNC_MODE": async_mode or self.async_mode, "HUB_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        })
        env.update(extra)
        return env

    def user_token(self, user: str, ttl: int = 7200) -> str:
        import jwt

        claims = {"sub": user, "aud": "hub", "exp": int(time.time()) + ttl}
        return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


class Server:
    """One server under test. `name` is the table's label; `kind` says which API it speaks."""

    kind = ""

    def __init__(self, env: BenchEnv, name: str, deflate: bool = False) -> None:
        self.env = env
        self.name = name
        self.deflate = deflate
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = env.log_dir / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def publish_url(self) -> str:
        return self.url + "/publish"

    def publish_headers(self) -> dict[str, str]:
        return {}

    def token(self, user: str = "bench") -> str | None:
        return None

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        raise NotImplementedError

    def start(self) -> None:
        self.port = free_port()
        argv, env, cwd = self.command()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        wait_ready(self.url + "/readyz", self.process, self.log)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def rss(self) -> int:
        assert self.process is not None
        return rss_bytes(self.process.pid)

    def cpu(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)


class HubServer(Server):
    kind = "hub"

    def __init__(self, env: BenchEnv, name: str, deflate: bool = False,
                 async_mode: str = "eventlet", root: Path = ROOT, processes: int = 1) -> None:
        super().__init__(env, name, deflate)
        self.async_mode = async_mode
        self.root = root  # another checkout for `hub-ref` (A/B against older code)
        self.processes = processes  # web processes sharing the port (SO_REUSEPORT)
        self.others: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        super().start()
        argv, env, cwd = self.command()
        for _ in range(self.processes - 1):
            with open(self.log, "ab") as log:
                self.others.append(subprocess.Popen(
                    argv, cwd=cwd, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                    start_new_session=True))
        for _ in range(20 * (self.processes - 1)):  # new connections reach every process
            wait_ready(self.url + "/readyz", self.others[-1], self.log)

    def stop(self) -> None:
        for process in self.others:
            stop_process(process)
        self.others = []
        super().stop()

    def rss(self) -> int:
        return super().rss() + sum(rss_bytes(process.pid) for process in self.others)

    def cpu(self) -> float:
        return super().cpu() + sum(cpu_seconds(process.pid) for process in self.others)

    @property
    def publish_url(self) -> str:
        return self.url + "/api/v1/publish"

    def publish_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.env.service_key}"}

    def token(self, user: str = "bench") -> str | None:
        return self.env.user_token(user)

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        env = self.env.hub_env(self.async_mode, HUB_PORT=str(self.port),
                               HUB_WS_COMPRESSION="1" if self.deflate else "0",
                               PYTHONPATH=str(self.root))
        return [PYTHON, "run.py", "web"], env, self.root


class FlaskServer(Server):
    kind = "flask"

    def __init__(self, env: BenchEnv, name: str, deflate: bool = False,
                 async_mode: str = "eventlet", nodelay: bool = False,
                 hub_transport: bool = False) -> None:
        super().__init__(env, name, deflate)
        self.async_mode = async_mode
        self.nodelay = nodelay
        self.hub_transport = hub_transport

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        argv = [PYTHON, str(ROOT / "bench" / "baseline_flask.py"), "--port", str(self.port),
                "--redis", self.env.redis_url, "--async-mode", self.async_mode]
        if self.nodelay:
            argv.append("--nodelay")
        if self.hub_transport:
            argv.append("--hub-transport")
        if self.deflate:
            argv.append("--deflate")
        return argv, {**os.environ, "PYTHONPATH": str(ROOT)}, ROOT


class NodeServer(Server):
    kind = "node"

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        argv = ["node", "ref-server.js", "--port", str(self.port), "--redis", self.env.redis_url]
        if self.deflate:
            argv.append("--deflate")
        return argv, dict(os.environ), NODE_DIR


class HubWorker:
    """A Celery worker for Hub's task scenarios: run.py's defaults (prefork, 2 processes)
    unless a pool and concurrency are given."""

    def __init__(self, env: BenchEnv, concurrency: int | None = None,
                 root: Path = ROOT, pool: str | None = None) -> None:
        self.env = env
        self.root = root
        self.concurrency = concurrency  # None: run.py's default (or HUB_WORKER_CONCURRENCY)
        self.pool = pool  # None: run.py's default (or HUB_WORKER_POOL)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = env.log_dir / "worker.log"

    def start(self) -> None:
        extra = {} if self.concurrency is None else \
            {"HUB_WORKER_CONCURRENCY": str(self.concurrency)}
        if self.pool is not None:
            extra["HUB_WORKER_POOL"] = self.pool
        env = self.env.hub_env(PYTHONPATH=str(self.root), **extra)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([PYTHON, "run.py", "worker"], cwd=self.root, env=env,
                                            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    def stop(self) -> None:
        stop_process(self.process, timeout=20)
        self.process = None


def ref_root() -> Path:
    """`hub-ref`: Hub from another checkout, e.g. the last commit for an A/B in one run:
    git archive HEAD | tar -x -C /tmp/hub-ref; HUB_BENCH_REF=/tmp/hub-ref python -m bench
    --servers hub,hub-ref,flask (same venv, same Redis and database)."""
    root = os.environ.get("HUB_BENCH_REF")
    if not root or not (Path(root) / "run.py").is_file():
        raise RuntimeError("hub-ref needs HUB_BENCH_REF=<a checkout of Hub>")
    return Path(root)


SERVER_KINDS = {
    "hub": lambda env, deflate: HubServer(env, "hub", deflate, "eventlet"),
    "hub-ref": lambda env, deflate: HubServer(env, "hub-ref", deflate, "eventlet", ref_root()),
    "hub-gevent": lambda env, deflate: HubServer(env, "hub-gevent", deflate, "gevent"),
    # Two web processes on one port: both cores (websocket-only clients, as hub.js is).
    "hub-2p": lambda env, deflate: HubServer(env, "hub-2p", deflate, "eventlet", processes=2),
    "flask": lambda env, deflate: FlaskServer(env, "flask", deflate, "eventlet"),
    # The floor on Hub's transport: Hub against it is Hub's own work alone.
    "flask-tuned": lambda env, deflate: FlaskServer(env, "flask-tuned", deflate, "eventlet",
                                                    hub_transport=True),
    "flask-gevent": lambda env, deflate: FlaskServer(env, "flask-gevent", deflate, "gevent"),
    # An experiment: the floor with TCP_NODELAY on its sockets (eventlet only).
    "flask-nodelay": lambda env, deflate: FlaskServer(env, "flask-nodelay", deflate, "eventlet",
                                                      nodelay=True),
    "node": lambda env, deflate: NodeServer(env, "node", deflate),
}


def make_server(env: BenchEnv, kind: str, deflate: bool) -> Server:
    server = SERVER_KINDS[kind](env, deflate)
    if deflate:
        server.name += "+deflate"
        server.log = env.log_dir / f"{server.name}.log"
    return server
