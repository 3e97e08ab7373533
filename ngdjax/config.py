"""Typed configuration: frozen dataclasses filled from YAML plus dotted ``key=value`` overrides.

``load_config(path, FitConfig, ["optim.static.lr=[1e-3, 1e-4]"])`` reads the YAML mapping, applies the
overrides, and builds the dataclass tree, checking every key, type and range. Unknown keys, wrong
types, malformed overrides and out-of-range values raise :class:`~ngdjax.errors.InputError`, all
problems at once, one line each naming the dotted key and where its value came from: the YAML
file, or the override (``override 'optim.epochs=-3'``). Override values are parsed as YAML
scalars (``3``, ``1e-3``, ``true``, ``[256, 256]``).

Ranges: a config dataclass may define ``problems(self) -> list[tuple[str, str]]``, returning
(field, what is wrong) pairs; they are checked once the types are right. Renamed keys: a class
attribute ``RENAMED = {old: new}`` turns an old key's "unknown key" into a pointer to the new one.

Files extending files: a config file whose top-level key ``extends`` names another config file
(relative to it) is that file with its own keys set over it, key by key (``configs/demo.yaml``
extends ``configs/default_cpu.yaml``). Errors name the file each key came from.

Paths: a field declared with :func:`path_field` is a file or directory. A relative path written in
a config file is taken from that file's directory; one given as an override, from the current
directory (as any command-line path). Both are stored absolute, so a config means the same from
any working directory.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from typing import Any, Callable, NamedTuple, TypeVar

import yaml

from ngdjax.errors import InputError

T = TypeVar("T")
EXTENDS = "extends"  # a config file's key naming the file whose keys it sets over


def path_field(default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field holding a path (resolved as the module docstring says); required unless
    a ``default`` is given."""
    return dataclasses.field(default=default, metadata={"path": True})


class Layer(NamedTuple):
    """Values set over a config file by another file (e.g. a suite's case): a nested mapping, the
    name errors give as its source, and the directory its relative paths start at."""

    values: dict
    source: str
    directory: str


def load_config(path: str, cls: type[T], overrides: list[str] | tuple[str, ...] = (), layers: tuple[Layer, ...] = (),
                ) -> T:
    """Build ``cls`` (a dataclass) from the YAML file at ``path`` (over the files it ``extends``),
    then each of ``layers`` set over it (key by key, in order), then the dotted command-line
    ``overrides``."""
    raw: dict = {}
    problems: list[str] = []
    origins: dict[str, tuple[str, str]] = {}  # dotted key -> (source, base directory)
    for layer in (*file_layers(path), *layers):
        for key, value in flatten(layer.values).items():
            problems += _set_key(raw, key, value, f"{layer.source}: '{key}'")
            origins[key] = (layer.source, layer.directory)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            problems.append(f"override '{override}': expected key=value (e.g. optim.epochs=100)")
            continue
        problems += _set_key(raw, key, _yaml_scalar(text), f"override '{override}'")
        origins[key] = (f"override '{override}'", os.getcwd())
    if problems:
        raise InputError(*problems)

    def origin(key: str) -> tuple[str, str]:
        """(where the value of ``key`` came from, the directory its relative paths start at)."""
        for prefix in _prefixes(key.split("[")[0]):
            if prefix in origins:
                return origins[prefix]
        return path, os.path.dirname(os.path.abspath(path))

    return from_dict(cls, raw, origin=origin)


def file_layers(path: str, extended_by: tuple[str, ...] = ()) -> list[Layer]:
    """A config file as layers: those of the file named by its ``extends`` key (relative to it;
    recursively), then its own keys."""
    raw = read_yaml_mapping(path, "config file not found" + (f" (extended by {extended_by[-1]})" if extended_by else ""))
    directory = os.path.dirname(os.path.abspath(path))
    parent = raw.pop(EXTENDS, None)
    if parent is None:
        return [Layer(raw, path, directory)]
    if not isinstance(parent, str):
        raise InputError(f"{path}: '{EXTENDS}' must be the path of a config file, got {parent!r}")
    parent_path = os.path.normpath(os.path.join(directory, parent))
    if os.path.abspath(parent_path) in extended_by + (os.path.abspath(path),):
        raise InputError(f"{path}: '{EXTENDS}: {parent}' makes a cycle")
    return [*file_layers(parent_path, (*extended_by, os.path.abspath(path))), Layer(raw, path, directory)]


