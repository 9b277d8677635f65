"""Load a policy directory into a validated `PolicyModel`.

Every `*.yaml` / `*.yml` file directly in the directory is parsed, in file-name order, by
`policy.source` (plain objects, the line of every key path, `${VAR}` expanded), so that each problem
can be reported as `file:line: message`. The files are then merged (map sections entry by entry, the
same entry in two files being an error; list sections concatenated in file-name order), validated
against the pydantic models, and cross-checked (references to providers, principals and groups; one
key assigned to two principals).

Problems are collected and reported together, stage by stage: reading, parsing and merging first,
then model validation, then cross references (each stage only makes sense when the previous passed).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import types
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from sidegate.policy.model import PolicyModel
from sidegate.policy.source import KeyPath, at, dotted, parse_policy_text

__all__ = ["LoadedPolicy", "Location", "PolicyError", "directory_fingerprint", "load_policy_dir"]

Locate = Callable[[KeyPath], "Location"]

POLICY_SUFFIXES = (".yaml", ".yml")
_PYDANTIC_PREFIX = re.compile(r"^(Value error|Assertion failed), ")
_MAX_LISTED = 12  # names listed in a hint; more would bury the message


class PolicyError(Exception):
    """A policy directory that cannot be served. `problems` are `file:line: message` lines."""

    def __init__(self, problems: Sequence[str] | str) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


@dataclass(frozen=True)
class LoadedPolicy:
    model: PolicyModel
    files: tuple[Path, ...]  # the policy files loaded, in name order
    digest: str  # sha256 over file names and contents: equal digests mean a no-op reload
    warnings: tuple[str, ...] = ()  # `file:line: warning: message`: valid, but likely not what was meant


@dataclass(frozen=True, order=True)
class Location:
    file: Path
    line: int = 0  # 1-based; 0 when unknown

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)


class _Problems:
    """Problems found so far; reported sorted by location, duplicates (e.g. via aliases) once."""

    def __init__(self) -> None:
        self._items: set[tuple[Location, str]] = set()

    def add(self, where: Location, message: str) -> None:
        self._items.add((where, message))

    def raise_if_any(self) -> None:
        if self._items:
            raise PolicyError([f"{where}: {message}" for where, message in sorted(self._items)])


# ---------------------------------------------------------------------------------------------- API


def load_policy_dir(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedPolicy:
    """Load, merge, expand and validate every policy file in `path`; raise `PolicyError` if invalid."""
    directory = Path(path)
    env = os.environ if env is None else env
    if not directory.is_dir():
        reason = "is not a directory" if directory.exists() else "does not exist"
        raise PolicyError(f"{directory}: the policy directory {reason}")
    try:
        files = _policy_files(directory)
    except OSError as exc:
        raise PolicyError(f"{directory}: cannot read the policy directory: {exc.strerror or exc}") from exc
    if not files:
        raise PolicyError(f"{directory}: no *.yaml or *.yml policy files in the directory")

    problems = _Problems()
    texts, digest = _read(files, problems)
    documents = [doc for file, text in texts if (doc := _parse(file, text, env, problems)) is not None]
    data, where = _merge(documents, problems)
    problems.raise_if_any()

    locate = _locator(where, directory)
    try:
        model = PolicyModel.model_validate(data)
    except ValidationError as exc:
        for key_path, message in _validation_problems(exc, data):
            problems.add(locate(key_path), message)
        problems.raise_if_any()
        raise  # unreachable: a ValidationError always has errors
    for key_path, message in _reference_problems(model, locate):
        problems.add(locate(key_path), at(key_path, message))
    problems.raise_if_any()
    warnings = tuple(f"{where}: warning: {message}" for where, message in _warnings(model, locate))
    return LoadedPolicy(model=model, files=tuple(files), digest=digest, warnings=warnings)


def directory_fingerprint(path: str | os.PathLike[str]) -> tuple[tuple[str, int, int], ...]:
    """(name, mtime_ns, size) of each policy file, for a polling watcher: cheap, never raises."""
    try:
        files = _policy_files(Path(path))
    except OSError:
        return ()
    fingerprint = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:  # removed while we looked
            continue
        fingerprint.append((file.name, stat.st_mtime_ns, stat.st_size))
    return tuple(fingerprint)


# ----------------------------------------------------------------------------------- files and text


def _policy_files(directory: Path) -> list[Path]:
    """Policy files directly in `directory`, by name; hidden files (editor droppings) are skipped."""
    names = (p for p in directory.iterdir() if p.suffix in POLICY_SUFFIXES and not p.name.startswith("."))
    return sorted((p for p in names if p.is_file()), key=lambda p: p.name)


def _read(files: list[Path], problems: _Problems) -> tuple[list[tuple[Path, str]], str]:
    texts = []
    digest = hashlib.sha256()
    for file in files:
        try:
            raw = file.read_bytes()
        except OSError as exc:
            problems.add(Location(file), f"cannot read: {exc.strerror or exc}")
            continue
        digest.update(os.fsencode(file.name) + b"\0" + str(len(raw)).encode() + b"\0" + raw)
        try:
            texts.append((file, raw.decode("utf-8-sig")))
        except UnicodeDecodeError as exc:
            problems.add(Location(file), f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    return texts, digest.hexdigest()


@dataclass
class _Document:
    file: Path
    data: dict[str, Any]
    lines: dict[KeyPath, int]  # key path -> line of the key (or list item) in this file


def _parse(file: Path, text: str, env: Mapping[str, str], problems: _Problems) -> _Document | None:
    parsed = parse_policy_text(text, env)
    for line, message in parsed.problems:
        problems.add(Location(file, line), message)
    return None if parsed.data is None else _Document(file, parsed.data, parsed.lines)


# ------------------------------------------------------------------------------------------- merge


def _merge(documents: list[_Document], problems: _Problems) -> tuple[dict[str, Any], dict[KeyPath, Location]]:
    """Merge the files' sections; return the merged data and where each of its key paths was written."""
    merger = _Merger(problems)
    for doc in documents:
        merger.add(doc)
    return merger.data, merger.where


