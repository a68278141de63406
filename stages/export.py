"""export: a pretrained backbone as weights that other code loads without slic.

Formats (`EXPORT_FORMATS`):
- `torchvision`: a state dict (tensors only, so `torch.load(..., weights_only=True)` reads it)
  with the key names of the matching torchvision video model: r3d_18 -> `r3d_18` with SLIC's
  7x7x7 stem, r2plus1d_18 -> `r2plus1d_18`, s3d -> `s3d` with PyTorch's default BatchNorm;
  the classifier replaced by the identity, so the model returns pooled features.
- `safetensors`: the same tensors and names in a safetensors file (no pickle at all), the
  recipe in its metadata. r3d_tiny, which has no
  torchvision counterpart, is written under slic's own names.

Beside the weights, `<file>.json` holds the Python that builds the model and loads them, the
clip the model expects (frames, stride, size, normalisation) and where the weights came from.
Each torchvision export is checked before it is reported: the recipe is run, the weights are
loaded strictly, and its features on a random clip are compared with slic's backbone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stages import __version__
from stages.evaluation.sources import load_encoder
from stages.io.artifacts import file_checksum
from stages.io.run_folder import RunFolder
from stages.io.write_guard import guard_output, publish
from stages.models.encoder import Encoder
from stages.runtime.choices import EXPORT_FORMATS
from stages.runtime.errors import ConfigError

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@dataclass(frozen=True)
class TorchvisionRecipe:
    """How slic's backbone `arch` maps onto a torchvision model: Python that builds the model
    as `model` (with `torch` and `torchvision` imported), and slic key prefixes -> its own."""

    build: str
    prefixes: tuple[tuple[str, str], ...]


TORCHVISION_RECIPES: dict[str, TorchvisionRecipe] = {
    "r3d_18": TorchvisionRecipe(
        "model = torchvision.models.video.r3d_18(weights=None)\n"
        "# SLIC's R3D-18 has a 7x7x7 stem (torchvision's is 3x7x7); nothing else differs.\n"
        "model.stem[0] = torch.nn.Conv3d(3, 64, kernel_size=(7, 7, 7), stride=(1, 2, 2),\n"
        "                                padding=(3, 3, 3), bias=False)\n"
        "model.fc = torch.nn.Identity()  # pooled features (B, 512), not class scores\n",
        (("stem.", "stem."), ("layers.0.", "layer1."), ("layers.1.", "layer2."),
         ("layers.2.", "layer3."), ("layers.3.", "layer4."))),
    "r2plus1d_18": TorchvisionRecipe(
        "model = torchvision.models.video.r2plus1d_18(weights=None)\n"
        "model.fc = torch.nn.Identity()  # pooled features (B, 512), not class scores\n",
        (("features.0.", "stem."), ("features.1.", "layer1."), ("features.2.", "layer2."),
         ("features.3.", "layer3."), ("features.4.", "layer4."))),
    "s3d": TorchvisionRecipe(
        "# slic's S3D keeps PyTorch's default BatchNorm (torchvision's eps is 1e-3).\n"
        "model = torchvision.models.video.s3d(weights=None, norm_layer=torch.nn.BatchNorm3d)\n"
        "model.avgpool = torch.nn.AdaptiveAvgPool3d(1)  # any clip size\n"
        "model.classifier = torch.nn.Identity()  # pooled features (B, 1024)\n",
        (("features.", "features."),)),
}
LOADERS = {"torchvision": "state = torch.load(WEIGHTS, map_location='cpu', weights_only=True)",
           "safetensors": "from safetensors.torch import load_file\nstate = load_file(WEIGHTS)"}


@dataclass
class ExportResult:
    """What `export` wrote: the weights file, its `<file>.json` description, and the largest feature
    difference against slic's backbone (None when no torchvision recipe was run)."""

    weights: Path
    description: Path
    format: str
    arch: str
    tensors: int
    max_difference: float | None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary the CLI prints: `weights`, `description`, `format`, `arch`,
        `tensors`, `bytes` (size of the weights file) and `verified_max_difference`."""
        return {"stage": "export", "weights": str(self.weights),
                "description": str(self.description), "format": self.format,
                "arch": self.arch, "tensors": self.tensors, "bytes": self.weights.stat().st_size,
                "verified_max_difference": self.max_difference,
                "seconds": round(self.seconds, 3)}


def source_checkpoint(run: Path) -> Path:
    """`run` itself when it is a file, else the run folder's best.pt (or checkpoint.pt)."""
    run = Path(run)
    if run.is_file():
        return run
    found = RunFolder(run).saved_checkpoint()
    if found is not None:
        return found
    raise ConfigError(f"{run} holds no best.pt or checkpoint.pt; pass a pretraining run "
                      "folder or a checkpoint")


