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

from stages.clips.augment import normalise_clips
from stages.clips.device_colour import apply_colour
from stages.runtime.context import launch_position
from stages.runtime.cores import usable_cores
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
    embedding_precision: str = "fp32"  # "fp32", or "amp": embedding passes under autocast

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """torch.bfloat16 or torch.float16 under amp, None when amp is off."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of a forward pass (a no-op when amp is off)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def embedding_autocast(self) -> contextlib.AbstractContextManager:
        """The context of an embedding pass that feeds clustering, kNN recall or
        features.h5: full float32 unless compute.embedding_precision is amp."""
        if self.embedding_precision == "amp":
            return self.autocast()
        return contextlib.nullcontext()

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler, enabled for fp16 only (bf16 keeps fp32's exponent range)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")

    def prepare_clips(self, *parts: torch.Tensor,
                      colour: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Model input from uint8 clips: each part (B_i, 3, T, S, S) uint8, pinned by the
        loader on CUDA, goes to the device without blocking, the parts are joined there, the
        colour operations of `colour` (one (B_i, COLOUR_FIELDS) CPU tensor a part, when the
        loader left them to the device) are applied, and the cast to float32, ImageNet
        normalisation and memory format happen on the device.
        Returns (sum B_i, 3, T, S, S) float32."""
        moved = [part.to(self.device, non_blocking=True) for part in parts]
        clips = moved[0] if len(moved) == 1 else torch.cat(moved)
        if colour is not None:
            clips = apply_colour(clips, torch.cat(colour))
        return normalise_clips(clips.contiguous(memory_format=self.memory_format))

    def describe(self) -> dict[str, Any]:
        """The resolved policy for display: device, amp, channels-last 3D on or off, the
        embedding passes' precision, world size."""
        return {"device": str(self.device), "amp": self.amp,
                "channels_last": self.memory_format is torch.channels_last_3d,
                "embedding_precision": self.embedding_precision,
                "world_size": self.distribution.world}


@contextmanager
def every_usable_core() -> Iterator[int]:
    """Let torch and numpy's BLAS use every core this process may run on, for work that one
    rank does while the others wait (a clustering round on rank 0): torchrun sets
    OMP_NUM_THREADS=1 in every rank. Yields the thread count; restores the counts after.
    Without threadpoolctl (a GPU node's fixed image may lack it) only torch's count changes."""
    cores, before = usable_cores(), torch.get_num_threads()
    torch.set_num_threads(cores)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits: contextlib.AbstractContextManager = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=cores)
    try:
        with limits:
            yield cores
    finally:
        torch.set_num_threads(before)


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


def process_device(choice: str) -> torch.device:
    """`resolve_device` for this process: under torchrun, CUDA is the GPU of its LOCAL_RANK
    (`distributed.local_gpu_index`), and naming one GPU (cuda:N) is refused."""
    device = resolve_device(choice)
    if launch_position()[1] <= 1 or device.type != "cuda":
        return device
    if choice.startswith("cuda:"):
        raise ConfigError("under torchrun each rank uses the GPU of its LOCAL_RANK: set "
                          f"compute.device to cuda or auto, not {choice}")
    return torch.device("cuda", dist_tools.local_gpu_index(dist_tools.local_position(),
                                                           torch.cuda.device_count()))


def resolve_amp(choice: str, device: torch.device) -> str:
    """`compute.amp` resolved for the device: bf16, fp16 or off. `auto` takes bf16 only where
    the GPU computes it natively (compute capability 8.0 on: A100, H100, RTX 30xx), fp16
    before (V100, T4: torch.cuda.is_bf16_supported() says yes there too, by emulating it)."""
    if choice == "auto":
        if device.type != "cuda":
            return "off"
        return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"
    return choice


def resolve_memory_format(choice: str, device: torch.device) -> torch.memory_format:
    """channels_last_3d when `compute.channels_last` is on (or auto on CUDA), else contiguous."""
    on = choice == "on" or (choice == "auto" and device.type == "cuda")
    return torch.channels_last_3d if on else torch.contiguous_format


def start_compute(settings: ComputeConfig) -> Compute:
    """Resolve the device and, under torchrun, join the process group (NCCL on CUDA, gloo on
    CPU) with `timeout_minutes`; each rank then uses the GPU of its LOCAL_RANK."""
    # Resolved (and cuda:N under torchrun refused) before joining the process group, which
    # an error after it would leave behind.
    device = process_device(settings.device)
    timeout = timedelta(minutes=settings.timeout_minutes)
    distribution = dist_tools.start_distribution(device.type, timeout)
    if distribution.active and device.type == "cuda":
        device = torch.device(distribution.device)
    elif device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    if device.type == "cuda":
        configure_cudnn(settings.deterministic)
    return Compute(device, resolve_amp(settings.amp, device),
                   resolve_memory_format(settings.channels_last, device), distribution,
                   settings.embedding_precision)


def configure_cudnn(deterministic: bool) -> None:
    """cuDNN autotuning for the fixed clip shapes of training (the official code's choice), or
    deterministic algorithms everywhere when asked (slower; CUBLAS_WORKSPACE_CONFIG is set
    for cuBLAS, as torch requires)."""
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # warn_only: some 3D kernels (adaptive average pooling's backward) have no deterministic
    # CUDA version; they warn and run rather than stop the run.
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def stop_compute(compute: Compute) -> None:
    """Leave the torchrun process group, if this process joined one."""
    dist_tools.stop_distribution(compute.distribution)


@contextmanager
def computing(settings: ComputeConfig) -> Iterator[Compute]:
    """`start_compute` for the length of a stage. When the stage ends normally every rank
    waits for the others before leaving the process group: a rank that tore down and exited
    while another was still finishing was seen to abort at exit (SIGABRT, "terminate called
    without an active exception") on a loaded 2-core machine. After an error that every rank
    raised together (`SlicError.every_rank`: ranks that see different checkpoints, a loss
    that became NaN) they wait for each other too, so that each prints its one line; after
    any other error a rank leaves at once, never waiting on ranks that may be gone."""
    compute = start_compute(settings)
    try:
        yield compute
    except BaseException as error:
        if getattr(error, "every_rank", False):
            dist_tools.barrier(compute.distribution)
        stop_compute(compute)
        raise
    dist_tools.barrier(compute.distribution)
    stop_compute(compute)
