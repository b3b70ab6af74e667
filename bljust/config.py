"""Typed, validated YAML configs.

A config is a tree of dataclasses. Loading checks every key against the dataclass
fields (an unknown key or a wrong type is an error naming the dotted key and the
file) and applies command-line overrides such as ``--phases.joint.lr 1e-3``. YAML is
read strictly: a key given twice in one mapping is an error (plain YAML keeps the last).
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from typing import Any, Union

import yaml


class ConfigError(ValueError):
    pass


class DuplicateKeyError(yaml.YAMLError):
    """A mapping that names one key twice; ``key`` is dotted from the document's root."""

    def __init__(self, key: str, first_line: int, second_line: int):
        super().__init__(f"duplicate key '{key}' (lines {first_line} and {second_line})")
        self.key, self.first_line, self.second_line = key, first_line, second_line


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping, at any depth.

    Anchors, aliases and merge keys work as in SafeLoader: the keys a ``<<: *base`` merges in
    may be overridden by the mapping's own keys, as YAML specifies; only the keys written in
    one mapping must differ. The check runs over the composed node graph before anything is
    constructed, because SafeLoader's ``flatten_mapping`` rewrites a merged-in mapping's node
    in place (its merged keys and its own keys side by side), after which merged and explicit
    keys can no longer be told apart.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        self._check_unique(node, "", set())
        return super().construct_document(node)

    def _check_unique(self, node: yaml.Node, path: str, seen: set[int]) -> None:
        if id(node) in seen:  # an alias: checked where its anchor is
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._check_unique(item, f"{path}[{i}]", seen)
        elif isinstance(node, yaml.MappingNode):
            lines: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # <<: merged keys may be overridden
                    self._check_unique(value_node, path, seen)
                    continue
                key = self._key(key_node)
                dotted = f"{path}.{key}" if path else str(key)
                line = key_node.start_mark.line + 1
                if key is not None and key in lines:
                    raise DuplicateKeyError(dotted, lines[key], line)
                if key is not None:
                    lines[key] = line
                self._check_unique(value_node, dotted, seen)

    def _key(self, key_node: yaml.Node) -> Any:
        """The key as SafeLoader builds it (``1`` and ``"1"`` differ), or None for a complex key."""
        if not isinstance(key_node, yaml.ScalarNode):
            return None
        try:
            key = self.yaml_constructors[key_node.tag](self, key_node)
            hash(key)
        except Exception:  # an unknown tag or an unhashable key: SafeLoader's own error comes later
            return None
        return key


def yaml_load(stream: Any) -> Any:
    """``yaml.safe_load`` that raises ``DuplicateKeyError`` for a key given twice in one mapping."""
    return yaml.load(stream, Loader=StrictLoader)


def _at(where: str | None, message: str) -> str:
    """``message`` located in ``where`` (None: the caller adds the location)."""
    return message if where is None else f"{where}: {message}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str, where: str | None) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(_at(where, f"'{key}' must be a mapping, got {value!r}"))
        return from_dict(tp, value, where, prefix=f"{key}.")
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(_at(where, f"'{key}' must be a mapping, got {value!r}"))
        _, value_tp = typing.get_args(tp) or (str, Any)
        return {k: _convert(v, value_tp, f"{key}.{k}", where) for k, v in value.items()}
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise ConfigError(_at(where, f"'{key}' must be a list, got {value!r}"))
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_convert(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML reads "1e-3" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise ConfigError(_at(where, f"'{key}' must be {_type_name(tp)}, got {value!r}"))
    return value


def from_dict(cls: type, data: dict, where: str | None = "config", prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError, located
    in ``where`` (a file name; None: the caller's own checks add it)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(_at(where, f"unknown key '{prefix}{key}' (known keys: {', '.join(sorted(fields))})"))
    kwargs = {k: _convert(v, hints[k], prefix + k, where) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as e:  # a dataclass's own checks (__post_init__)
        msg = str(e)
        raise ConfigError(_at(where, msg if msg.startswith(prefix) else prefix + msg)) from None


def to_dict(obj: Any) -> Any:
    return dataclasses.asdict(obj)


def parse_overrides(args: list[str]) -> dict:
    """``["--optim.grad_clip", "1", "--max_epochs=3"]`` -> ``{"optim": {"grad_clip": 1}, "max_epochs": 3}``."""
    out: dict = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"override '{arg}' must look like --key value or --key=value")
        if "=" in arg:
            key, raw = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"override '{arg}' has no value")
            key, raw = arg[2:], args[i + 1]
            i += 2
        node = out
        parts = key.replace("-", "_").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        try:
            node[parts[-1]] = yaml_load(raw)
        except DuplicateKeyError as e:
            raise ConfigError(f"override '--{key}': {e}") from None
    return out


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_yaml(path: str | os.PathLike) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except DuplicateKeyError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:  # its str() spans lines: keep where and what
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or 'cannot be parsed'})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data