def exported_state(encoder: Encoder, arch: str, target: str) -> dict[str, torch.Tensor]:
    """The backbone's tensors under the names of format `target`: torchvision's where the
    arch has a torchvision counterpart, slic's backbone names otherwise (safetensors only)."""
    state = {key: value.detach().contiguous().clone()
             for key, value in encoder.backbone.state_dict().items()}
    recipe = TORCHVISION_RECIPES.get(arch)
    if recipe is None:
        if target == "torchvision":
            raise ConfigError(f"{arch} has no torchvision counterpart (slic's own small R3D: "
                              "frame-difference stem, widths 16-128); export it with --format "
                              "safetensors, or pretrain r3d_18, r2plus1d_18 or s3d")
        return state
    renamed = {}
    for key, value in state.items():
        prefix = next((p for p in recipe.prefixes if key.startswith(p[0])), None)
        if prefix is None:
            raise ConfigError(f"backbone tensor {key!r} of {arch} has no torchvision name; "
                              "this slic version cannot export it")
        renamed[prefix[1] + key[len(prefix[0]):]] = value
    return renamed


def python_recipe(arch: str, weights_format: str) -> str | None:
    """Python that builds the torchvision model and loads the weights file `WEIGHTS`."""
    recipe = TORCHVISION_RECIPES.get(arch)
    if recipe is None:
        return None
    return ("import torch\nimport torchvision\n\n" + recipe.build + LOADERS[weights_format]
            + "\nmodel.load_state_dict(state)\nmodel.eval()\n")


def build_from_recipe(code: str, weights: Path) -> torch.nn.Module:
    """Run a recipe of this module (never text from elsewhere) as a user would."""
    namespace: dict[str, Any] = {"WEIGHTS": str(weights)}
    exec(compile(code, "<export recipe>", "exec"), namespace)
    return namespace["model"]


def _write(state: dict[str, torch.Tensor], path: Path, weights_format: str,
           metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.writing")
    if weights_format == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(temporary), metadata=metadata)
    else:
        torch.save(state, temporary)
    publish(temporary, path)  # safetensors writes its files private (0600)


def _difference(encoder: Encoder, code: str, weights: Path, trained: dict[str, Any]) -> float:
    """Max |torchvision features - slic backbone features| on a seeded random clip pair."""
    model = build_from_recipe(code, weights)
    generator = torch.Generator().manual_seed(0)
    clips = torch.randn(2, 3, trained["clip_length"], trained["crop_size"],
                        trained["crop_size"], generator=generator)
    with torch.no_grad():
        ours = encoder.backbone.eval()(clips)
        theirs = model(clips)
    return float((ours - theirs).abs().max())


def export(run: Path, weights_format: str = "torchvision", out: Path | None = None
           ) -> ExportResult:
    """Write the backbone of `run` (a run folder or a checkpoint) in `weights_format`."""
    clock = time.perf_counter()
    if weights_format not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {weights_format!r}; choose one of "
                          f"{', '.join(EXPORT_FORMATS)}")
    checkpoint = source_checkpoint(run)
    encoder, trained = load_encoder(checkpoint)
    arch = trained["arch"]
    state = exported_state(encoder, arch, weights_format)
    suffix = ".pt" if weights_format == "torchvision" else ".safetensors"
    weights = guard_output(
        Path(out) if out else checkpoint.parent / "export" / f"{arch}-backbone{suffix}",
        "export", option="--out", inputs=[checkpoint])
    sidecar = weights.with_name(weights.name + ".json")
    if sidecar.exists() and not weights.exists():
        raise ConfigError(f"--out {weights}: {sidecar} exists and was not written with it; "
                          "choose another path or move that file away")
    code = python_recipe(arch, weights_format)
    description = {
        "arch": arch, "format": weights_format,
        "torchvision_names": code is not None,
        "python": code.replace("WEIGHTS", repr(weights.name)) if code else None,
        "input": {"shape": "(B, 3, T, S, S) float32", "frames_T": trained["clip_length"],
                  "frame_stride": trained["stride"], "crop_size_S": trained["crop_size"],
                  "preprocessing": "RGB scaled to 0..1; short side resized to S, centre crop "
                                   "S x S; each channel minus mean, divided by std",
                  "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                  "frame_differences": arch == "r3d_tiny"},
        "output": f"(B, {encoder.backbone.feature_dim}) pooled backbone features",
        "source": {"checkpoint": str(checkpoint), "checksum": file_checksum(checkpoint),
                   "slic_version": __version__},
    }
    _write(state, weights, weights_format,
           {"slic": json.dumps({k: description[k] for k in ("arch", "input", "source")})})
    difference = _difference(encoder, code, weights, trained) if code else None
    description["verified_max_difference"] = difference
    temporary = sidecar.with_name(f".{sidecar.name}.writing")
    temporary.write_text(json.dumps(description, indent=1))
    publish(temporary, sidecar)
    return ExportResult(weights, sidecar, weights_format, arch, len(state), difference,
                        time.perf_counter() - clock)
