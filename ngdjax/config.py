"""Typed configuration: frozen dataclasses filled from YAML plus dotted ``key=value`` overrides.

``load_config(path, FitConfig, ["optim.lr_static=1e-3"])`` reads the YAML mapping, applies the
overrides, and builds the dataclass tree, checking every key and type. Unknown keys, wrong types
and malformed overrides raise :class:`~ngdjax.errors.InputError` naming the dotted key and the
file, all problems at once. Override values are parsed as YAML scalars (``3``, ``1e-3``,
``true``, ``[256, 256]``).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from typing import Any, TypeVar

import yaml

from ngdjax.errors import InputError

T = TypeVar("T")


def load_config(path: str, cls: type[T], overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Build ``cls`` (a dataclass) from the YAML file at ``path`` and dotted overrides."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: config file not found")
    try:
        with open(path) as file:
            raw = yaml.safe_load(file) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(raw, dict):
        raise InputError(f"{path}: must be a mapping of keys to values")
    problems: list[str] = []
    for override in overrides:
        problems += _apply_override(raw, override)
    if problems:
        raise InputError(*problems)
    return from_dict(cls, raw, source=path)


def from_dict(cls: type[T], raw: dict, source: str = "config", prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping; raise InputError listing every bad key."""
    problems: list[str] = []
    value = _build(cls, raw, prefix, source, problems)
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


def _apply_override(raw: dict, override: str) -> list[str]:
    key, sep, text = override.partition("=")
    if not sep or not key:
        return [f"override '{override}': expected key=value (e.g. optim.steps=100)"]
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return [f"override '{override}': '{part}' is not a section"]
        node = child
    node[parts[-1]] = value
    return []


def _build(cls, raw, prefix: str, source: str, problems: list[str]):
    if not isinstance(raw, dict):
        problems.append(f"{source}: '{prefix.rstrip('.') or '<top>'}' must be a mapping")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in raw if key not in fields]
    problems += [f"{source}: unknown key '{prefix}{key}' (known: {', '.join(fields)})" for key in unknown]
    values = {}
    for name, field in fields.items():
        if name not in raw:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                problems.append(f"{source}: missing key '{prefix}{name}'")
            continue
        values[name] = _convert(hints[name], raw[name], f"{prefix}{name}", source, problems)
    if problems:
        return None
    return cls(**values)


def _convert(hint, value, key: str, source: str, problems: list[str]) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".", source, problems)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key, source, problems)
    if origin is typing.Literal:
        if value not in args:
            problems.append(f"{source}: '{key}' is {value!r}, expected one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            problems.append(f"{source}: '{key}' must be a list, got {value!r}")
            return None
        item_types = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_types) != len(value):
            problems.append(f"{source}: '{key}' must have {len(item_types)} items, got {value!r}")
            return None
        return tuple(_convert(t, v, f"{key}[{i}]", source, problems) for i, (t, v) in enumerate(zip(item_types, value)))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        except ValueError:
            pass
    if hint in (int, float, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        problems.append(f"{source}: '{key}' must be {hint.__name__}, got {value!r}")
        return None
    return value
