"""The tree stays typed and lint-clean: ruff and mypy run as part of the suite; modules stay small and
the layers import downwards."""

from __future__ import annotations

import ast
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


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports anywhere in it (TYPE_CHECKING blocks and functions too),
    relative imports resolved; `from a import b` counts as importing `a` and `a.b`."""
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_telemetry_does_not_import_the_app_state():
    """The app state builds the telemetry services; they see it only through narrow protocols
    (`metrics.process_values.Gauges`, `record.RecordServices`)."""
    offenders = [str(p.relative_to(REPO)) for p in (SRC / "telemetry").rglob("*.py")
                 if "sidegate.state" in imported_modules(p)]
    assert not offenders, f"telemetry modules importing sidegate.state: {offenders}"


def test_telemetry_and_cli_folders_hold_at_most_12_modules():
    folders = [SRC / "cli", *(p.parent for p in (SRC / "telemetry").rglob("__init__.py"))]
    crowded = {str(f.relative_to(REPO)): n for f in folders if (n := len(list(f.glob("*.py")))) > 12}
    assert not crowded, f"folders over 12 modules: {crowded}"
