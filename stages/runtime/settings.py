"""Typed config sections: declaring keys, checking values, rendering them as documented YAML.

A section is a dataclass whose fields are declared with `setting(...)`; every stage owns one.
`stages.config` assembles the sections into the resolved config that the CLI builds.
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import types
import typing
from typing import Any, Union

from stages.runtime.errors import ConfigError


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    affects_output: bool = True,
    folder_name: bool = False,
    auto: bool = False,
) -> Any:
    """Declare one config key.

    `affects_output=False` marks keys (worker counts, for example) that change how a stage runs
    but not what it writes, so changing them does not invalidate a cached artifact.
    `folder_name=True` marks a string that names one folder slic makes (a run, a dataset's
    workspace folder): a name, never a path. `auto=True` lets a number key also take the
    word auto (the stage then decides, as for loader workers).
    """
    meta = {
        "help": help,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "affects_output": affects_output,
        "folder_name": folder_name,
        "auto": auto,
    }
    return dataclasses.field(default=default, metadata=meta)


def loader_workers_setting(help: str) -> Any:
    """The `workers` key of a learning stage: DataLoader processes, a number or auto (the
    default: `stages.training.loading` decides from the device and the rank's cores)."""
    return setting("auto", help, minimum=0, affects_output=False, auto=True)


def _allowed_types(annotation: Any) -> tuple[tuple[type, ...], bool]:
    """Return the concrete types a field accepts and whether it accepts None."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = typing.get_args(annotation)
        concrete = tuple(m for m in members if m is not type(None))
        return concrete, len(concrete) != len(members)
    return (annotation,), False


def _describe(kinds: tuple[type, ...], optional: bool) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    text = " or ".join(names.get(k, k.__name__) for k in kinds)
    return text + (" or null" if optional else "")


# YAML 1.1 (PyYAML) reads 1e-4 as a string: it wants a dot (1.0e-4). Float keys take it too.
_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


_FOLDER_NAME = re.compile(r"^[\w][\w.+-]*$")


def is_folder_name(text: str) -> bool:
    """Whether `text` can only name one folder inside another: word characters (any script),
    '.', '+', '-', not starting with '.' or '-', at most 128 characters."""
    return len(text) <= 128 and bool(_FOLDER_NAME.match(text))


def quoted(value: Any) -> str:
    """repr(value) cut to a few dozen characters, for messages: a value from a file may be
    anything, of any size."""
    short = reprlib.Repr()  # keyword arguments only from Python 3.12
    short.maxstring = short.maxother = 60
    short.maxlist = short.maxdict = short.maxtuple = 4
    short.maxlevel = 2
    return short.repr(value)


def _as_float(key: str, value: Any) -> float | None:
    """`value` as a finite float, or None when it is not a number; NaN and infinity (YAML's
    .nan, .inf) are refused: they pass every range check and poison what they touch."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
        value = float(value)
    if not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        raise ConfigError(f"config key {key} must be a finite number, got {quoted(value)}")
    return float(value)


def coerce_value(key: str, value: Any, annotation: Any, meta: dict[str, Any]) -> Any:
    """Check `value` against a field's type, choices and range; return it in the field's type."""
    if meta.get("auto") and value == "auto":
        return value
    if meta.get("auto") and isinstance(value, str) and re.fullmatch(r"\d+", value, re.ASCII):
        value = int(value)  # a number typed on the command line, where auto is text too
    kinds, optional = _allowed_types(annotation)
    if meta.get("auto"):  # int | str: a number, or the word auto handled above
        kinds = tuple(kind for kind in kinds if kind is not str)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config key {key} must be {_describe(kinds, optional)}, got null")
    result: Any = None
    for kind in kinds:
        if kind is bool:
            if isinstance(value, bool):
                result = value
        elif kind is int:
            if isinstance(value, int) and not isinstance(value, bool):
                result = value
        elif kind is float:
            result = _as_float(key, value)
        elif kind is str:
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                result = str(value)
        if result is not None:
            break
    if result is None:
        auto = " or auto" if meta.get("auto") else ""
        raise ConfigError(
            f"config key {key} must be {_describe(kinds, optional)}{auto}, got {quoted(value)}"
        )
    if meta.get("folder_name") and isinstance(result, str) and not is_folder_name(result):
        raise ConfigError(f"config key {key} must be a folder name (letters, digits, '-', '_', "
                          f"'.'; no '/' or '..'), got {quoted(value)}")
    choices = meta.get("choices")
    if choices is not None and result not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise ConfigError(f"config key {key} must be one of {allowed}; got {quoted(value)}")
    low, high = meta.get("minimum"), meta.get("maximum")
    if low is not None and result < low or high is not None and result > high:
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        if low is None:
            bounds = f"<= {high}"
        raise ConfigError(f"config key {key} must be {bounds}, got {quoted(value)}")
    return result


def build_section(section_name: str, cls: type, raw: dict[str, Any]) -> Any:
    """Make a section dataclass from a mapping, failing on the first unknown or invalid key."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            known = ", ".join(fields)
            shown = quoted(key)[1:-1] if isinstance(key, str) else quoted(key)  # \n as \\n
            raise ConfigError(
                f"unknown config key {section_name}.{shown} (keys of {section_name}: {known})"
            )
    values = {
        name: coerce_value(f"{section_name}.{name}", raw[name], hints[name], dict(f.metadata))
        for name, f in fields.items()
        if name in raw
    }
    return cls(**values)


def output_relevant(section: Any) -> dict[str, Any]:
    """The section's keys that change what a stage writes (used for cache fingerprints)."""
    return {
        f.name: getattr(section, f.name)
        for f in dataclasses.fields(section)
        if f.metadata.get("affects_output", True)
    }


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if value == "" or ":" in value or value[0] in "*&!{[" else value
    return repr(value)


def render_section_yaml(section_name: str, cls: type) -> str:
    """Render a section's defaults as YAML with one comment a key (for example.yaml)."""
    doc = (cls.__doc__ or "").strip().splitlines()[0]
    lines = [f"# {doc}", f"{section_name}:"]
    for f in dataclasses.fields(cls):
        comment = f.metadata["help"]
        if f.metadata.get("choices"):
            comment += " (" + " | ".join(str(c) for c in f.metadata["choices"]) + ")"
        lines.append(f"  {f.name}: {_yaml_scalar(f.default)}  # {comment}")
    return "\n".join(lines) + "\n"
