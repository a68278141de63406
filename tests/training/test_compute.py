"""The one device policy: device, autocast and memory format resolved from `compute`."""

import pytest
import torch

from stages.runtime.errors import ConfigError
from stages.runtime.sections import ComputeConfig
from stages.training.compute import Compute, resolve_amp, resolve_device, start_compute
from stages.training.distributed import Distribution

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")


@needs_no_cuda
@pytest.mark.parametrize("choice", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_config_error(choice):
    with pytest.raises(ConfigError, match="no CUDA device") as error:
        resolve_device(choice)
    assert "\n" not in str(error.value) and "--device cpu" in str(error.value)


def test_auto_and_cpu_resolve_without_cuda_and_nonsense_is_refused():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ConfigError, match="compute.device 'gpu'"):
        resolve_device("gpu")


def test_amp_auto_is_off_on_cpu_and_explicit_choices_stay():
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) == "off"
    assert resolve_amp("bf16", cpu) == "bf16" and resolve_amp("off", cpu) == "off"


@pytest.mark.parametrize("amp, dtype, scaled", [("bf16", torch.bfloat16, False),
                                                ("fp16", torch.float16, True),
                                                ("off", torch.float32, False)])
def test_cpu_runs_the_gpu_path_autocast_scaler_and_channels_last(amp, dtype, scaled):
    compute = start_compute(ComputeConfig(device="cpu", amp=amp, channels_last="on"))
    assert compute.memory_format is torch.channels_last_3d
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3), torch.nn.AdaptiveAvgPool3d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 2))
    model = model.to(memory_format=compute.memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = compute.grad_scaler()
    clips = compute.to_device(torch.randn(2, 3, 4, 8, 8))
    assert clips.is_contiguous(memory_format=torch.channels_last_3d)
    before = [p.detach().clone() for p in model.parameters()]
    with compute.autocast():
        output = model(clips)
    assert output.dtype == dtype and scaler.is_enabled() == scaled
    scaler.scale(output.float().square().mean()).backward()
    scaler.step(optimizer)
    scaler.update()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_channels_last_auto_is_off_on_cpu():
    compute = Compute(torch.device("cpu"), "off", torch.contiguous_format, Distribution())
    assert start_compute(ComputeConfig(device="cpu")).memory_format == compute.memory_format


def test_training_workers_are_capped_by_the_usable_cores(monkeypatch):
    from stages.training import compute as compute_module

    monkeypatch.setattr(compute_module, "usable_cores", lambda: 2)
    assert compute_module.training_workers(4) == 2
    assert compute_module.training_workers(1) == 1
    assert compute_module.training_workers(0) == 0


def test_computing_leaves_after_success_and_after_an_error(monkeypatch):
    from stages.training import compute as compute_module
    from stages.training.compute import computing

    calls = []
    monkeypatch.setattr(compute_module.dist_tools, "barrier", lambda d: calls.append("barrier"))
    monkeypatch.setattr(compute_module.dist_tools, "stop_distribution",
                        lambda d: calls.append("stop"))
    with computing(ComputeConfig(device="cpu")) as compute:
        assert compute.device.type == "cpu"
    assert calls == ["barrier", "stop"]  # a normal end waits for every rank, then leaves
    calls.clear()
    with pytest.raises(RuntimeError, match="boom"):
        with computing(ComputeConfig(device="cpu")):
            raise RuntimeError("boom")
    assert calls == ["stop"]  # an error leaves at once: the other ranks may be gone
