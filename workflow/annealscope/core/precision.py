"""The training precision by hardware: `anneal.dtype: auto` is bf16 where the device computes it natively
(a CUDA device with bf16 support; a CPU with AVX512-BF16 or AMX), fp32 elsewhere.

PyTorch emulates bf16 on CPUs without those instructions: on an AVX2-only AMD EPYC (Zen 3) a 512x512 bf16
matmul ran at 1.1 GFLOP/s against 26.8 in fp32, so bf16 there costs an order of magnitude in time. It does
the same on a CPU that has them when oneDNN is capped below them (`ONEDNN_MAX_CPU_ISA`, say `AVX2`): on the
AVX512-BF16 EPYC that matmul fell from 377 to 1.3 GFLOP/s. So the cap counts as the CPU's, and
`ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2` runs the AVX2-only kind's kernels and precision on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DTYPES = ("auto", "bf16", "fp32")
EMULATED_BF16 = "PyTorch emulates bf16 on such a CPU, many times slower than fp32; set anneal.dtype: auto or fp32"
ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


@dataclass(frozen=True)
class Precision:
    dtype: str  # what runs: bf16 or fp32
    reason: str  # why, naming the device
    native_bf16: bool  # whether the device computes bf16 natively

    def warning(self) -> str | None:
        """The warning for an explicit bf16 on a device that only emulates it."""
        if self.dtype == "bf16" and not self.native_bf16:
            return f"warning: {self.reason}: {EMULATED_BF16}"
        return None


def resolve_precision(requested: str) -> Precision:
    """The precision to train in for `anneal.dtype` (auto, bf16 or fp32) on this process's device: its
    CUDA device if it has one, else its CPU."""
    import torch

    if not torch.cuda.is_available():
        return cpu_precision(requested)
    native = torch.cuda.is_bf16_supported()
    return _choose(requested, native, f"{torch.cuda.get_device_name()} ({'native' if native else 'no'} bf16)")


def export_precision(requested: str, trained: str, on_gpu: bool, trained_from: bool = False) -> str:
    """The dtype of an export for `anneal.export_dtype`: as configured, or for `auto` bf16 where the job trained
    in bf16 on GPUs, whose evaluation loads it in bf16 anyway (the same rounding of the same master weights, at
    half the disk), else fp32: evaluation on a CPU runs in fp32 and reads the weights as trained. A model that
    is `trained_from` (a built base, which every anneal starts from) keeps fp32 under `auto`."""
    if requested != "auto":
        return requested
    return "bf16" if on_gpu and trained == "bf16" and not trained_from else "fp32"


def cpu_precision(requested: str) -> Precision:
    """The precision for `anneal.dtype` on this machine's CPU, read from its instruction set flags (no torch
    import, so the dry run stays fast)."""
    features = [name for name, present in cpu_bf16_features().items() if present]
    if not features:
        return _choose(requested, False, "CPU without AVX512-BF16 or AMX (bf16 emulated)")
    device = f"CPU with {' and '.join(features)}"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap in ISAS_WITHOUT_BF16:
        return _choose(requested, False, f"{device} under ONEDNN_MAX_CPU_ISA={cap} (bf16 emulated)")
    return _choose(requested, True, f"{device} (native bf16)")


def cpu_bf16_features() -> dict[str, bool]:
    """The CPU's bf16 instructions, from /proc/cpuinfo, else from PyTorch's own CPU checks."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        flags = set(cpuinfo.read_text().split())
        return {"AVX512-BF16": "avx512_bf16" in flags, "AMX": "amx_bf16" in flags}
    import torch

    return {"AVX512-BF16": torch.cpu._is_avx512_bf16_supported(), "AMX": torch.cpu._is_amx_tile_supported()}


def _choose(requested: str, native: bool, device: str) -> Precision:
    if requested not in DTYPES:
        raise ValueError(f"anneal.dtype: {requested!r} is not one of {DTYPES}")
    if requested == "auto":
        return Precision("bf16" if native else "fp32", f"auto: {device}", native)
    return Precision(requested, f"anneal.dtype {requested}: {device}", native)
