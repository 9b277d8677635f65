"""Helpers for the metrics tests: read an exposition into samples, and find Prometheus' binaries
(a failure under CI=true when missing, a skip elsewhere)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str | bytes) -> Samples:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample with exactly these labels, or None."""
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples whose labels include these."""
    want = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and want <= got)


def label_sets(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(got) for (n, got) in samples if n == name]


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package `prometheus`: apt-get install -y prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def promtool_check(exposition: bytes) -> tuple[int, str]:
    """`promtool check metrics` on an exposition: its exit code and what it said (nothing when clean)."""
    result = subprocess.run([binary("promtool"), "check", "metrics"], input=exposition, capture_output=True,
                            timeout=60)
    return result.returncode, (result.stdout + result.stderr).decode(errors="replace")
