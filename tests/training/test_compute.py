"""The one device policy: device, autocast and memory format resolved from `compute`."""

import pytest
import torch

from stages.runtime.errors import ConfigError
from stages.runtime.sections import ComputeConfig
from stages.training.compute import (
    Compute,
    configure_cudnn,
    every_usable_core,
    process_device,
    resolve_amp,
    resolve_device,
    start_compute,
    usable_cores,
)
from stages.training.distributed import Distribution, local_gpu_index

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
    clips = compute.prepare_clips(torch.randint(0, 256, (2, 3, 4, 8, 8), dtype=torch.uint8))
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
    calls.clear()
    with pytest.raises(ConfigError, match="different checkpoints"):
        with computing(ComputeConfig(device="cpu")):
            raise ConfigError("different checkpoints", every_rank=True)
    assert calls == ["barrier", "stop"]  # every rank raised it: they leave together


@pytest.mark.parametrize("capability, amp", [((7, 0), "fp16"), ((7, 5), "fp16"),
                                             ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_amp_auto_takes_bf16_only_where_the_gpu_computes_it(monkeypatch, capability, amp):
    """V100 (7.0) and T4 (7.5) emulate bf16 (torch.cuda.is_bf16_supported() says yes): fp16
    with a scaler is their fast path."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert resolve_amp("auto", torch.device("cuda", 0)) == amp
    assert resolve_amp("fp16", torch.device("cuda", 0)) == "fp16"


def test_a_rank_takes_its_local_gpu_or_the_one_it_sees():
    assert [local_gpu_index(rank, 4) for rank in range(4)] == [0, 1, 2, 3]
    assert local_gpu_index(5, 1) == 0  # one GPU per process (SLURM --gpus-per-task=1)
    with pytest.raises(ConfigError, match="LOCAL_RANK 3 but sees 2 CUDA devices"):
        local_gpu_index(3, 2)


@pytest.fixture
def two_gpus_under_torchrun(monkeypatch):
    """This process as rank 1 of 2 under torchrun, on a node that shows two GPUs."""
    for name, value in (("RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_under_torchrun_cuda_is_the_local_rank_gpu(two_gpus_under_torchrun):
    assert process_device("cuda") == process_device("auto") == torch.device("cuda", 1)
    assert process_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="LOCAL_RANK: set compute.device to cuda or auto"):
        process_device("cuda:0")


def test_cuda_n_under_torchrun_is_refused_before_joining_the_process_group(
        two_gpus_under_torchrun):
    import torch.distributed as dist

    with pytest.raises(ConfigError, match="not cuda:1"):
        start_compute(ComputeConfig(device="cuda:1"))
    assert not dist.is_initialized()


def test_compute_flow_puts_tvl1_on_the_local_rank_gpu(two_gpus_under_torchrun):
    from stages.compute_flow import flow_device

    assert flow_device("tvl1", ComputeConfig(device="cuda")) == "cuda:1"
    assert flow_device("dis", ComputeConfig(device="auto")) == "cpu"


@pytest.mark.parametrize("deterministic", [False, True])
def test_cudnn_autotunes_unless_deterministic_kernels_are_asked_for(deterministic):
    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
              torch.are_deterministic_algorithms_enabled())
    try:
        configure_cudnn(deterministic)
        assert torch.backends.cudnn.benchmark is not deterministic
        assert torch.backends.cudnn.deterministic is deterministic
        assert torch.are_deterministic_algorithms_enabled() is deterministic
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[:2]
        torch.use_deterministic_algorithms(before[2])


def test_every_usable_core_raises_torch_and_blas_threads_then_restores_them():
    from threadpoolctl import threadpool_info

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info()
                if pool["user_api"] == "blas"}

    torch.set_num_threads(1)
    with threadpool_limits_of(1):
        with every_usable_core() as cores:
            assert cores == usable_cores()
            assert torch.get_num_threads() == cores and blas_threads() == {cores}
        assert torch.get_num_threads() == 1 and blas_threads() == {1}


def threadpool_limits_of(count: int):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=count)
