"""The parts (a)-(g) of `gpu_check.py run`, each a function of the shared `Check` that runs
slic commands (or `gpu_check.py measure`) in subprocesses and returns its figures and rows."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks._checked_run import Budget, Entry, Found, Skipped, UtilisationSampler, run_child
from benchmarks._common import REPO_ROOT
from benchmarks._gpu_presets import PRESETS, Preset

GPU_CHECK = Path(__file__).resolve().with_name("gpu_check.py")
# slic from this source tree, whatever `slic` is on PATH (a GPU node has none installed).
SOURCE_SLIC = [sys.executable, "-c", "from slic_cli.app import main; main()"]


@dataclass
class Check:
    """What the parts of a run share: the scratch workspace, the settings, the timeouts and
    the entries recorded so far."""

    workspace: Path
    device: str
    amp: str
    preset_name: str
    budget: Budget
    entries: list[Entry] = field(default_factory=list)

    @property
    def preset(self) -> Preset:
        return PRESETS[self.preset_name]

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def slic(self, args: list[str], launcher: list[str] = SOURCE_SLIC) -> tuple[float, dict]:
        """(wall s, summary JSON) of `slic <args> --quiet --json` from the source tree."""
        what = f"{'slic' if launcher is SOURCE_SLIC else 'torchrun slic'} {args[0]}"
        wall, out = run_child(what, [*launcher, *args, "--quiet", "--json"],
                              self.budget.timeout(), child_env())
        return wall, json.loads(out.strip().splitlines()[-1])

    def measure(self, part: str) -> dict[str, Any]:
        """The figures of `gpu_check.py measure <part>`, run in its own process."""
        _, out = run_child(f"gpu_check.py measure {part}",
                           [sys.executable, str(GPU_CHECK), "measure", part, "--workspace",
                            str(self.workspace), "--device", self.device, "--amp", self.amp,
                            "--preset", self.preset_name], self.budget.timeout(), child_env())
        return json.loads(out.strip().splitlines()[-1])

    def pretrain(self, run_name: str, epochs: int, *extra: str, amp: str | None = None,
                 launcher: list[str] = SOURCE_SLIC) -> tuple[float, dict, Path]:
        """`slic pretrain` at the preset's sizes with the default workers (and the run's amp
        unless `amp` is given); returns (wall s, summary, run folder)."""
        p = self.preset
        wall, summary = self.slic(
            ["pretrain", "--dataset", "synthetic", "--workspace", str(self.workspace),
             "--device", self.device, "--amp", amp or self.amp, "--arch", p.arch, "--epochs",
             str(epochs), "--batch-size", str(p.batch_size), "--run-name", run_name,
             f"--set=pretrain.clip_length={p.clip_length}",
             f"--set=pretrain.crop_size={p.crop_size}", "--set=pretrain.eval_every=0", *extra],
            launcher)
        return wall, summary, Path(summary["run_folder"])

    def evaluation(self, stage: str, *extra: str) -> dict:
        """`slic <stage>` (retrieve, linear-probe, finetune) on (c)'s run."""
        run = self.figures_of("c")["run_folder"]
        return self.slic([stage, "--run", run, "--dataset", "synthetic", "--workspace",
                          str(self.workspace), "--device", self.device, "--amp", self.amp,
                          *extra])[1]

    def figures_of(self, section: str) -> dict[str, Any]:
        """The figures of `section`'s first part; Skipped unless it went well."""
        entry = next(e for e in self.entries if e.section == section)
        if entry.status != "ok":
            raise Skipped(f"skipped: needs ({section}) {entry.name}, which {entry.status}")
        return entry.figures


def child_env() -> dict[str, str]:
    """This environment with the repository root first on PYTHONPATH (what was there kept,
    so that anything it brings reaches every grandchild too)."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def epoch_records(run: Path) -> list[dict[str, Any]]:
    """metrics.jsonl of a pretrain run: every record (epochs, then the final one)."""
    from stages.io.run_folder import RunFolder
    from stages.training.monitor import MetricsLog

    return MetricsLog(RunFolder(run).metrics).records()


def trained_epochs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of trained epochs (not the final clustering's)."""
    return [r for r in records if "clips_per_second" in r]


def checkpoint_of(run: Path) -> dict[str, Any]:
    """checkpoint.pt of a pretrain run."""
    from stages.io.checkpoint import load_checkpoint
    from stages.io.run_folder import RunFolder

    return load_checkpoint(RunFolder(run).checkpoint)


def step_part(check: Check) -> Found:
    """(a) SLIC's step against the bare loop, batches on the device."""
    f = check.measure("step")
    peak = f" (peak {f['slic_peak_gib']:.2f} GiB)" if check.on_cuda else ""
    return Found(f, [
        (f"SLIC step (slic_step, colour on {f['colour_on']}, backward, SGD), batches on "
         "the device",
         f"{f['slic_clips_per_second']:.1f} clips/s{peak}"),
        ("bare forward/backward/SGD, same encoder and clips",
         f"{f['bare_clips_per_second']:.1f} clips/s"),
        ("step overhead: SLIC / bare", f"{f['slic_over_bare']:.2f}x"),
        ("embedding pass (FINCH, R@k, features.h5): fp32 against autocast",
         f"{f['embed_fp32_clips_per_second']:.1f} against "
         f"{f['embed_amp_clips_per_second']:.1f} clips/s ({f['embed_fp32_over_amp']:.2f}x)")])