def read_yaml_mapping(path: str, missing: str = "config file not found") -> dict:
    """The YAML mapping in the file at ``path``; InputError, one line naming the file, when it is
    missing (``"{path}: {missing}"``), not YAML, or not a mapping."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: {missing}")
    try:
        with open(path) as file:
            raw = yaml.safe_load(file) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({yaml_error_summary(error)})") from error
    if not isinstance(raw, dict):
        raise InputError(f"{path}: must be a mapping of keys to values")
    return raw


def yaml_error_summary(error: yaml.YAMLError) -> str:
    """A YAML parse error on one line: what went wrong and where."""
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(error, 'problem', None) or type(error).__name__}{where}"


def from_dict(cls: type[T], raw: dict, source: str = "config", origin: Callable[[str], tuple[str, str]] | None = None,
              ) -> T:
    """Build dataclass ``cls`` from a nested mapping; raise InputError listing every bad key.
    ``origin(key) -> (source name, base directory)``; by default every key comes from ``source``
    and relative paths from the current directory."""
    origin = origin or (lambda key: (source, os.getcwd()))
    problems: list[str] = []
    value = _build(cls, raw, "", origin, problems)
    if problems:
        raise InputError(*problems)
    return value


def to_dict(config) -> dict:
    """The dataclass tree as plain YAML-able data (tuples become lists)."""
    def plain(value):
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(dataclasses.asdict(config))


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"optim.epochs": 60, ...}`` from a nested mapping (lists and empty mappings are leaves)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _prefixes(key: str) -> list[str]:
    """``a.b.c`` -> ``["a.b.c", "a.b", "a"]`` (an override of a section covers its keys)."""
    parts = key.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]


def _yaml_scalar(text: str) -> Any:
    """An override's value as YAML reads it (``3``, ``1e-3``, ``true``, ``[256, 256]``), else the text."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _set_key(raw: dict, key: str, value: Any, source: str) -> list[str]:
    """Set dotted ``key`` in the nested mapping ``raw``; a problem line when a parent is not a section."""
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return [f"{source}: '{part}' is not a section"]
        node = child
    if value == {} and isinstance(node.get(parts[-1]), dict):
        return []  # an empty section adds nothing to the one already there
    node[parts[-1]] = value
    return []


def _build(cls, raw, prefix: str, origin, problems: list[str]):
    where = lambda key: origin(key)[0]  # noqa: E731
    if not isinstance(raw, dict):
        key = prefix.rstrip(".")
        problems.append(f"{where(key)}: '{key or '<top>'}' must be a mapping")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    renamed = getattr(cls, "RENAMED", {})
    problems += [f"{where(prefix + key)}: unknown key '{prefix}{key}' " + (
        f"(renamed to '{prefix}{renamed[key]}')" if key in renamed else f"(known: {', '.join(fields)})")
        for key in raw if key not in fields]
    values = {}
    count = len(problems)
    for name, field in fields.items():
        key = prefix + name
        if name not in raw:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                problems.append(f"{where(key)}: missing key '{key}'")
            continue
        value = _convert(hints[name], raw[name], key, origin, problems)
        if field.metadata.get("path") and isinstance(value, str):
            value = os.path.normpath(os.path.join(origin(key)[1], os.path.expanduser(value)))
        values[name] = value
    if len(problems) > count:
        return None
    try:
        config = cls(**values)
    except ValueError as error:  # a class that checks itself on construction
        problems.append(f"{where(prefix.rstrip('.'))}: '{prefix.rstrip('.') or cls.__name__}': {error}")
        return None
    if hasattr(config, "problems"):
        problems += [f"{where(prefix + name)}: '{prefix}{name}' {message}" for name, message in config.problems()]
    return config


def _convert(hint, value, key: str, origin, problems: list[str]) -> Any:
    where = origin(key)[0]
    origin_type, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".", origin, problems)
    if origin_type in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key, origin, problems)
    if origin_type is typing.Literal:
        if value not in args:
            problems.append(f"{where}: '{key}' is {value!r}, expected one of {list(args)}")
        return value
    if origin_type is tuple:
        if not isinstance(value, (list, tuple)):
            problems.append(f"{where}: '{key}' must be a list, got {value!r}")
            return None
        item_types = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_types) != len(value):
            problems.append(f"{where}: '{key}' must have {len(item_types)} items, got {value!r}")
            return None
        return tuple(_convert(t, v, f"{key}[{i}]", origin, problems) for i, (t, v) in enumerate(zip(item_types, value)))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        except ValueError:
            pass
    if hint in (int, float, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        problems.append(f"{where}: '{key}' must be {hint.__name__}, got {value!r}")
        return None
    if hint is float and not (value == value and abs(value) != float("inf")):
        problems.append(f"{where}: '{key}' must be a finite number, got {value!r}")
        return None
    return value
