"""The `compute` config section: where and how every learning stage runs (one device policy)."""

from __future__ import annotations

from dataclasses import dataclass

from stages.settings import setting

AMP_MODES = ("auto", "bf16", "fp16", "off")
CHANNELS_LAST_MODES = ("auto", "on", "off")


@dataclass
class ComputeConfig:
    """compute: device, mixed precision and torchrun settings of pretrain, finetune,
    linear-probe and retrieve"""

    device: str = setting("auto", "auto (CUDA when present, else CPU), cpu, cuda or cuda:N; "
                          "asking for CUDA where there is none is an error, never a fallback",
                          affects_output=False)
    amp: str = setting("auto", "mixed precision: auto (bf16 on CUDA when supported, else fp16; "
                       "off on CPU), bf16, fp16 (with a gradient scaler) or off",
                       choices=AMP_MODES, affects_output=False)
    channels_last: str = setting("auto", "channels-last 3D memory format: auto (on CUDA), on "
                                 "or off", choices=CHANNELS_LAST_MODES, affects_output=False)
    timeout_minutes: int = setting(60, "torchrun process-group timeout: long enough for a "
                                   "clustering round on rank 0 while the other ranks wait",
                                   minimum=1, affects_output=False)
