"""Config layers: defaults, a YAML file, explicit command options and `--set section.key=value`,
lowest precedence first, resolved into typed sections. Which sections exist is the caller's
(`stages.config` lists the pipeline's); every key is checked at start-up and a wrong one fails
with one line naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.runtime.errors import ConfigError
from stages.runtime.settings import build_section

# A config file is a few kilobytes of sections and keys (example.yaml, every key with a
# comment: 15 KB). Past these, it is not one: YAML's aliases can make a 1 KB file stand for
# billions of values ("billion laughs"), and PyYAML parses a crafted deep nesting at about
# 30 us a token, so the bound on bytes also bounds the time it takes.
MAX_CONFIG_BYTES = 1 << 18
MAX_CONFIG_VALUES = 10_000


def expanded_size(value: Any, sizes: dict[int, int] | None = None) -> int:
    """How many values `value` holds once every alias is expanded (itself included), counted
    without expanding anything: a node shared by aliases is counted once a reference."""
    sizes = {} if sizes is None else sizes
    if not isinstance(value, (dict, list)):
        return 1
    if id(value) not in sizes:
        sizes[id(value)] = 0  # a node that holds itself: cut the cycle
        items = value.values() if isinstance(value, dict) else value
        sizes[id(value)] = 1 + sum(expanded_size(item, sizes) for item in items)
    return sizes[id(value)]


def _too_large(value: Any) -> bool:
    try:
        return expanded_size(value) > MAX_CONFIG_VALUES
    except RecursionError:
        return True


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # read only when there is YAML to read: every command loads a config

    try:
        if Path(path).stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is over {MAX_CONFIG_BYTES >> 10} KiB: not a "
                              "slic config (see example.yaml)")
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        loaded = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply") from None
    except ValueError as error:  # int() refuses a number of thousands of digits
        raise ConfigError(f"config file {path} holds a value YAML cannot read as a number "
                          f"({str(error).splitlines()[0][:80]}); fix that value") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path}{where} is not valid YAML; fix its syntax") from None
    if loaded is None:
        return {}
    if _too_large(loaded):
        raise ConfigError(f"config file {path} expands to over {MAX_CONFIG_VALUES:,} values "
                          "(YAML aliases?): not a slic config (see example.yaml)")
    if not isinstance(loaded, dict) or not all(isinstance(v, dict) or v is None
                                               for v in loaded.values()):
        raise ConfigError(f"config file {path} must map section names to mappings of keys")
    return {name: dict(values or {}) for name, values in loaded.items()}


def _set_key(raw: dict[str, dict[str, Any]], dotted: str, value: Any, origin: str) -> None:
    section, _, key = dotted.replace("-", "_").partition(".")
    if not key:
        raise ConfigError(f"{origin} {dotted!r} must name section.key, for example data.root")
    raw.setdefault(section, {})[key] = value


def parse_set_item(item: str) -> tuple[str, Any]:
    """Split `section.key=value`; the value is read as YAML (numbers, true/false, null)."""
    import yaml

    dotted, sep, text = item.partition("=")
    if not sep:
        raise ConfigError(f"--set {item!r} must look like section.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except (yaml.YAMLError, RecursionError, ValueError):  # ValueError: a huge integer
        value = text
    if _too_large(value):
        raise ConfigError(f"--set {dotted.strip()} holds over {MAX_CONFIG_VALUES:,} values: "
                          "a config key takes one value")
    return dotted.strip(), value


def set_keys(set_items: list[str] | None) -> set[str]:
    """The dotted keys (`section.key`, dashes as underscores) that `--set` items give a value:
    the settings a user chose on the command line, as opposed to defaults or a shared file."""
    return {parse_set_item(item)[0].replace("-", "_") for item in set_items or []}


def resolve_sections(sections: dict[str, type], path: Path | None = None,
                     options: dict[str, Any] | None = None,
                     set_items: list[str] | None = None) -> dict[str, Any]:
    """Each section of `sections` (name -> dataclass) built from its defaults, the YAML file at
    `path`, `options` (dotted keys to explicit CLI values; None = not given) and `set_items`
    (`section.key=value`), later layers winning. Returns name -> section instance."""
    raw = _read_yaml(path) if path is not None else {}
    for dotted, value in (options or {}).items():
        if value is not None:
            _set_key(raw, dotted, value, "option")
    for item in set_items or []:
        dotted, value = parse_set_item(item)
        _set_key(raw, dotted, value, "--set")
    for name in raw:
        if name not in sections:
            raise ConfigError(
                f"unknown config section {name!r} (sections: {', '.join(sections)})"
            )
    return {name: build_section(name, cls, raw.get(name, {})) for name, cls in sections.items()}
