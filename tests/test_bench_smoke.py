"""The benchmark never rots: `python -m bench --smoke` runs every scenario at tiny sizes.

No speed assertions: only that it finishes, exits 0 and prints its table.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("node") is None, reason="the bench's load client needs Node")
def test_bench_smoke(tmp_path: Path) -> None:
    output = tmp_path / "latest.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "scenario" in done.stdout and "vs node" in done.stdout, done.stdout[-2000:]
    for server in ("hub", "flask", "node"):
        assert f" {server} " in done.stdout
    assert output.read_text().startswith("Command: `python -m bench --smoke")
