"""GPU check: the paper path on one GPU node as it is, in under 8 minutes, and SLIC's training
step against a bare loop of the same model.

Here, where ffmpeg and an installed slic are, make a small workspace (under 30 MiB):

    python benchmarks/gpu_check.py prepare --out DIR [--preset gpu|smoke]

DIR then holds `synthetic/frames.h5` and `synthetic/flow.h5` (DIS, at the stored size) of a
synthetic dataset, `flowcheck/frames.h5` (videos for (d)'s TV-L1 run) and `prepared.json`; the
raw videos are gone. Preset gpu: 320 videos of 0.7-0.8 s, frames 128 px on the short side
(256 training videos: 8 steps of 32 an epoch), the first video of each of the 8 classes for
TV-L1, 28 MiB, a minute here; smoke: 24 videos at 48 px and one TV-L1 video, for a CPU,
5 MiB. On the GPU node, from the source tree (no install, no ffmpeg, no faiss):

    PYTHONPATH=. python benchmarks/gpu_check.py run --workspace DIR [--device cuda|cpu]
        [--amp bf16|fp16|off] [--preset gpu|smoke] [--out RESULTS.json] [--timeout S]
        [--budget S] [--scratch DIR] [--tvl1-only]

`run` copies DIR to a scratch folder (removed at the end unless --scratch names one) and
measures, every part in subprocesses (slic as `python -c "from slic_cli.app import main;
main()"` with PYTHONPATH at this tree), each killed with its process group at --timeout and
none started past --budget seconds of the whole run. A part that fails or times out becomes
one line in the table and the others still run; the exit code is 1 if any failed.

(a) SLIC's step (`slic_step`, backward, SGD, as the trainer does them) on real training
    batches moved to the device once (uint8), against a bare forward/backward/SGD loop of the
    same encoder with a plain triplet loss on the same clips: clips/s of both and their ratio
    (the step's overhead: colour operations on the device, mining, statistics, host syncs),
    peak GPU memory. The bare loop's input goes through `model_input`.
(b) The real pretrain DataLoader alone, with the workers and colour placement pretrain's
    `auto` defaults give: clips/s and the worker processes' CPU-ms per clip
    (benchmarks/_loader_cost.py).
(c) `slic pretrain`, whole, 2 epochs with a clustering round, default workers: clips/s of the
    last epoch; over (a)'s step rate, the "GPU busy share" (how much of the time the GPU could
    spend on steps it does); with nvidia-smi, its mean utilisation sampled each second.
(d) retrieve, linear-probe and finetune on (c)'s run (1 epoch, 2 windows); compute-flow
    --method tvl1 on the device (flowcheck's frames into flowcheck/flow-tvl1.h5, beside the
    DIS flow; preset gpu at the 240-px reference size); TV-L1 pairs/s at 320x240 and 170x128
    in batches of 1-64 and its distance from the CPU's flow (on a CPU: 64x48, batch 4).
(e) pretrain, 1 epoch, --amp fp16: the loss scaler's final scale from checkpoint.pt.
(f) pretrain of 1 epoch, then --resume to 2: checkpoint epoch and metrics complete, and
    whether epoch 2's loss equals (c)'s (on CPU it must; on CUDA without
    compute.deterministic it need not).
(g) Where 2 GPUs exist, a 2-process torchrun pretrain of 1 epoch; else skipped.

Presets: gpu (r3d_18, 16x128x128 clips as the paper, batch 32; the default on CUDA, with
--amp bf16) and smoke (r3d_tiny, 4x32x32, batch 8; the default on CPU, with --amp off; a
few minutes on two cores). One table goes to stdout and every figure, with the machine (GPU,
CUDA capability, torch), to the JSON file (default gpu_check.json).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._checked_run import Budget, Entry, record  # noqa: E402
from benchmarks._common import disk_usage, machine_info, median, run_slic, table  # noqa: E402
from benchmarks._gpu_check_parts import PARTS, Check, tvl1_part  # noqa: E402
from benchmarks._gpu_presets import PRESETS, Preset  # noqa: E402

if TYPE_CHECKING:
    from stages.clips.store import ClipStore
    from stages.training.compute import Compute

MAX_PREPARED_BYTES = 30 * 2**20
CLIP_KEYS = ("anchor", "positive", "augmented")


# -- prepare (here) -------------------------------------------------------------------------
def prepare(out: Path, preset_name: str) -> None:
    """Make the workspace of `preset_name` in `out` (new or empty) and print its size."""
    preset = PRESETS[preset_name]
    if out.exists() and any(out.iterdir()):
        sys.exit(f"gpu_check prepare: {out} is not empty; name a new folder")
    data = ["--workspace", str(out), "--quiet", "--json"]
    short_side = f"--set=extract_frames.short_side={preset.short_side}"
    walls = {}
    with tempfile.TemporaryDirectory(prefix="slic-gpu-check-videos-") as scratch:
        videos, flowcheck = Path(scratch) / "synthetic", Path(scratch) / "flowcheck"
        walls["make-dataset"] = prepare_step(
            ["make-dataset", "synthetic", "--out", str(videos), "--quiet", "--json",
             *(f"--set=make_dataset.{setting}" for setting in preset.dataset)])
        walls["extract-frames"] = prepare_step(
            ["extract-frames", "--dataset", "synthetic", "--root", str(videos), *data,
             short_side])
        walls["compute-flow"] = prepare_step(
            ["compute-flow", "--dataset", "synthetic", *data,
             "--set=compute_flow.resolution=stored"])
        copy_one_video_a_class(videos, flowcheck, preset.flowcheck_classes)
        walls["extract-frames (flowcheck)"] = prepare_step(
            ["extract-frames", "--dataset", "folder", "--name", "flowcheck", "--root",
             str(flowcheck), *data, short_side])
    size = disk_usage(out)[0]
    (out / "prepared.json").write_text(json.dumps({"preset": preset_name, "bytes": size}))
    print(table(["prepare step", "wall s"], [[k, f"{v:.1f}"] for k, v in walls.items()]))
    print(f"{out}: {size / 2**20:.1f} MiB (preset {preset_name})")
    if size >= MAX_PREPARED_BYTES:
        sys.exit(f"gpu_check prepare: {out} is {size / 2**20:.1f} MiB, over "
                 f"{MAX_PREPARED_BYTES / 2**20:.0f} MiB")


def prepare_step(args: list[str]) -> float:
    """Wall seconds of `slic <args>` (the installed slic where there is one)."""
    try:
        return run_slic(args)[0]
    except RuntimeError as error:
        sys.exit(f"gpu_check prepare: {str(error).strip().splitlines()[-1]}")


def copy_one_video_a_class(videos: Path, dest: Path, classes: tuple[str, ...] | None) -> None:
    """`dest/<class>/<video>`: the first video of each of `classes` (None: of every class)."""
    folders = sorted(p for p in videos.iterdir() if p.is_dir() and any(p.glob("*.avi"))
                     and (classes is None or p.name in classes))
    if not folders:
        sys.exit(f"gpu_check prepare: {videos} has no video of the classes {classes}")
    for folder in folders:
        (dest / folder.name).mkdir(parents=True)
        first = sorted(folder.glob("*.avi"))[0]
        shutil.copy2(first, dest / folder.name / first.name)


# -- run (on the GPU node) -------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """Every part (or TV-L1's alone) on a scratch copy of the workspace; the table, the JSON
    file; returns the exit code: 1 if a part failed or timed out."""
    started = time.perf_counter()
    on_cuda = args.device.startswith("cuda")
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="slic-gpu-check-"))
    check = Check(scratch / "workspace", args.device, args.amp or ("bf16" if on_cuda else "off"),
                  args.preset or ("gpu" if on_cuda else "smoke"),
                  Budget(args.timeout, args.budget))
    prepared = prepared_description(args.workspace)
    if prepared.get("preset", check.preset_name) != check.preset_name:
        print(f"note: {args.workspace} was prepared for preset {prepared['preset']}; this run "
              f"uses {check.preset_name}")
    try:
        machine = machine_description(check)
        if args.workspace is not None:
            shutil.copytree(args.workspace, check.workspace)
        for section, name, part in PARTS:
            if not args.tvl1_only or part is tvl1_part:
                check.entries.append(record(section, name, lambda part=part: part(check)))
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    failed = [f"({e.section}) {e.name}" for e in check.entries
              if e.status in ("failed", "timed out")]
    wall = time.perf_counter() - started
    args.out.write_text(json.dumps({
        "machine": machine, "wall_s": wall, "failed": failed,
        "settings": {"device": check.device, "amp": check.amp, "preset": check.preset_name,
                     **dataclasses.asdict(check.preset), "timeout_s": args.timeout,
                     "budget_s": args.budget, "workspace": str(args.workspace),
                     "prepared": prepared},
        "entries": [dataclasses.asdict(e) for e in check.entries]}, indent=1, default=str))
    print(f"\npreset {check.preset_name} on {check.device}, amp {check.amp}; "
          f"{machine.get('gpu', machine['cpu'])}, torch {machine['torch']}")
    print(results_table(check.entries))
    print(f"\n{len(failed)} parts failed{': ' + ', '.join(failed) if failed else ''}; "
          f"{wall:.0f} s in all; figures in {args.out}")
    return 1 if failed else 0


def machine_description(check: Check) -> dict[str, Any]:
    """machine_info, torch and, on CUDA, the GPU's name and capability (read in a child, so
    that this process never holds a CUDA context beside the ones it measures)."""
    machine: dict[str, Any] = {**machine_info(), "torch": torch.__version__,
                               "torch_cuda": torch.version.cuda,
                               "gpu_count": torch.cuda.device_count()}
    if check.on_cuda:
        try:
            machine.update(check.measure("machine"))
        except Exception as error:  # noqa: BLE001 - the parts below say what is wrong
            machine["gpu"] = f"unknown: {error}"
    return machine


def prepared_description(workspace: Path | None) -> dict[str, Any]:
    """The workspace's prepared.json (its preset and size), or {} where there is none."""
    path = workspace / "prepared.json" if workspace else None
    return json.loads(path.read_text()) if path and path.is_file() else {}


