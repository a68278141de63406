"""The pipeline's config: every stage's section beside the shared ones, resolved from
defaults, a YAML file, CLI options and `--set` (`stages.runtime.layers`).

Precedence, lowest first: defaults, `--config FILE`, explicit command options, `--set
section.key=value`. Every key is checked at start-up; a wrong one fails with one line naming it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.cluster_config import ClusterConfig
from stages.compute_flow_config import ComputeFlowConfig
from stages.extract_frames_config import ExtractFramesConfig
from stages.finetune_config import FinetuneConfig
from stages.linear_probe_config import LinearProbeConfig
from stages.make_dataset_config import MakeDatasetConfig
from stages.pretrain_config import PretrainConfig
from stages.retrieve_config import RetrieveConfig
from stages.runtime.layers import resolve_sections
from stages.runtime.sections import ComputeConfig, DataConfig, WorkspaceConfig
from stages.runtime.settings import render_section_yaml


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
        """Every section as nested plain dicts: the resolved config that provenance records."""
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(SlicConfig)}


def load_config(
    path: Path | None = None,
    options: dict[str, Any] | None = None,
    set_items: list[str] | None = None,
) -> SlicConfig:
    """Resolve the config. `options` maps dotted keys to explicit CLI values (None = not given)."""
    return SlicConfig(**resolve_sections(SECTIONS, path, options, set_items))


def render_example() -> str:
    """example.yaml: every key with its default and a one-line comment."""
    header = (
        "# slic configuration: every key with its default. Pass with --config FILE; command\n"
        "# options override the file, and --set section.key=value overrides anything.\n\n"
    )
    return header + "\n".join(render_section_yaml(n, c) for n, c in SECTIONS.items())
