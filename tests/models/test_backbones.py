from functools import partial

import pytest
import torch
from torch import nn

from stages.models.backbones import build_r3d_18, build_s3d
from stages.models.encoder import Encoder, load_encoder_weights
from stages.models.registry import ARCHITECTURES, BACKBONES, build_backbone
from stages.runtime.errors import ConfigError


def test_the_registry_is_the_one_list_of_architectures():
    from stages.pretrain_config import PretrainConfig
    from stages.runtime.errors import ConfigError as RefusedArch
    from stages.runtime.settings import build_section

    assert ARCHITECTURES == tuple(BACKBONES)  # derived, not copied
    assert build_section("pretrain", PretrainConfig, {"arch": "r3d_tiny"}).arch == "r3d_tiny"
    with pytest.raises(RefusedArch, match="r3d_tiny"):
        build_section("pretrain", PretrainConfig, {"arch": "r4d"})
    assert build_backbone("r3d_tiny").feature_dim > 0


# r3d_18 and r2plus1d_18 take seconds each on a CPU: slow; the others stay in the quick loop.
@pytest.mark.parametrize("arch", [pytest.param(arch, marks=pytest.mark.slow)
                                  if arch in ("r3d_18", "r2plus1d_18") else arch
                                  for arch in ARCHITECTURES])
def test_every_backbone_maps_clips_to_pooled_features(arch):
    torch.manual_seed(0)
    encoder = Encoder(arch, hidden_dim=32, out_dim=16).eval()
    clips = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        projection = encoder(clips)
        pooled = encoder.embed(clips, "backbone")
    assert projection.shape == (2, 16)
    assert pooled.shape == (2, encoder.backbone.feature_dim)
    assert torch.isfinite(projection).all()


@pytest.mark.slow
def test_r3d_18_is_the_slic_variant():
    model = build_r3d_18()
    stem = model.stem[0]
    assert stem.kernel_size == (7, 7, 7) and stem.stride == (1, 2, 2)
    assert not any(isinstance(m, (nn.MaxPool3d, nn.MaxPool2d)) for m in model.modules())
    shapes = []
    hooks = [layer.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
             for layer in model.layers]
    with torch.no_grad():
        features = model.eval()(torch.randn(1, 3, 16, 64, 64))
    for hook in hooks:
        hook.remove()
    # For 16x128x128 the spec gives 64x16x64, 128x8x32, 256x4x16, 512x2x8; at 64 px, half.
    assert shapes == [(1, 64, 16, 32, 32), (1, 128, 8, 16, 16), (1, 256, 4, 8, 8),
                      (1, 512, 2, 4, 4)]
    assert features.shape == (1, 512)
    blocks = [len(layer) for layer in model.layers]
    assert blocks == [2, 2, 2, 2]


def test_projection_head_is_512_2048_bn_relu_128():
    head = Encoder("r3d_18").head.layers
    assert [type(m) for m in head] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert (head[0].in_features, head[0].out_features, head[3].out_features) == (512, 2048, 128)


