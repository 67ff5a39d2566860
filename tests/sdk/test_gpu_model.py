"""The GPU meter records the GPU model (NVML device name) so GPU time is priced per model.

No GPU on the build machines: a fake ``pynvml`` module answers like NVML does (handles,
names as ``str`` or as ``bytes`` from pynvml < 11, compute processes with a pid).
"""

from __future__ import annotations

import os
import sys
import time
import types
from dataclasses import dataclass

import pytest

from mentatlab.sdk._sampler import Sampler
from mentatlab.sdk.meters import ATTR_GPU_MODEL, ATTR_GPU_SECONDS, ResourceMeter


@dataclass
class _Process:
    pid: int
    usedGpuMemory: int  # noqa: N815 — NVML's field name


def fake_nvml(names: list[str | bytes], in_use: set[int]) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    module.nvmlInit = lambda: None  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(names)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda h: names[h]  # type: ignore[attr-defined]
    module.nvmlDeviceGetComputeRunningProcesses = (  # type: ignore[attr-defined]
        lambda h: [_Process(os.getpid(), 2**30)] if h in in_use else [])
    return module


def meter_once(names: list[str | bytes], in_use: set[int],
               monkeypatch: pytest.MonkeyPatch) -> dict[str, float | int | str]:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(names, in_use))
    sampler = Sampler(period_ms=5.0)
    try:
        meter = ResourceMeter(sampler, is_async=False)
        meter.resume()
        time.sleep(0.05)
        meter.pause()
        return meter.finish()
    finally:
        sampler.stop()


def test_gpu_model_is_recorded_with_gpu_time(monkeypatch: pytest.MonkeyPatch) -> None:
    attributes = meter_once(["NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"], {1},
                            monkeypatch)
    gpu_s = attributes[ATTR_GPU_SECONDS]
    assert isinstance(gpu_s, float) and 0.03 < gpu_s < 1.0
    assert attributes[ATTR_GPU_MODEL] == "NVIDIA A100-SXM4-80GB"


def test_bytes_names_from_old_pynvml_are_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    attributes = meter_once([b"Tesla T4"], {0}, monkeypatch)
    assert attributes[ATTR_GPU_MODEL] == "Tesla T4"


def test_mixed_models_in_use_are_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    attributes = meter_once(["Tesla T4", "NVIDIA L4"], {0, 1}, monkeypatch)
    assert attributes[ATTR_GPU_SECONDS] > 0
    assert ATTR_GPU_MODEL not in attributes


def test_no_gpu_time_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    attributes = meter_once(["Tesla T4"], set(), monkeypatch)
    assert attributes[ATTR_GPU_SECONDS] == 0
    assert ATTR_GPU_MODEL not in attributes
