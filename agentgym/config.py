"""Configs: frozen dataclasses with a help line per field, loaded from YAML with dotted overrides.

Declare fields with :func:`param` so each carries its help text::

    @dataclass(frozen=True)
    class OptimConfig:
        lr: float = param(1e-5, "AdamW learning rate.")

    cfg = load(TrainConfig, "configs/quickstart.yaml", ["trainer.lr=3e-6"])

Unknown keys fail with the nearest valid name; values are checked against the field types.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from agentgym.hints import did_you_mean

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override is wrong; the message says where and how to fix it."""


def param(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with help text; a list default becomes a tuple, a dict is copied."""
    meta = {"help": help}
    if isinstance(default, list):
        default = tuple(default)
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=meta, **kwargs)
    return dataclasses.field(default=default, metadata=meta, **kwargs)


def help_of(cls: type, name: str) -> str:
    """The help line of field ``name`` of config class ``cls``."""
    return next(f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name)


def _unknown(key: str, valid: Iterable[str], where: str) -> ConfigError:
    valid = list(valid)
    hint = did_you_mean(key, valid, cutoff=0.5)
    return ConfigError(f"Unknown config key {where}{key!r}.{hint} Valid keys: {', '.join(valid)}.")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} does not fit {tp}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, where=f"{where}.")
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{where}[]") for v in value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 3e-6 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build config ``cls`` from a (nested) mapping, checking keys and types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown(key, fields, where)
        kwargs[key] = _coerce(value, hints[key], f"{where}{key}")
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict of a config (tuples become lists), ready for YAML."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], cls: type) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict of ``cls``."""
    data = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"Override {item!r} must look like key.sub=value, e.g. trainer.lr=1e-5"
            )
        node, node_cls, parts = data, cls, key.split(".")
        for i, part in enumerate(parts):
            names = [f.name for f in dataclasses.fields(node_cls)] if node_cls else None
            if names is not None and part not in names:
                raise _unknown(part, names, ".".join(parts[:i]) + "." if i else "")
            hint = typing.get_type_hints(node_cls).get(part) if node_cls else None
            if i == len(parts) - 1:
                node[part] = yaml.safe_load(raw) if raw != "" else ""
                break
            node = node.setdefault(part, {})
            node_cls = hint if dataclasses.is_dataclass(hint) else None
    return data


def load(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Load config ``cls`` from a YAML file (or defaults) and apply dotted overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"Config file {str(path)!r} not found. Pass a YAML file, e.g. configs/quickstart.yaml."
            )
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of config sections")
    data = apply_overrides(data, overrides, cls)
    return from_dict(cls, data)


def dump(cfg: Any) -> str:
    """The config as YAML text."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