def results_table(entries: list[Entry]) -> str:
    """One row a figure; a part that did not go well is one row with its reason."""
    rows = []
    for entry in entries:
        lines = entry.rows if entry.status == "ok" else [(entry.name, entry.message)]
        for index, (what, figure) in enumerate(lines):
            rows.append([f"({entry.section})", what, figure,
                         f"{entry.wall_s:.1f}" if index == 0 else ""])
    return table(["section", "what", "figure", "wall s"], rows)


# -- measure (one in-process part of run, in its own process) -------------------------------
def model_input(compute: Compute, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(3B, 3, T, S, S) float32 model input from a batch whose clips, (B, 3, T, S, S) uint8
    each, already sit on the device: joined, cast, normalised and in the model's memory
    format. The bare loop's whole input work: the colour operations SLIC's step applies on
    the device (`colour_on: device`) count as its overhead."""
    return compute.prepare_clips(*(batch[key] for key in CLIP_KEYS))


def workspace_store(workspace: Path) -> ClipStore:
    """The clips of the workspace's synthetic frames.h5 and flow.h5."""
    from stages.clips.store import ClipStore
    from stages.runtime.sections import DataConfig, WorkspaceConfig
    from stages.runtime.workspace import flow_path, frames_path

    where, data = WorkspaceConfig(root=str(workspace)), DataConfig(dataset="synthetic")
    return ClipStore(frames_path(where, data), flow_path(where, data))


def pretrain_colour_on(device: str) -> str:
    """Where pretrain's default `colour_on: auto` puts the colour operations on `device`:
    worker or device."""
    from stages.pretrain_config import PretrainConfig
    from stages.slic_training import triplet_settings

    return triplet_settings(PretrainConfig(), torch.device(device)).augment.colour_on


@dataclass
class Learner:
    """An encoder with its SGD optimiser and loss scaler, updated as the trainer does."""

    encoder: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    compute: Compute
    labels: Any  # (N,) int64 true labels of slic_step's statistics: all unknown (-1)
    mining_group: int  # items a mining group, as pretrain makes them

    def update(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()


def slic_training_step(learner: Learner, batch: dict[str, torch.Tensor]) -> None:
    """slic_step (mining, temporal loss, statistics), the loss read back as the trainer
    reads it, and the update: `SlicTraining.step` of one process."""
    from stages.training.slic_step import LossSettings, pool_generators, slic_step

    groups = len(batch["index"]) // learner.mining_group
    outcome = slic_step(learner.encoder, batch, learner.labels, LossSettings(),
                        pool_generators(0, 0, 0, 0, 1, groups), learner.compute)
    float(outcome.loss.detach().float())
    learner.update(outcome.loss)


def bare_training_step(learner: Learner, batch: dict[str, torch.Tensor]) -> None:
    """Forward, a plain triplet loss (margin 0.2; the next item's positive as negative), the
    update."""
    with learner.compute.autocast():
        embeddings = learner.encoder(model_input(learner.compute, batch))
    anchor, positive, augmented = embeddings.float().split(len(batch["index"]))

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 1 - torch.nn.functional.cosine_similarity(a, b)

    loss = ((distance(anchor, positive) - distance(anchor, positive.roll(1, 0)) + 0.2).relu()
            + (distance(anchor, augmented) - distance(anchor, positive) + 0.2).relu()).mean()
    learner.update(loss)


def timed_loop(step: Callable[[Learner, dict], None], learner: Learner,
               batches: list[dict], steps: int) -> tuple[float, float]:
    """(clips/s, peak GPU GiB or 0) of `steps` steps cycling through `batches`."""
    device = learner.compute.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for batch in itertools.islice(itertools.cycle(batches), steps):
        step(learner, batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return len(CLIP_KEYS) * len(batches[0]["index"]) * steps / seconds, peak


def measure_step(workspace: Path, device: str, amp: str, preset: Preset) -> dict[str, Any]:
    """(a): both loops, warmed up (cuDNN autotuning), then timed in turn `repeats` times."""
    import numpy as np

    from benchmarks._loader_cost import training_items
    from stages.models.encoder import Encoder
    from stages.pretrain_config import PretrainConfig
    from stages.runtime.sections import ComputeConfig
    from stages.slic_training import mining_group
    from stages.training.compute import start_compute
    from stages.training.loading import clip_loader

    compute = start_compute(ComputeConfig(device=device, amp=amp))
    colour_on = pretrain_colour_on(device)
    items = training_items(workspace_store(workspace), preset.crop_size, preset.clip_length,
                           colour_on)
    loader = clip_loader(items, None, batch_size=preset.batch_size, workers=0,
                         pin_memory=False, drop_last=True)
    batches = [{k: v.to(compute.device) if k in CLIP_KEYS else v for k, v in batch.items()}
               for batch in itertools.islice(loader, preset.step_batches)]
    torch.manual_seed(0)
    encoder = Encoder(preset.arch).to(compute.device, memory_format=compute.memory_format)
    defaults = PretrainConfig(batch_size=preset.batch_size)
    learner = Learner(encoder, torch.optim.SGD(encoder.parameters(), lr=defaults.lr,
                                               momentum=defaults.momentum),
                      compute.grad_scaler(), compute, np.full(len(items), -1, dtype=np.int64),
                      mining_group(defaults, 1))
    loops = {"slic": slic_training_step, "bare": bare_training_step}
    for step in loops.values():
        timed_loop(step, learner, batches, 3)
    rates: dict[str, list[float]] = {name: [] for name in loops}
    peaks: dict[str, float] = dict.fromkeys(loops, 0.0)
    for _ in range(preset.repeats):
        for name, step in loops.items():
            rate, peak = timed_loop(step, learner, batches, preset.steps)
            rates[name].append(rate)
            peaks[name] = max(peaks[name], peak)
    slic, bare = median(rates["slic"]), median(rates["bare"])
    embedding = embedding_rates(encoder, compute, batches, preset.steps, preset.repeats)
    return {**embedding, "slic_clips_per_second": slic, "bare_clips_per_second": bare,
            "slic_over_bare": slic / bare, "slic_peak_gib": peaks["slic"],
            "bare_peak_gib": peaks["bare"], "clips_a_step": len(CLIP_KEYS) * preset.batch_size,
            "colour_on": colour_on, **compute.describe()}


@torch.no_grad()
def embedding_rates(encoder: torch.nn.Module, compute: Compute, batches: list[dict],
                    steps: int, repeats: int) -> dict[str, float]:
    """Clips/s of the embedding pass that feeds FINCH, R@k and features.h5 (eval mode,
    projection output) in float32 (`compute.embedding_precision: fp32`, the default) and
    under the run's autocast (`amp`): what fp32 costs."""
    encoder.eval()
    inputs = [model_input(compute, batch) for batch in batches]
    rates: dict[str, list[float]] = {"fp32": [], "amp": []}
    for _ in range(repeats + 1):  # the first round warms up (cuDNN autotuning)
        for precision, context in (("fp32", contextlib.nullcontext), ("amp", compute.autocast)):
            if compute.device.type == "cuda":
                torch.cuda.synchronize(compute.device)
            started = time.perf_counter()
            for clips in itertools.islice(itertools.cycle(inputs), steps):
                with context():
                    encoder.embed(clips, "projection")
            if compute.device.type == "cuda":
                torch.cuda.synchronize(compute.device)
            rates[precision].append(len(inputs[0]) * steps / (time.perf_counter() - started))
    encoder.train()
    fp32, amp = median(rates["fp32"][1:]), median(rates["amp"][1:])
    return {"embed_fp32_clips_per_second": fp32, "embed_amp_clips_per_second": amp,
            "embed_fp32_over_amp": fp32 / amp}


def measure_loader_part(workspace: Path, device: str, preset: Preset) -> dict[str, Any]:
    """(b): measure_loader with the workers and colour placement of pretrain's defaults
    (`auto`) on `device`."""
    from benchmarks._loader_cost import measure_loader
    from stages.training.loading import training_workers

    colour_on = pretrain_colour_on(device)
    found = measure_loader(workspace_store(workspace), crop=preset.crop_size,
                           clip_length=preset.clip_length, batch_size=preset.batch_size,
                           workers=training_workers("auto", torch.device(device)),
                           batches=preset.loader_batches, colour_on=colour_on)
    return {**found, "colour_on": colour_on}


def measure_machine(device: str) -> dict[str, Any]:
    """The GPU's name, compute capability and cuDNN version."""
    index = torch.device(device).index or 0
    return {"gpu": torch.cuda.get_device_name(index),
            "cuda_capability": ".".join(map(str, torch.cuda.get_device_capability(index))),
            "cudnn": torch.backends.cudnn.version()}


def measure(args: argparse.Namespace) -> None:
    """Print the figures of one in-process part as one JSON line."""
    preset = PRESETS[args.preset]
    if args.part == "step":
        found = measure_step(args.workspace, args.device, args.amp, preset)
    elif args.part == "loader":
        found = measure_loader_part(args.workspace, args.device, preset)
    elif args.part == "tvl1":
        from benchmarks._tvl1_check import tvl1_check

        found = tvl1_check(torch.device(args.device), preset.repeats)
    else:
        found = measure_machine(args.device)
    print(json.dumps(found, default=float))


# -- command line ----------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="gpu_check.py",
                                          description=__doc__.splitlines()[0])
    commands = main_parser.add_subparsers(dest="command", required=True)
    making = commands.add_parser("prepare", help="make the workspace (here: ffmpeg, slic)")
    making.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    making.add_argument("--preset", choices=tuple(PRESETS), default="gpu")
    running = commands.add_parser("run", help="the check, from the source tree")
    running.add_argument("--workspace", type=Path, default=None,
                         help="a folder `prepare` made (read only: a copy is used)")
    running.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    running.add_argument("--amp", choices=("bf16", "fp16", "off"), default=None,
                         help="default bf16 on CUDA, off on CPU")
    running.add_argument("--preset", choices=tuple(PRESETS), default=None,
                         help="default gpu on CUDA, smoke on CPU")
    running.add_argument("--out", type=Path, default=Path("gpu_check.json"),
                         help="the JSON file of every figure")
    running.add_argument("--timeout", type=float, default=240.0,
                         help="seconds a subprocess may run (default 240)")
    running.add_argument("--budget", type=float, default=450.0,
                         help="no subprocess runs past this many seconds of the whole run")
    running.add_argument("--scratch", type=Path, default=None,
                         help="a new folder for the copy and the runs, kept")
    running.add_argument("--tvl1-only", action="store_true",
                         help="only TV-L1's pairs/s and distance from the CPU")
    measuring = commands.add_parser("measure", help="one in-process part (run starts it)")
    measuring.add_argument("part", choices=("machine", "step", "loader", "tvl1"))
    measuring.add_argument("--workspace", type=Path, default=None)
    measuring.add_argument("--device", required=True)
    measuring.add_argument("--amp", required=True)
    measuring.add_argument("--preset", choices=tuple(PRESETS), required=True)
    return main_parser


def check_run_arguments(args: argparse.Namespace) -> None:
    """Stop with one line on a workspace that is missing or not one `prepare` made."""
    if args.workspace is None and not args.tvl1_only:
        sys.exit("gpu_check run: --workspace DIR is needed (make one with: python "
                 "benchmarks/gpu_check.py prepare --out DIR)")
    if args.workspace is not None and not args.workspace.is_dir():
        sys.exit(f"gpu_check run: workspace {args.workspace} does not exist (make it with: "
                 f"python benchmarks/gpu_check.py prepare --out {args.workspace})")
    if args.workspace is not None and not (args.workspace / "synthetic" / "flow.h5").is_file():
        sys.exit(f"gpu_check run: workspace {args.workspace} holds no synthetic/flow.h5; "
                 "make it with: python benchmarks/gpu_check.py prepare --out DIR")
    if args.scratch is not None and args.scratch.exists() and any(args.scratch.iterdir()):
        sys.exit(f"gpu_check run: --scratch {args.scratch} is not empty; name a new folder")


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "prepare":
        prepare(args.out, args.preset)
    elif args.command == "run":
        check_run_arguments(args)
        sys.exit(run(args))
    else:
        measure(args)


if __name__ == "__main__":
    main()
