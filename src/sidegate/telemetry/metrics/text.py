"""A fast Prometheus text-format (0.0.4) rendering of the per-request metric families.

prometheus_client's `generate_latest` formats every sample line label by label (about 10 µs a
line); a histogram child repeats its label set on every bucket line, so the label part is built
once per child here and the bucket lines reuse it. The output parses to the same samples as
`generate_latest` on the same families (tests/unit/telemetry/test_metrics.py checks this).
"""

from __future__ import annotations

from collections.abc import Iterable

from sidegate.telemetry.metrics.families import CounterFamily, Family, HistogramFamily


def _escape_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ",".join(f'{name}="{_escape_value(value)}"' for name, value in zip(names, values, strict=True))


def _counter(family: CounterFamily, out: list[str]) -> None:
    name = family.name
    out.append(f"# HELP {name} {_escape_help(family.documentation)}\n# TYPE {name} counter\n")
    names = family.labels
    for values, child in list(family.children.items()):
        value = child[0]
        if value:
            out.append(f"{name}{{{_labels(names, values)}}} {value!r}\n" if names else f"{name} {value!r}\n")


def _histogram(family: HistogramFamily, out: list[str]) -> None:
    name = family.name
    out.append(f"# HELP {name} {_escape_help(family.documentation)}\n# TYPE {name} histogram\n")
    names, les = family.labels, family.les
    for values, child in list(family.children.items()):
        data = child.copy()
        count = sum(data[:-1])
        if not count:
            continue
        labels = _labels(names, values)
        bucket = f"{name}_bucket{{{labels}," if labels else f"{name}_bucket{{"
        total = 0.0
        for le, n in zip(les, data, strict=False):  # data ends with the sum, which les skips
            total += n
            out.append(f'{bucket}le="{le}"}} {total!r}\n')
        suffix = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_count{suffix} {total!r}\n{name}_sum{suffix} {data[-1]!r}\n")


def render_text(families: Iterable[Family]) -> bytes:
    out: list[str] = []
    for family in families:
        if isinstance(family, HistogramFamily):
            _histogram(family, out)
        elif isinstance(family, CounterFamily):
            _counter(family, out)
    return "".join(out).encode("utf-8")