class _Merger:
    def __init__(self, problems: _Problems) -> None:
        self.problems = problems
        self.data: dict[str, Any] = {}
        self.where: dict[KeyPath, Location] = {}

    def add(self, doc: _Document) -> None:
        # The file's key paths grouped by their first two elements: a section entry or list item.
        lines_by_entry: dict[KeyPath, dict[KeyPath, int]] = defaultdict(dict)
        for key_path, line in doc.lines.items():
            lines_by_entry[key_path[:2]][key_path] = line

        def adopt(source: KeyPath, target: KeyPath) -> None:
            for key_path, line in lines_by_entry[source].items():
                self.where[target + key_path[len(source) :]] = Location(doc.file, line)

        for section, value in doc.data.items():
            if value is None:  # a section whose entries are all commented out
                continue
            here = Location(doc.file, doc.lines[(section,)])
            first = self.where.setdefault((section,), here)
            if section not in self.data:
                if not isinstance(value, dict | list):
                    self.data[section] = value  # not a section the model accepts: validation says so
                    continue
                self.data[section] = type(value)()
            current = self.data[section]
            if isinstance(current, dict) and isinstance(value, dict):
                for entry, item in value.items():
                    entry_path = (section, entry)
                    if entry in current:
                        also = f"{dotted(entry_path)} is also defined at {self.where[entry_path]}"
                        self.problems.add(Location(doc.file, doc.lines[entry_path]), also)
                        continue
                    current[entry] = item
                    adopt(entry_path, entry_path)
            elif isinstance(current, list) and isinstance(value, list):
                for index, item in enumerate(value):
                    adopt((section, index), (section, len(current)))
                    current.append(item)
            elif _kind(current) == _kind(value):
                self.problems.add(here, f"{section} is also defined at {first}")
            else:
                self.problems.add(here, f"{section} is {_kind(value)} here but {_kind(current)} at {first}")


def _kind(value: Any) -> str:
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else "a value"


# ------------------------------------------------------------------------------ validation problems


def _locator(where: dict[KeyPath, Location], directory: Path) -> Locate:
    """Where a key path was written: its own line or its nearest written ancestor's, else the dir."""

    def locate(key_path: KeyPath) -> Location:
        for end in range(len(key_path), 0, -1):
            if (found := where.get(key_path[:end])) is not None:
                return found
        return Location(directory)

    return locate


def _validation_problems(exc: ValidationError, data: dict[str, Any]) -> Iterator[tuple[KeyPath, str]]:
    for error in exc.errors(include_url=False):
        kind = error["type"]
        key_path = _data_path(error["loc"], data, last_may_be_absent=kind == "missing")
        if kind in ("extra_forbidden", "missing") and key_path:
            parent, key = key_path[:-1], str(key_path[-1])
            if kind == "missing":
                message = f"missing required key {key!r}"
            else:
                message = f"unknown key {key!r}{_hint(key, _allowed_keys(parent), 'expected one of')}"
            yield key_path, at(parent, message)
        else:
            yield key_path, at(key_path, _PYDANTIC_PREFIX.sub("", error["msg"]))


