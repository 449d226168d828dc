"""Typed configuration: dataclasses loaded from YAML plus `key=value` overrides.

Every app keeps one dataclass in `apps/<app>/config.py`. This module turns a YAML
file and command-line overrides into that dataclass, rejecting unknown keys (with
the list of valid ones) and values of the wrong type, and writes the resolved
config back out as YAML for the run folder.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or override that cannot be used as given."""


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown_key_error(key: str, cls: type, source: str) -> ConfigError:
    valid = ", ".join(sorted(f.name for f in dataclasses.fields(cls)))
    return ConfigError(
        f"Unknown config key '{key}' in {source}. Valid keys for {cls.__name__}: {valid}."
    )


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Converts `value` (from YAML or a command-line string) to `annotation`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError("; ".join(errors))
    if origin is typing.Literal:
        for choice in args:
            if value == choice or str(value) == str(choice):
                return choice
        raise ConfigError(f"'{key}' must be one of {list(args)}, got {value!r}.")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.strip("[]()").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{key}' must be a list, got {value!r}.")
        item_type = args[0] if args else str
        items = [_coerce(v.strip() if isinstance(v, str) else v, item_type, key) for v in value]
        return tuple(items) if origin is tuple else items
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"'{key}' must be true or false, got {value!r}.")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"'{key}' must be a number, got {value!r}.")
        try:
            number = float(value) if annotation is float else int(str(value), 0)
        except ValueError:
            raise ConfigError(
                f"'{key}' must be {annotation.__name__}, got {value!r}."
            ) from None
        return number
    if annotation is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"'{key}' must be a string, got {value!r}.")
        return str(value)
    return value


def apply_overrides(config: T, values: dict[str, Any], source: str = "overrides") -> T:
    """Returns a copy of `config` with `values` applied, type-checked field by field."""
    types_by_name = _field_types(type(config))
    changes = {}
    for key, value in values.items():
        if key not in types_by_name:
            raise _unknown_key_error(key, type(config), source)
        changes[key] = _coerce(value, types_by_name[key], key)
    return dataclasses.replace(config, **changes)  # a `Config` validates itself on construction


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """Parses `["key=value", ...]` from the command line."""
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"Override '{pair}' is not of the form key=value.")
        values[key.strip()] = value.strip()
    return values


def load_config(default: T, path: str | Path | None = None, overrides: list[str] = ()) -> T:
    """Default config <- YAML file <- `key=value` overrides, validated at each step."""
    config = default
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Config file '{path}' does not exist.")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"Config file '{path}' is not valid YAML: {err}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"Config file '{path}' must hold a mapping of key: value.")
        config = apply_overrides(config, values, source=str(path))
    return apply_overrides(config, parse_overrides(list(overrides)), source="command line")


def config_to_yaml(config: Any) -> str:
    """Plain YAML for a dataclass; tuples become lists so the file reads back."""

    def plain(value):
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    return yaml.safe_dump(
        {k: plain(v) for k, v in dataclasses.asdict(config).items()}, sort_keys=False
    )


def describe_fields(cls: type) -> str:
    """One line per field, `name = default`, for `--help` output."""
    lines = []
    types_by_name = _field_types(cls)
    for field in dataclasses.fields(cls):
        default = field.default if field.default is not dataclasses.MISSING else "..."
        help_text = field.metadata.get("help", "")
        names = choices(types_by_name[field.name])
        if names:
            help_text = f"{' | '.join(map(str, names))}: {help_text}"
        lines.append(f"  {field.name} = {default!r}  {help_text}".rstrip())
    return "\n".join(lines)


def choices(annotation: Any) -> tuple:
    """The allowed values of a `Literal[...]` field type; () for any other type."""
    return typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()


def option(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse's name
    """A dataclass field with a help line shown by `dlsuite <app> --help`."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("Use a tuple for sequence defaults so configs stay immutable.")
    return dataclasses.field(default=default, metadata={"help": help})


class Config:
    """Base of every config dataclass: checks itself whenever it is made.

    `Literal[...]` fields must hold one of their choices (written once, in the type), and the
    subclass's `validate()` checks the rest. Construction covers every path: defaults, presets,
    YAML, overrides and `dataclasses.replace`.
    """

    def __post_init__(self) -> None:
        for name, annotation in _field_types(type(self)).items():
            allowed = choices(annotation)
            if allowed and getattr(self, name) not in allowed:
                raise ConfigError(f"'{name}' must be one of {list(allowed)}, got {getattr(self, name)!r}.")
        self.validate()

    def validate(self) -> None:
        """Checks beyond the field types; subclasses extend it (calling super().validate())."""


def require(checks) -> None:
    """Raises ConfigError with the message of the first (ok, message) pair that is not ok; every
    config's `validate()` lists its checks this way."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
