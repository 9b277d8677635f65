"""One policy file's YAML as plain Python objects, with the line of every key and list item.

The text is composed into nodes with PyYAML's safe loader (as `yaml.compose` does) and the nodes are
turned into dicts, lists and scalars by hand, so that every key path (`("models", "gpt-5",
"destinations", 0, "provider")`) can be mapped back to its line. On the way: duplicate keys are
refused, YAML merge keys (`<<: *anchor`) are applied, and `${VAR}` / `${VAR:-default}` are expanded
from the environment in every string value (`$${` is a literal `${`; keys are never expanded).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

KeyPath = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
# `$${` (escape), `${NAME}`, `${NAME:-default}`, or a bare `${` that is neither (malformed).
_VAR_REF = re.compile(r"\$\$\{|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\})?")


@dataclass
class ParsedText:
    data: dict[str, Any] | None = None  # None when the text cannot be used (see problems)
    lines: dict[KeyPath, int] = field(default_factory=dict)  # key path -> line of its key / list item
    problems: list[tuple[int, str]] = field(default_factory=list)  # (1-based line or 0, message)


def parse_policy_text(text: str, env: Mapping[str, str]) -> ParsedText:
    """Parse one policy file. Empty text (or only comments) is an empty mapping."""
    loader = yaml.SafeLoader(text)
    parsed = ParsedText()
    try:
        root = loader.get_single_node()
        if root is None:
            parsed.data = {}
        elif not isinstance(root, MappingNode):
            parsed.problems.append((_line(root), "the top level must be a mapping of sections (server:, …)"))
        else:
            parsed.data = _Builder(loader, env, parsed).build(root, ())
    except yaml.MarkedYAMLError as exc:
        parsed.problems.append(_yaml_problem(exc))
    except yaml.YAMLError as exc:
        parsed.problems.append((0, f"invalid YAML: {exc}"))
    finally:
        loader.dispose()
    return parsed


def expand_env(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """`text` with `${VAR}`, `${VAR:-default}` and `$${` substituted, and the problems found."""
    problems: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        if match.group() == "$${":
            return "${"
        if name is None:
            problems.append("malformed ${...}: expected ${NAME} or ${NAME:-default} ($${ is a literal ${)")
            return match.group()
        if default is not None:
            if "${" in default:
                problems.append(f"the default of ${{{name}:-...}} cannot contain another ${{...}}")
            return env.get(name) or default
        if name not in env:
            problems.append(f"environment variable {name} is not set (${{{name}:-default}} gives a default)")
            return ""
        return env[name]

    return _VAR_REF.sub(substitute, text), problems


def dotted(key_path: KeyPath) -> str:
    return ".".join(str(element) for element in key_path)


def at(key_path: KeyPath, message: str) -> str:
    """`message` prefixed with the dotted key path it is about (if any)."""
    return f"{dotted(key_path)}: {message}" if key_path else message


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _yaml_problem(exc: yaml.MarkedYAMLError) -> tuple[int, str]:
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.context and exc.problem:
        context_line = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
        message += f" ({exc.context}{context_line})"
    return (mark.line + 1 if mark else 0), message


class _Builder:
    """Turns the nodes into plain objects, recording lines and problems in a `ParsedText`."""

    def __init__(self, loader: yaml.SafeLoader, env: Mapping[str, str], parsed: ParsedText) -> None:
        self.loader, self.env = loader, env
        self.lines, self.problems = parsed.lines, parsed.problems
        self._open: set[int] = set()  # nodes being built: an alias to one of them is recursive

    def _problem(self, node: Node, path: KeyPath, message: str) -> None:
        self.problems.append((_line(node), at(path, message)))

    @contextmanager
    def _entering(self, node: Node, path: KeyPath) -> Iterator[bool]:
        if id(node) in self._open:
            self._problem(node, path, "recursive alias")
            yield False
            return
        self._open.add(id(node))
        try:
            yield True
        finally:
            self._open.discard(id(node))

    def build(self, node: Node, path: KeyPath) -> Any:
        with self._entering(node, path) as ok:
            if not ok:
                return None
            if isinstance(node, ScalarNode):
                return self._scalar(node, path)
            if node.tag not in _COLLECTION_TAGS:
                self._problem(node, path, f"unsupported tag {node.tag}")
            if isinstance(node, MappingNode):
                entries = self._entries(node, path)
                return {key: self._child(k, v, (*path, key)) for key, (k, v) in entries.items()}
            return [self._child(item, item, (*path, index)) for index, item in enumerate(node.value)]

    def _child(self, anchor: Node, value: Node, path: KeyPath) -> Any:
        """Build `value` at `path`, which is reported at the line of `anchor` (its key or itself)."""
        self.lines[path] = _line(anchor)
        return self.build(value, path)

    def _entries(self, node: MappingNode, path: KeyPath) -> dict[str, tuple[Node, Node]]:
        """The key and value nodes of a mapping, merge keys (<<) applied: explicit keys win."""
        merged: dict[str, tuple[Node, Node]] = {}
        explicit: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in reversed(sources):  # the first source listed wins
                    if not isinstance(source, MappingNode):
                        self._problem(source, path, "<< merges a mapping or a list of mappings")
                        continue
                    with self._entering(source, path) as ok:
                        merged.update(self._entries(source, path) if ok else {})
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in explicit:
                first = _line(explicit[key][0])
                self._problem(key_node, path, f"duplicate key {key!r} (first at line {first})")
                continue
            explicit[key] = (key_node, value_node)
        return merged | explicit

    def _key(self, node: Node, path: KeyPath) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == _STR_TAG:
            return str(node.value)
        shown = repr(node.value) if isinstance(node, ScalarNode) else "that is a collection"
        self._problem(node, path, f"key {shown} is not a string (quote it)")
        return None

    def _scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        try:
            value = self.loader.construct_object(node)
        except yaml.MarkedYAMLError as exc:
            self.problems.append(_yaml_problem(exc))
            return None
        if not isinstance(value, str):
            return value
        expanded, errors = expand_env(value, self.env)
        for error in errors:
            self._problem(node, path, error)
        return expanded