def loader_part(check: Check) -> Found:
    """(b) The real loader alone."""
    f = check.measure("loader")
    return Found(f, [(f"real loader alone, {int(f['workers'])} workers (auto), colour on "
                      f"{f['colour_on']}",
                      f"{f['clips_per_second']:.1f} clips/s, "
                      f"{f['cpu_ms_per_clip']:.2f} worker CPU-ms/clip")])


def pretrain_part(check: Check) -> Found:
    """(c) pretrain whole, 2 epochs; its rate against (a)'s step."""
    with UtilisationSampler(physical_gpu(check.device) if check.on_cuda else None) as sampler:
        _, summary, run = check.pretrain("check", 2)
    epochs = trained_epochs(epoch_records(run))
    rate = epochs[-1]["clips_per_second"]
    f = {"run_folder": str(run), "clips_per_second": rate,
         "first_epoch_clips_per_second": epochs[0]["clips_per_second"],
         "epoch_losses": [r["loss"] for r in epochs], "loss": summary.get("loss"),
         "num_clusters": summary.get("num_clusters"),
         "gpu_peak_gib": epochs[-1].get("gpu_peak_gib"),
         "nvidia_smi_utilisation_percent": sampler.mean}
    rows = [("pretrain, 2 epochs, workers auto (whole command)",
             f"{rate:.1f} clips/s last epoch, loss {f['loss']:.4f}, "
             f"{f['num_clusters']} clusters")]
    try:
        f["gpu_busy_share"] = rate / check.figures_of("a")["slic_clips_per_second"]
        rows.append(("GPU busy share: (c) / (a)'s SLIC step", f"{f['gpu_busy_share']:.2f}"))
    except Skipped as reason:
        rows.append(("GPU busy share: (c) / (a)'s SLIC step", str(reason)))
    if check.on_cuda:
        mean = sampler.mean
        rows.append(("nvidia-smi utilisation.gpu, mean of 1-s samples",
                     "no nvidia-smi" if mean is None
                     else f"{mean:.0f}% ({len(sampler.samples)} samples)"))
    return Found(f, rows)


def retrieve_part(check: Check) -> Found:
    """(d) retrieve on (c)'s run, 2 clips a video."""
    s = check.evaluation("retrieve", "--force", "--k", "1,5", "--clips", "2")
    return Found({"r1": s["r1"], "summary": s}, [("retrieve on (c)'s run", f"R@1 {s['r1']:.3f}")])


def linear_probe_part(check: Check) -> Found:
    """(d) linear-probe on (c)'s run, 1 epoch."""
    s = check.evaluation("linear-probe", "--force", "--epochs", "1", "--windows", "2",
                         "--crops", "1", f"--set=linear_probe.batch_size={check.preset.batch_size}")
    return Found({"top1": s["top1"], "summary": s},
                 [("linear-probe on (c)'s run, 1 epoch", f"top-1 {s['top1']:.3f}")])


def finetune_part(check: Check) -> Found:
    """(d) finetune on (c)'s run, 1 epoch."""
    s = check.evaluation("finetune", "--force", "--epochs", "1", "--windows", "2", "--crops",
                         "1", "--batch-size", str(check.preset.batch_size))
    return Found({"top1": s["top1"], "summary": s},
                 [("finetune on (c)'s run, 1 epoch", f"top-1 {s['top1']:.3f}")])


def compute_flow_part(check: Check) -> Found:
    """(d) compute-flow --method tvl1 on the device, beside the DIS flow."""
    out = check.workspace / "flowcheck" / "flow-tvl1.h5"
    _, s = check.slic(["compute-flow", "--dataset", "folder", "--name", "flowcheck",
                       "--workspace", str(check.workspace), "--method", "tvl1", "--device",
                       check.device, "--out", str(out),
                       f"--set=compute_flow.resolution={check.preset.flow_resolution}"])
    rate = s["num_images"] / max(s["seconds"], 1e-9)
    return Found({"pairs": s["num_images"], "pairs_per_second": rate, "summary": s},
                 [(f"compute-flow --method tvl1 ({check.preset.flow_resolution} size), "
                   f"{s['num_videos']} videos", f"{s['num_images']} pairs, {rate:.1f} pairs/s")])


def tvl1_part(check: Check) -> Found:
    """(d) TV-L1 pairs/s for each size and batch, and the distance from the CPU's flow."""
    f = check.measure("tvl1")
    rows = [(f"TV-L1 {r['frames']}, batch {r['batch']} ({r['pairs']} pairs)",
             f"{r['pairs_per_second']:.2f} pairs/s") for r in f["rates"]]
    if "difference_from_cpu" in f:
        d = f["difference_from_cpu"]
        rows.append(("TV-L1 device vs CPU, 4 pairs 170x128",
                     f"max {d['max_px']:.4f} px, mean {d['mean_px']:.6f} px, "
                     f"{d['over_0_1_px_percent']:.3f}% > 0.1 px"))
    return Found(f, rows)


