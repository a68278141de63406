"""The resolved config: every section, from defaults, a YAML file, CLI options and `--set`.

Precedence, lowest first: defaults, `--config FILE`, explicit command options, `--set
section.key=value`. Every key is checked at start-up; a wrong one fails with one line naming it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.cluster_config import ClusterConfig
from stages.compute_config import ComputeConfig
from stages.compute_flow_config import ComputeFlowConfig
from stages.errors import ConfigError
from stages.extract_frames_config import ExtractFramesConfig
from stages.finetune_config import FinetuneConfig
from stages.linear_probe_config import LinearProbeConfig
from stages.make_dataset_config import MakeDatasetConfig
from stages.pretrain_config import PretrainConfig
from stages.retrieve_config import RetrieveConfig
from stages.settings import build_section, render_section_yaml
from stages.shared_config import DataConfig, WorkspaceConfig


@dataclass
class SlicConfig:
    """One typed section per stage, plus the shared `workspace` and `data` sections."""

    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    make_dataset: MakeDatasetConfig = field(default_factory=MakeDatasetConfig)
    extract_frames: ExtractFramesConfig = field(default_factory=ExtractFramesConfig)
    compute_flow: ComputeFlowConfig = field(default_factory=ComputeFlowConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    retrieve: RetrieveConfig = field(default_factory=RetrieveConfig)
    linear_probe: LinearProbeConfig = field(default_factory=LinearProbeConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(SlicConfig)}


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # read only when there is YAML to read: every command loads a config

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path}{where} is not valid YAML; fix its syntax") from None
    if loaded is None:
        return {}
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
    except yaml.YAMLError:
        value = text
    return dotted.strip(), value


def load_config(
    path: Path | None = None,
    options: dict[str, Any] | None = None,
    set_items: list[str] | None = None,
) -> SlicConfig:
    """Resolve the config. `options` maps dotted keys to explicit CLI values (None = not given)."""
    raw = _read_yaml(path) if path is not None else {}
    for dotted, value in (options or {}).items():
        if value is not None:
            _set_key(raw, dotted, value, "option")
    for item in set_items or []:
        dotted, value = parse_set_item(item)
        _set_key(raw, dotted, value, "--set")
    for name in raw:
        if name not in SECTIONS:
            raise ConfigError(
                f"unknown config section {name!r} (sections: {', '.join(SECTIONS)})"
            )
    return SlicConfig(**{name: build_section(name, cls, raw.get(name, {}))
                         for name, cls in SECTIONS.items()})


def render_example() -> str:
    """example.yaml: every key with its default and a one-line comment."""
    header = (
        "# slic configuration: every key with its default. Pass with --config FILE; command\n"
        "# options override the file, and --set section.key=value overrides anything.\n\n"
    )
    return header + "\n".join(render_section_yaml(n, c) for n, c in SECTIONS.items())