def test_init_from_checkpoint_and_wrong_arch(tmp_path):
    torch.manual_seed(1)
    source = Encoder("r3d_tiny")
    path = tmp_path / "weights.pt"
    torch.save({"model": source.state_dict()}, path)
    torch.manual_seed(2)
    target = Encoder("r3d_tiny")
    load_encoder_weights(target, path)
    for name, tensor in source.state_dict().items():
        assert torch.equal(tensor, target.state_dict()[name]), name
    with pytest.raises(ConfigError, match="does not hold a r3d_18 backbone"):
        load_encoder_weights(Encoder("r3d_18"), path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_encoder_weights(target, tmp_path / "nothing.pt")


def test_r3d_tiny_sees_motion_not_static_content():
    """Its stem takes frame differences: a static pattern added to every frame changes
    nothing, a moving one does."""
    torch.manual_seed(0)
    encoder = Encoder("r3d_tiny", hidden_dim=32, out_dim=16).eval()
    clips = torch.randn(2, 3, 6, 32, 32)
    still = torch.randn(2, 3, 1, 32, 32)
    moving = torch.randn(2, 3, 6, 32, 32)
    with torch.no_grad():
        base = encoder.embed(clips, "backbone")
        assert torch.allclose(base, encoder.embed(clips + still, "backbone"), atol=1e-5)
        assert not torch.allclose(base, encoder.embed(clips + moving, "backbone"), atol=1e-3)
        with pytest.raises(ConfigError, match="at least 2 frames"):
            encoder(clips[:, :, :1])


def test_s3d_batch_norm_is_pytorch_default_as_in_official_slic():
    norms = [m for m in build_s3d().modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) > 50
    assert all(m.momentum == 0.1 and m.eps == 1e-5 for m in norms)
    torchvision_own = partial(nn.BatchNorm3d, eps=1e-3, momentum=1e-3)
    kept = [m for m in build_s3d(norm_layer=torchvision_own).modules()
            if isinstance(m, nn.BatchNorm3d)]
    assert len(kept) == len(norms) and all(m.momentum == 1e-3 for m in kept)


def test_s3d_head_is_the_official_1024_1024_relu_out_without_batch_norm():
    torch.manual_seed(0)
    encoder = Encoder("s3d", hidden_dim=2048, out_dim=128)  # hidden_dim does not apply to s3d
    head = encoder.head.layers
    assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (head[0].in_features, head[0].out_features) == (1024, 1024)
    assert (head[2].in_features, head[2].out_features) == (1024, 128)
    clips = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        pooled = encoder.eval().embed(clips, "backbone")
        projection = encoder.head(pooled)
    assert pooled.shape == (2, 1024) and projection.shape == (2, 128)
    assert torch.isfinite(projection).all()


def test_s3d_checkpoint_loads_head_and_backbone(tmp_path):
    torch.manual_seed(1)
    source = Encoder("s3d", out_dim=16)
    path = tmp_path / "s3d.pt"
    torch.save({"model": source.state_dict()}, path)
    torch.manual_seed(2)
    target = Encoder("s3d", out_dim=16)
    load_encoder_weights(target, path)
    loaded = target.state_dict()
    for name, tensor in source.state_dict().items():
        assert torch.equal(tensor, loaded[name]), name


def test_an_unknown_feature_is_refused_not_the_projection() -> None:
    import pytest
    import torch

    from stages.models.encoder import Encoder

    encoder = Encoder("r3d_tiny", 16, 8).eval()
    clips = torch.zeros(1, 3, 4, 32, 32)
    assert encoder.embed(clips, "backbone").shape[1] != encoder.embed(clips).shape[1]
    with pytest.raises(ValueError, match="projection, backbone"):
        encoder.embed(clips, "backbones")


def torchvision_residual_layer(in_planes: int, width: int, count: int, stride: int
                               ) -> tuple[nn.Sequential, int]:
    """The r3d layers as slic built them from torchvision's BasicBlock until 2026-12."""
    from torchvision.models.video.resnet import BasicBlock, Conv3DSimple

    downsample = None
    if stride != 1 or in_planes != width:
        downsample = nn.Sequential(
            nn.Conv3d(in_planes, width, 1, stride=stride, bias=False), nn.BatchNorm3d(width))
    blocks = [BasicBlock(in_planes, width, Conv3DSimple, stride, downsample)]
    blocks += [BasicBlock(width, width, Conv3DSimple) for _ in range(count - 1)]
    return nn.Sequential(*blocks), width


@pytest.mark.parametrize("arch", ["r3d_tiny", pytest.param("r3d_18", marks=pytest.mark.slow)])
def test_r3d_blocks_match_torchvisions_names_draws_and_outputs(
        arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints of earlier runs load, a seed gives the same initial weights, and a clip the
    same features as with torchvision's BasicBlock."""
    from stages.models import backbones

    torch.manual_seed(0)
    ours = build_backbone(arch).eval()
    monkeypatch.setattr(backbones, "_residual_layer", torchvision_residual_layer)
    torch.manual_seed(0)
    theirs = build_backbone(arch).eval()
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(reference)
    for name in reference:
        assert torch.equal(mine[name], reference[name]), name
    clips = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(clips), theirs(clips))


def test_the_r3d_backbones_build_without_importing_torchvision() -> None:
    """torchvision's import costs about as much as torch's: only its own models pay it."""
    import subprocess
    import sys

    probe = ("import sys; from stages.models.registry import build_backbone; "
             "build_backbone('r3d_tiny'); assert 'torchvision' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
