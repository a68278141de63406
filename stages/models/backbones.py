"""3D CNN backbones by name. Each maps clips (B, 3, T, H, W) to pooled features (B, D).

No weights are ever downloaded: every backbone starts from random initialisation (or from a
local checkpoint the caller loads).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from stages.runtime.errors import ConfigError

# torchvision is imported only to build its own architectures (r2plus1d_18, s3d): importing it
# costs about 1.3 s on top of torch's 1.3 s, on every command that builds an r3d model.


class VideoResNet3d(nn.Module):
    """A 3D ResNet of `ResidualBlock`s with a configurable stem and widths, without max-pool.

    Layers 2.. downsample T, H and W by 2 (type-B shortcuts: 1x1x1 conv + BN), as the SLIC /
    kenshohara R3D does. `feature_dim` is the last width. With `frame_differences` the stem
    sees the T - 1 differences of consecutive frames instead of the T frames.
    """

    def __init__(self, widths: Sequence[int], blocks: Sequence[int],
                 stem_kernel: tuple[int, int, int], frame_differences: bool = False) -> None:
        super().__init__()
        self.frame_differences = frame_differences
        padding = tuple(k // 2 for k in stem_kernel)
        self.stem = nn.Sequential(
            nn.Conv3d(3, widths[0], stem_kernel, stride=(1, 2, 2), padding=padding, bias=False),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True),
        )
        layers, in_planes = [], widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks)):
            stride = 1 if index == 0 else 2
            layer, in_planes = _residual_layer(in_planes, width, count, stride)
            layers.append(layer)
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.feature_dim = widths[-1]
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, feature_dim); T >= 2 with frame differences."""
        if self.frame_differences:
            if clips.shape[2] < 2:
                raise ConfigError("this backbone takes differences of consecutive frames: "
                                  "clips need at least 2 frames (pretrain.clip_length)")
            clips = clips[:, :, 1:] - clips[:, :, :-1]
        return self.pool(self.layers(self.stem(clips))).flatten(1)


class ResidualBlock(nn.Module):
    """Two 3x3x3 convolutions with BatchNorm and a shortcut: (B, in, T, H, W) ->
    (B, width, ceil(T / stride), ceil(H / stride), ceil(W / stride)). Its parameter names are
    those of torchvision's video BasicBlock (conv1.0, conv1.1, conv2.0, conv2.1,
    downsample.0/1), so checkpoints and exports map one to one."""

    def __init__(self, in_planes: int, width: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv3d(in_planes, width, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm3d(width), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(nn.Conv3d(width, width, 3, padding=1, bias=False),
                                   nn.BatchNorm3d(width))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output: relu(convolutions(x) + shortcut(x))."""
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


def _residual_layer(in_planes: int, width: int, count: int, stride: int
                    ) -> tuple[nn.Sequential, int]:
    downsample = None
    if stride != 1 or in_planes != width:
        downsample = nn.Sequential(
            nn.Conv3d(in_planes, width, 1, stride=stride, bias=False), nn.BatchNorm3d(width))
    blocks = [ResidualBlock(in_planes, width, stride, downsample)]
    blocks += [ResidualBlock(width, width) for _ in range(count - 1)]
    return nn.Sequential(*blocks), width


class TorchvisionVideoBackbone(nn.Module):
    """A torchvision video model cut before its classifier, with adaptive average pooling."""

    def __init__(self, features: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.feature_dim = feature_dim

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, feature_dim)."""
        return self.pool(self.features(clips)).flatten(1)


def build_r3d_18() -> nn.Module:
    """R3D-18 as SLIC trains it: 7x7x7 stem, temporal stride 1, no max-pool; 512-d."""
    return VideoResNet3d((64, 128, 256, 512), (2, 2, 2, 2), (7, 7, 7))


def build_r3d_tiny() -> nn.Module:
    """A narrow R3D (widths 16-128, one block per stage) for CPU demos and tests; 128-d.

    Its stem takes the differences of consecutive frames: from raw frames a network this small
    learns no motion in a CPU budget (benchmarks/RESULTS.md, the supervised probe).
    """
    return VideoResNet3d((16, 32, 64, 128), (1, 1, 1, 1), (3, 7, 7), frame_differences=True)


def build_r2plus1d_18() -> nn.Module:
    """torchvision's R(2+1)D-18, random init; 512-d."""
    from torchvision.models.video import r2plus1d_18

    model = r2plus1d_18(weights=None)
    features = nn.Sequential(model.stem, model.layer1, model.layer2, model.layer3, model.layer4)
    return TorchvisionVideoBackbone(features, 512)


def build_s3d(*, norm_layer: Callable[..., nn.Module] = nn.BatchNorm3d) -> nn.Module:
    """torchvision's S3D, random init, pooled adaptively so any clip size works; 1024-d.

    Its BatchNorm is PyTorch's default (momentum 0.1, eps 1e-5), as in the official SLIC S3D.
    torchvision's own (momentum 0.001, eps 1e-3, from the TensorFlow model) is
    `norm_layer=partial(nn.BatchNorm3d, eps=1e-3, momentum=1e-3)`; trained from scratch, its
    running statistics lag far behind the weights, so eval-mode features are off.
    """
    from torchvision.models.video import s3d

    return TorchvisionVideoBackbone(s3d(weights=None, norm_layer=norm_layer).features, 1024)
