"""The backbone registry: the one list of architectures, each name to the builder that makes it.

Light on purpose: config checks and `slic --help` know the names without importing torch, and
a builder's module loads only when a backbone is built. Adding an architecture is one builder
(a function of no arguments returning an `nn.Module` with `feature_dim`) and one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

# architecture -> "module:function" of its builder
BACKBONES: dict[str, str] = {
    "r3d_18": "stages.models.backbones:build_r3d_18",
    "r2plus1d_18": "stages.models.backbones:build_r2plus1d_18",
    "s3d": "stages.models.backbones:build_s3d",
    "r3d_tiny": "stages.models.backbones:build_r3d_tiny",
}
ARCHITECTURES = tuple(BACKBONES)


def build_backbone(arch: str) -> nn.Module:
    """A freshly initialised backbone of architecture `arch` (a key of BACKBONES)."""
    module, function = BACKBONES[arch].split(":")
    return getattr(importlib.import_module(module), function)()
