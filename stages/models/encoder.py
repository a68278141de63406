"""The encoder SLIC trains: a backbone and a projection head, shared by RGB and flow clips."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from stages.io.checkpoint_archive import check_checkpoint
from stages.models.registry import BACKBONES, build_backbone
from stages.runtime.choices import EMBEDDED_FEATURES
from stages.runtime.errors import ConfigError


class ProjectionHead(nn.Module):
    """fc in -> hidden, [BatchNorm1d], ReLU, fc hidden -> out.

    With BatchNorm it is SLIC's R3D head (512 -> 2048 -> 128); without, the official SLIC S3D
    head (1024 -> 1024 -> 128), whose 1x1x1 convs on the pooled feature are these fc layers.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, *,
                 batch_norm: bool = True) -> None:
        super().__init__()
        norm = [nn.BatchNorm1d(hidden_dim)] if batch_norm else []
        self.layers = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), *norm, nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, out_dim), not normalised."""
        return self.layers(features)


class Encoder(nn.Module):
    """backbone + projection head. `forward` returns the projection (B, out_dim).

    The head follows the arch: for `s3d` it is the official SLIC S3D head, as wide as the
    backbone (1024 -> 1024 -> out_dim, no BatchNorm), and `hidden_dim` does not apply; for the
    other archs it is feature_dim -> hidden_dim, BatchNorm1d, ReLU -> out_dim.
    """

    def __init__(self, arch: str, hidden_dim: int = 2048, out_dim: int = 128) -> None:
        super().__init__()
        if arch not in BACKBONES:
            raise ConfigError(f"unknown backbone {arch!r}; choose one of {', '.join(BACKBONES)}")
        self.arch = arch
        self.backbone = build_backbone(arch)
        feature_dim = self.backbone.feature_dim
        if arch == "s3d":
            self.head = ProjectionHead(feature_dim, feature_dim, out_dim, batch_norm=False)
        else:
            self.head = ProjectionHead(feature_dim, hidden_dim, out_dim)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, out_dim) projection."""
        return self.head(self.backbone(clips))

    def embed(self, clips: torch.Tensor, feature: str = "projection") -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, D): the projection, or the pooled backbone feature; any
        other `feature` is a ValueError, never silently the projection."""
        if feature not in EMBEDDED_FEATURES:
            raise ValueError(f"feature {feature!r}; use one of {', '.join(EMBEDDED_FEATURES)}")
        pooled = self.backbone(clips)
        return pooled if feature == "backbone" else self.head(pooled)


def load_encoder_weights(encoder: Encoder, path: Path) -> None:
    """Initialise from a local checkpoint (slic's checkpoint.pt/best.pt or a bare state dict).

    Only tensors are unpickled (`weights_only=True`), after refusing a zip whose members would
    inflate out of proportion with the file. The projection head is loaded when its shapes
    match and left at random init otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"init checkpoint {path} does not exist; fix pretrain.init")
    check_checkpoint(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise ConfigError(f"{path} is not a readable PyTorch checkpoint ({error})") from None
    weights = state.get("model", state) if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise ConfigError(f"{path} holds no state dict of model weights")
    own = encoder.state_dict()
    backbone = {k: v for k, v in weights.items() if k.startswith("backbone.")}
    missing = [k for k in own if k.startswith("backbone.") and k not in backbone]
    if missing or not backbone:
        raise ConfigError(f"{path} does not hold a {encoder.arch} backbone (missing "
                          f"{len(missing)} of its tensors, e.g. {missing[:1]}); check --arch")
    usable = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    encoder.load_state_dict(usable, strict=False)