def _data_path(loc: tuple[str | int, ...], data: Any, last_may_be_absent: bool) -> KeyPath:
    """`loc` without the elements pydantic adds that are not in the data (tags of union members)."""
    key_path: list[str | int] = []
    for index, element in enumerate(loc):
        if _has(data, element):
            data = data[element]
        elif not (last_may_be_absent and index == len(loc) - 1):
            continue
        key_path.append(element)
    return tuple(key_path)


def _has(data: Any, element: str | int) -> bool:
    if isinstance(data, dict):
        return element in data
    return isinstance(data, list) and isinstance(element, int) and 0 <= element < len(data)


def _allowed_keys(key_path: KeyPath) -> list[str]:
    """The keys the model accepts in the mapping at `key_path` (for "did you mean")."""
    annotation: Any = PolicyModel
    for element in key_path:
        annotation = _step(annotation, element)
    return [name for member in _members(annotation) if _is_model(member) for name in member.model_fields]


def _step(annotation: Any, element: str | int) -> Any:
    for member in _members(annotation):
        if _is_model(member) and element in member.model_fields:
            return member.model_fields[str(element)].annotation
        if get_origin(member) is dict and isinstance(element, str):
            return get_args(member)[1]
        if get_origin(member) is list and isinstance(element, int):
            return get_args(member)[0]
    return None


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a type: `A | B` -> [A, B], `Annotated[A, ...]` -> [A], `A` -> [A]."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


# -------------------------------------------------------------------------------- cross references


def _reference_problems(model: PolicyModel, locate: Locate) -> Iterator[tuple[KeyPath, str]]:
    """Names that must refer to something defined elsewhere in the policy."""
    yield from _provider_references(model)
    yield from _principal_references(model)
    yield from _keys_held_twice(model, locate)


def _provider_references(model: PolicyModel) -> Iterator[tuple[KeyPath, str]]:
    for name, service in model.models.items():
        for chain, destinations in (("destinations", service.destinations), ("fallbacks", service.fallbacks)):
            for index, destination in enumerate(destinations):
                if destination.provider not in model.providers:
                    message = _unknown("provider", destination.provider, model.providers)
                    yield ("models", name, chain, index, "provider"), message


def _principal_references(model: PolicyModel) -> Iterator[tuple[KeyPath, str]]:
    principals = model.principals
    if model.auth.mode == "none" and (default := str(model.auth.default_principal)) not in principals:
        yield ("auth", "default_principal"), _unknown("principal", default, principals)

    groups = {group for principal in principals.values() for group in principal.groups}
    for index, rule in enumerate(model.rate_limits):
        key_path: KeyPath = ("rate_limits", index, "principal")
        name = str(rule.principal)
        if rule.key in ("user", "service_principal"):
            if name not in principals:
                yield key_path, _unknown("principal", name, principals)
            elif rule.key == "service_principal" and principals[name].type != "service_principal":
                yield key_path, f"principal {name!r} is a {principals[name].type}, not a service_principal"
        elif rule.key == "user_group" and name not in groups:
            yield key_path, f"no principal is in group {name!r}{_hint(name, groups)}"


def _keys_held_twice(model: PolicyModel, locate: Locate) -> Iterator[tuple[KeyPath, str]]:
    first_holder: dict[str, KeyPath] = {}
    for name, principal in model.principals.items():
        for index, key in enumerate(principal.keys):
            key_path: KeyPath = ("principals", name, "keys", index)
            first = first_holder.setdefault(key, key_path)
            if first[1] != name:
                yield key_path, f"this key is also assigned to principal {first[1]!r} at {locate(first)}"


def _warnings(model: PolicyModel, locate: Locate) -> Iterator[tuple[Location, str]]:
    """A policy that loads but cannot serve anyone."""
    if model.auth.mode == "keys" and not any(p.keys for p in model.principals.values()):
        where = locate(("principals",))
        yield (where if where.line else locate(("auth", "mode"))), (
            "auth.mode is keys but no principal has a key: every request will be refused (401); add keys "
            "(`sidegate hash-key`) or use auth: {mode: none, default_principal: NAME}")
    if not model.models:
        yield locate(("models",)), "no model services are defined (models:): every request will be refused"


# ----------------------------------------------------------------------------------------- helpers


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    return f"unknown {kind} {name!r}{_hint(name, known)}"


def _hint(name: str, known: Iterable[str], listing: str = "defined") -> str:
    """' (did you mean 'x'?)' for a near miss, else the names to choose from when they are few."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" ({listing}: {', '.join(names)})" if 0 < len(names) <= _MAX_LISTED else ""
