"""Precision by hardware: `anneal.dtype: auto` trains in bf16 only where the device computes it natively."""

import torch

from annealscope.core import precision
from annealscope.core.grid import precision_line
from annealscope.core.precision import cpu_bf16_features, cpu_precision, export_precision, resolve_precision
from annealscope.validation import validate_config


def with_features(monkeypatch, **present):
    features = {"AVX512-BF16": False, "AMX": False} | present
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: features)


def test_auto_is_fp32_where_the_cpu_emulates_bf16_and_an_explicit_bf16_warns(monkeypatch):
    with_features(monkeypatch)
    chosen = cpu_precision("auto")
    assert chosen.dtype == "fp32" and "emulated" in chosen.reason and chosen.warning() is None
    explicit = cpu_precision("bf16")
    assert explicit.dtype == "bf16" and "many times slower than fp32" in explicit.warning()
    assert cpu_precision("fp32").warning() is None


def test_auto_is_bf16_with_avx512_bf16_or_amx(monkeypatch):
    for feature in ("AVX512-BF16", "AMX"):
        with_features(monkeypatch, **{feature: True})
        chosen = cpu_precision("auto")
        assert chosen.dtype == "bf16" and feature in chosen.reason and chosen.warning() is None


def test_a_onednn_cap_below_bf16_counts_as_a_cpu_without_it(monkeypatch):
    with_features(monkeypatch, AMX=True)
    for cap, dtype in (("avx2", "fp32"), ("AVX512_CORE", "fp32"), ("AVX512_CORE_BF16", "bf16"), ("ALL", "bf16")):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        chosen = cpu_precision("auto")
        assert chosen.dtype == dtype, (cap, chosen)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert "ONEDNN_MAX_CPU_ISA=AVX2 (bf16 emulated)" in cpu_precision("bf16").warning()


def test_the_cpu_flags_agree_with_pytorchs_own_checks():
    features = cpu_bf16_features()
    assert features["AVX512-BF16"] == torch.cpu._is_avx512_bf16_supported()
    assert features["AMX"] == torch.cpu._is_amx_tile_supported()
    assert resolve_precision("auto").dtype == ("bf16" if any(features.values()) else "fp32")


def test_the_plan_says_which_precision_runs_and_warns_for_emulated_bf16(monkeypatch, demo_config, root):
    validate_config(demo_config, root / "resources")
    assert demo_config["anneal"]["dtype"] == "auto"
    with_features(monkeypatch)
    assert precision_line(demo_config).startswith("precision: fp32 on this machine's CPU")
    demo_config["anneal"]["dtype"] = "bf16"
    assert "warning: anneal.dtype bf16" in precision_line(demo_config)
    demo_config["resources"]["anneal"] = dict(demo_config["resources"]["default"], gpus=8)
    assert "resolved by each anneal job on its GPUs" in precision_line(demo_config)


def test_an_export_is_bf16_by_default_only_where_a_gpu_trained_and_evaluates_in_bf16():
    assert export_precision("auto", "bf16", on_gpu=True) == "bf16"
    assert export_precision("auto", "bf16", on_gpu=False) == "fp32"  # a CPU evaluates in fp32: the weights as trained
    assert export_precision("auto", "fp32", on_gpu=True) == "fp32"
    assert export_precision("bf16", "fp32", on_gpu=False) == "bf16" and export_precision("fp32", "bf16", True) == "fp32"
    assert export_precision("auto", "bf16", on_gpu=True, trained_from=True) == "fp32"  # a built base, anneals start at
