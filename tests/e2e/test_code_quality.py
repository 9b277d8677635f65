"""The tree stays typed and lint-clean: ruff and mypy run as part of the suite; modules stay small."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "sidegate"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean():
    result = run("ruff", "check", "src", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean():
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_modules_stay_small():
    big = [(p.relative_to(REPO), n) for p in (REPO / "src").rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 400]
    assert not big, f"modules over 400 lines: {big}"
