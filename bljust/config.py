"""Typed, validated YAML configs.

A config is a tree of dataclasses. Loading checks every key against the dataclass
fields (an unknown key or a wrong type is an error naming the dotted key and the
file) and applies command-line overrides such as ``--phases.joint.lr 1e-3``.
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
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_yaml(path: str | os.PathLike) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data
