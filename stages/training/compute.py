"""The one device policy of every learning stage: device, autocast, memory format and the
torchrun process group, resolved once from the `compute` config section.

Everything but CUDA kernels and NCCL runs the same code on the CPU: bf16 (and fp16) autocast
and channels-last 3D work there too, so the tests exercise the GPU path's logic.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch

from stages.runtime.errors import ConfigError
from stages.runtime.sections import ComputeConfig
from stages.training import distributed as dist_tools

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Compute:
    """Where tensors live and how forward passes run, for this process."""

    device: torch.device
    amp: str  # resolved: "bf16", "fp16" or "off"
    memory_format: torch.memory_format
    distribution: dist_tools.Distribution = field(default_factory=dist_tools.Distribution)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """torch.bfloat16 or torch.float16 under amp, None when amp is off."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of a forward pass (a no-op when amp is off)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler, enabled for fp16 only (bf16 keeps fp32's exponent range)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")

    def to_device(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) clips on the device in the model's memory format."""
        clips = clips.to(self.device, non_blocking=True)
        return clips.contiguous(memory_format=self.memory_format)

    def describe(self) -> dict[str, Any]:
        """The resolved policy for display: device, amp, channels-last 3D on or off, world size."""
        return {"device": str(self.device), "amp": self.amp,
                "channels_last": self.memory_format is torch.channels_last_3d,
                "world_size": self.distribution.world}


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def training_workers(requested: int) -> int:
    """DataLoader workers for training: at most one a usable core (more only take turns, and
    torch warns about each epoch's loader on a small machine)."""
    return min(requested, usable_cores())


def resolve_device(choice: str) -> torch.device:
    """`compute.device` as a torch device; CUDA asked for where there is none is an error."""
    if not _DEVICE_PATTERN.match(choice):
        raise ConfigError(f"compute.device {choice!r} must be auto, cpu, cuda or cuda:N")
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"compute.device is {choice} but this machine has no CUDA device; "
                          "use --device cpu (or auto)")
    device = torch.device("cuda" if choice == "auto" else choice)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"compute.device {choice} does not exist: this machine has "
                          f"{torch.cuda.device_count()} CUDA devices (cuda:0 ..)")
    return device


def resolve_amp(choice: str, device: torch.device) -> str:
    """`compute.amp` resolved for the device: bf16, fp16 or off."""
    if choice == "auto":
        if device.type != "cuda":
            return "off"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return choice


def resolve_memory_format(choice: str, device: torch.device) -> torch.memory_format:
    """channels_last_3d when `compute.channels_last` is on (or auto on CUDA), else contiguous."""
    on = choice == "on" or (choice == "auto" and device.type == "cuda")
    return torch.channels_last_3d if on else torch.contiguous_format


def start_compute(settings: ComputeConfig) -> Compute:
    """Resolve the device and, under torchrun, join the process group (NCCL on CUDA, gloo on
    CPU) with `timeout_minutes`; each rank then uses the GPU of its LOCAL_RANK."""
    device = resolve_device(settings.device)
    timeout = timedelta(minutes=settings.timeout_minutes)
    distribution = dist_tools.start_distribution(device.type, timeout)
    if distribution.active and device.type == "cuda":
        if settings.device.startswith("cuda:"):
            raise ConfigError("under torchrun each rank uses the GPU of its LOCAL_RANK: set "
                              "compute.device to cuda or auto, not " + settings.device)
        device = torch.device(distribution.device)
    elif device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    return Compute(device, resolve_amp(settings.amp, device),
                   resolve_memory_format(settings.channels_last, device), distribution)


def stop_compute(compute: Compute) -> None:
    """Leave the torchrun process group, if this process joined one."""
    dist_tools.stop_distribution(compute.distribution)


@contextmanager
def computing(settings: ComputeConfig) -> Iterator[Compute]:
    """`start_compute` for the length of a stage. When the stage ends normally every rank
    waits for the others before leaving the process group: a rank that tore down and exited
    while another was still finishing was seen to abort at exit (SIGABRT, "terminate called
    without an active exception") on a loaded 2-core machine. After an error it leaves at
    once, never waiting on ranks that may be gone."""
    compute = start_compute(settings)
    try:
        yield compute
    except BaseException:
        stop_compute(compute)
        raise
    dist_tools.barrier(compute.distribution)
    stop_compute(compute)