def fp16_part(check: Check) -> Found:
    """(e) 1 epoch under fp16 autocast with the loss scaler."""
    _, summary, run = check.pretrain("fp16", 1, amp="fp16")
    scale = checkpoint_of(run).get("scaler", {}).get("scale")
    if scale is None:
        raise RuntimeError(f"{run}/checkpoint.pt holds no loss scale: the scaler was off")
    rate = trained_epochs(epoch_records(run))[-1]["clips_per_second"]
    return Found({"loss": summary.get("loss"), "scale": float(scale), "clips_per_second": rate},
                 [("pretrain 1 epoch --amp fp16 (loss scaler)",
                   f"loss {summary.get('loss'):.4f}, scale {float(scale):g}, {rate:.1f} clips/s")])


def resume_part(check: Check) -> Found:
    """(f) 1 epoch, then --resume to 2: complete, and epoch 2's loss against (c)'s."""
    check.pretrain("resume", 1)
    _, _, run = check.pretrain("resume", 2, "--resume")
    state, records = checkpoint_of(run), epoch_records(run)
    epochs = [r["epoch"] for r in trained_epochs(records)]
    finals = [r["epoch"] for r in records if r.get("final")]
    if state["epoch"] != 2 or epochs != [0, 1] or finals != [2]:
        raise RuntimeError(f"resumed run incomplete: checkpoint epoch {state['epoch']}, "
                           f"trained epochs {epochs}, final records {finals}")
    loss = trained_epochs(records)[1]["loss"]
    f: dict[str, Any] = {"checkpoint_epoch": state["epoch"], "epoch_2_loss": loss}
    try:
        verdict = same_loss_as_uninterrupted(check, loss, f)
    except Skipped as reason:
        verdict = f"not compared ({reason})"
    return Found(f, [("pretrain 1 epoch, then --resume to 2",
                      f"checkpoint epoch 2, metrics complete; epoch 2 loss {verdict}")])


def same_loss_as_uninterrupted(check: Check, loss: float, figures: dict[str, Any]) -> str:
    """Whether (f)'s epoch-2 loss equals (c)'s, in words; a difference on the CPU, where
    pretrain promises the same numbers, is an error."""
    reference = check.figures_of("c")["epoch_losses"][1]
    figures["uninterrupted_epoch_2_loss"], figures["equal"] = reference, loss == reference
    if check.on_cuda:
        return ("equal to (c)'s" if loss == reference else f"{loss - reference:+.2e} from "
                "(c)'s (CUDA without compute.deterministic: need not be equal)")
    if loss != reference:
        raise RuntimeError(f"resumed epoch 2 loss {loss} differs from the uninterrupted "
                           f"{reference} on CPU, where pretrain promises the same numbers")
    return "equal to (c)'s (CPU: must be)"


def torchrun_part(check: Check) -> Found:
    """(g) a 2-process torchrun pretrain, where 2 GPUs exist."""
    gpus = torch.cuda.device_count() if check.on_cuda else 0
    if gpus < 2:
        raise Skipped(f"skipped: needs 2 GPUs, found {gpus}")
    launcher = check.workspace.parent / "slic_launcher.py"
    launcher.write_text("from slic_cli.app import main\n\nmain()\n")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2", str(launcher)]
    _, summary, run = check.pretrain("torchrun", 1, launcher=torchrun)
    last = trained_epochs(epoch_records(run))[-1]
    return Found({"loss": summary.get("loss"), "clips_per_second": last["clips_per_second"],
                  "ranks_agree": last.get("ranks_agree")},
                 [("torchrun 2 processes, pretrain 1 epoch",
                   f"{last['clips_per_second']:.1f} clips/s, ranks agree: "
                   f"{last.get('ranks_agree')}")])


PARTS: list[tuple[str, str, Callable[[Check], Found]]] = [
    ("a", "step vs bare loop", step_part),
    ("b", "loader alone", loader_part),
    ("c", "pretrain", pretrain_part),
    ("d", "retrieve", retrieve_part),
    ("d", "linear-probe", linear_probe_part),
    ("d", "finetune", finetune_part),
    ("d", "compute-flow tvl1", compute_flow_part),
    ("d", "tvl1 pairs/s", tvl1_part),
    ("e", "fp16", fp16_part),
    ("f", "resume", resume_part),
    ("g", "torchrun", torchrun_part),
]


def physical_gpu(device: str) -> int:
    """nvidia-smi's index of `device` (cuda or cuda:N), through CUDA_VISIBLE_DEVICES."""
    index = int(device.split(":")[1]) if ":" in device else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
    return int(visible[index]) if index < len(visible) and visible[index].isdigit() else index
