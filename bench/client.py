"""Driving the Node load client (bench/node/load-client.js) and REST load tool from Python."""

import json
import subprocess
from pathlib import Path
from typing import Any

from bench.servers import NODE_DIR


class ClientError(RuntimeError):
    """The load client failed or printed no summary."""


def _lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def _summary(stdout: str, stderr: str) -> dict[str, Any]:
    for line in reversed(_lines(stdout)):
        if line.get("event") == "summary":
            if "fatal" in line:
                raise ClientError(line["fatal"])
            return line
    raise ClientError(f"load client printed no summary; stderr:\n{stderr[-2000:]}")


def run_client(config: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Run the load client in `publish` or `tasks` mode to the end; return its summary."""
    done = subprocess.run(["node", "load-client.js", json.dumps(config)], cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=timeout, check=False)
    return _summary(done.stdout, done.stderr)


class HeldClients:
    """The load client in `hold` mode: connect, then someone else publishes.

    with HeldClients(config) as held:   # returns once every connection is up (or failed)
        held.ready                      # {"connected", "failed", "connect_ms", ...}
        held.go(count); ...publish...; summary = held.finish()
    """

    def __init__(self, config: dict[str, Any], log: Path, timeout: float = 600,
                 script: str = "load-client.js") -> None:
        self.config = {**config, "mode": "hold"}
        self.log = log
        self.timeout = timeout
        self.script = script  # another client with the same protocol: ready, stdin lines
        self.process: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}

    def __enter__(self) -> "HeldClients":
        self._stderr = open(self.log, "a")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen(
            ["node", self.script, json.dumps(self.config)], cwd=NODE_DIR, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            parsed = _lines(line)
            if parsed and parsed[0].get("event") == "ready":
                self.ready = parsed[0]
                return self
            if parsed and parsed[0].get("event") == "summary":
                raise ClientError(parsed[0].get("fatal", "load client ended before ready"))
        raise ClientError("load client exited before ready; see " + str(self.log))

    def say(self, line: str) -> None:
        """One line on the client's stdin (load-client.js: go N, done)."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def go(self, count: int = 0) -> None:
        self.say(f"go {count}")

    def finish(self) -> dict[str, Any]:
        self.say("done")
        assert self.process is not None
        stdout, _ = self.process.communicate(timeout=self.timeout)
        return _summary(stdout, self.log.read_text(errors="replace"))

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


def run_rest_load(config: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    done = subprocess.run(["node", "rest-load.js", json.dumps(config)], cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=timeout, check=False)
    lines = _lines(done.stdout)
    if not lines or "fatal" in lines[-1]:
        raise ClientError(f"rest-load failed: {done.stdout[-500:]} {done.stderr[-1500:]}")
    return lines[-1]
