"""Real DeepSpeed training on CPU: two data-parallel ranks (gloo), ZeRO stages, Hugging Face export."""

import base64
import importlib.metadata
import json
import re
import sys
from pathlib import Path

import pytest

from annealscope.anneal.checkpoints import complete_tag
from annealscope.anneal.deepspeed_config import deepspeed_config
from annealscope.anneal.launch import deepspeed_command, launch_command, run_training, srun_command
from annealscope.anneal.spec import TrainSpec
from annealscope.core.integrity import EXPORT_RECORD, verify_export
from annealscope.core.io import write_jsonl
from annealscope.core.precision import resolve_precision
from annealscope.core.storage import WEIGHT_BYTES, checkpoint_bytes
from annealscope.core.tokens import TokenArray
from annealscope.curate.tokenize import tokenize_documents


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_base) -> dict:
    """A tiny base model and a token array of real text."""
    directory = tmp_path_factory.mktemp("tiny")
    from annealscope.core.corpora import read_corpus

    write_jsonl(directory / "docs.jsonl", (document.as_record() for document in read_corpus("pydoc:topics")))
    tokenize_documents(directory / "docs.jsonl", tiny_base, directory / "tokens.bin")
    return {"dir": directory, "init": str(tiny_base), "tokens": str(directory / "tokens.bin")}


def spec_for(tiny: dict, name: str, **overrides) -> TrainSpec:
    out = Path(tiny["dir"]) / name
    settings = dict(source_budget_tokens=8192, replay_fraction=0.25, seed=0, seq_len=32, global_batch=8, lr=3e-3,
                    warmup_steps=2, schedule="linear_decay", weight_decay=0.1, gradient_clipping=1.0, zero_stage=1,
                    dtype="auto", ranks=1, threads=1)
    settings.update(overrides)
    return TrainSpec(init_model=tiny["init"], out_dir=str(out / "model"), log_path=str(out / "log.jsonl"),
                     summary_path=str(out / "summary.json"), source_tokens=tiny["tokens"],
                     replay_tokens=tiny["tokens"], **settings)


def check_run(spec: TrainSpec, world_size: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    summary = json.loads(Path(spec.summary_path).read_text())
    assert summary["world_size"] == world_size
    assert summary["source_tokens"] == spec.source_budget_tokens
    log = [json.loads(line) for line in Path(spec.log_path).read_text().splitlines()]
    assert len(log) == summary["steps"]
    assert log[-1]["loss"] < log[0]["loss"]
    model = AutoModelForCausalLM.from_pretrained(spec.out_dir)
    assert AutoTokenizer.from_pretrained(spec.out_dir).eos_token == "<|endoftext|>"
    assert (Path(spec.out_dir).parent / "checkpoints").exists() == spec.keep_checkpoints
    assert log[-1]["source_tokens"] == summary["source_tokens"] and log[-1]["replay_tokens"] == summary["replay_tokens"]
    verify_export(spec.out_dir)  # the export recorded its files' hashes
    assert (Path(spec.out_dir) / EXPORT_RECORD).is_file()
    precision = resolve_precision(spec.dtype)  # what ran, and why, on this machine's CPU
    assert (summary["dtype"], summary["dtype_reason"]) == (precision.dtype, precision.reason)
    assert {record["dtype"] for record in log} == {precision.dtype}
    assert summary["software"] == {package: importlib.metadata.version(package)  # what collect compares
                                   for package in ("torch", "deepspeed", "transformers")}
    return {"summary": summary, "model": model, "log": log}


@pytest.mark.slow
def test_two_data_parallel_ranks_train_and_export(tiny):
    spec = spec_for(tiny, "two_ranks", ranks=2, zero_stage=2, micro_batch=2, activation_checkpointing=True,
                    schedule="cosine", peak_flops=1e12, keep_checkpoints=True)
    buffers_before = set(Path("/dev/shm").glob("deepspeed_allreduce_buffer_*"))
    run_training(spec)
    assert set(Path("/dev/shm").glob("deepspeed_allreduce_buffer_*")) <= buffers_before  # no shared memory leaked
    run = check_run(spec, world_size=2)
    assert run["summary"]["gradient_accumulation"] == 2
    assert run["summary"]["parameters_per_rank"] == run["summary"]["parameters"]  # ZeRO-2: whole model per rank
    assert run["summary"]["peak_rss_mb"] > 0
    assert 0 < run["log"][0]["mfu"] < 1 and run["summary"]["mfu"] > 0
    assert run["log"][-1]["lr"] < 1e-4 * spec.lr
    the_disk_is_what_the_plan_charges(spec, run["summary"])


@pytest.mark.slow
def test_zero3_builds_the_model_partitioned_and_gathers_its_weights_for_the_export(tiny, tmp_path):
    import torch
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    spec = spec_for(tiny, "zero3", zero_stage=3, ranks=2, dtype="fp32", keep_checkpoints=True, export_dtype="bf16")
    run_training(spec)
    run = check_run(spec, world_size=2)
    summary, exported = run["summary"], run["model"]
    assert summary["parameters"] == exported.num_parameters()
    assert summary["parameters_per_rank"] < 0.6 * summary["parameters"]  # each rank built only its partition
    from transformers import AutoModelForCausalLM

    initial = AutoModelForCausalLM.from_pretrained(tiny["init"])
    weight = "model.layers.0.mlp.down_proj.weight"
    trained = dict(exported.named_parameters())[weight]
    assert trained.shape == dict(initial.named_parameters())[weight].shape
    assert not torch.equal(trained, dict(initial.named_parameters())[weight])
    assert summary["export_dtype"] == "bf16" and trained.dtype == torch.bfloat16  # as asked, though trained in fp32
    # evaluation on a GPU loads an export in bf16: from the bf16 export it gets what it gets from an fp32 one
    master = get_fp32_state_dict_from_zero_checkpoint(str(Path(spec.out_dir).parent / "checkpoints"), tag="final")
    fp32 = AutoModelForCausalLM.from_pretrained(tiny["init"], dtype=torch.float32)
    fp32.load_state_dict(master, strict=False)
    fp32.save_pretrained(tmp_path / "fp32")
    loaded = [AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).state_dict()
              for path in (tmp_path / "fp32", spec.out_dir)]
    assert loaded[0].keys() == loaded[1].keys() and all(torch.equal(loaded[0][name], loaded[1][name])
                                                        for name in loaded[0])
    assert torch.equal(trained, master[weight].to(torch.bfloat16))
    the_disk_is_what_the_plan_charges(spec, summary)


def the_disk_is_what_the_plan_charges(spec: TrainSpec, summary: dict) -> None:
    """The export and the final DeepSpeed checkpoint hold the bytes a parameter that the disk plan charges, and
    a little more for their files' headers (a tenth at most on this tiny model): an export 4 in fp32 and 2 in
    bf16, a checkpoint under ZeRO-2 14 in bf16 and 16 in fp32, under ZeRO-3 12."""
    def size(files) -> int:
        return sum(path.stat().st_size for path in files if path.is_file())

    checkpoint = size((Path(spec.out_dir).parent / "checkpoints" / "final").rglob("*"))
    export = size(Path(spec.out_dir).glob("*.safetensors"))
    for measured, planned in ((checkpoint, checkpoint_bytes(spec.zero_stage, summary["dtype"])),
                              (export, WEIGHT_BYTES[summary["export_dtype"]])):
        assert planned <= measured / summary["parameters"] <= 1.1 * planned, (measured, planned)


def test_the_export_check_reads_every_saved_tensor_and_finds_one_that_differs(tiny, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from annealscope.anneal.rank import compare_saved

    model = AutoModelForCausalLM.from_pretrained(tiny["init"])
    model.save_pretrained(tmp_path, max_shard_size="20KB")  # several files
    assert len(list(tmp_path.glob("*.safetensors"))) > 1
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    assert compare_saved(tmp_path, state) == ([], set(state) - tied)
    state["model.norm.weight"][0] += 1e-3
    assert compare_saved(tmp_path, state)[0] == ["model.norm.weight"]
    assert not torch.equal(state["model.norm.weight"], model.state_dict()["model.norm.weight"])


@pytest.mark.slow
def test_compiled_eager_attention_with_small_buckets_trains_as_the_defaults_do(tiny):
    """The throughput knobs change how a step runs, not what it computes: the same losses within float noise."""
    losses = {}
    for name, knobs in {"default": {}, "knobs": {"attention": "eager", "compile": True, "communication": {
            "overlap_comm": False, "reduce_bucket_size": 4096, "allgather_bucket_size": 4096}}}.items():
        spec = spec_for(tiny, name, ranks=2, dtype="fp32", source_budget_tokens=2048, **knobs)
        run_training(spec)
        losses[name] = [record["loss"] for record in check_run(spec, world_size=2)["log"]]
    assert losses["knobs"] == pytest.approx(losses["default"], rel=1e-3)


@pytest.mark.slow
def test_monitors_record_every_step_of_the_training_log_under_the_job_s_folder(tiny, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_MODE", "offline")
    spec = spec_for(tiny, "monitored", ranks=2, dtype="fp32", source_budget_tokens=2048,
                    monitor={"backends": ["tensorboard", "csv", "wandb"], "project": "test"})
    run_training(spec)
    log = check_run(spec, world_size=2)["log"]
    folder = Path(spec.out_dir).parent / "monitor"
    events = EventAccumulator(str(folder / "tensorboard")).Reload()
    losses = [event.value for event in events.Scalars("annealscope/loss")]
    assert losses == pytest.approx([record["loss"] for record in log]) and len(losses) == len(log) > 2
    assert "Train/Samples/lr" in events.Tags()["scalars"]  # DeepSpeed's own events beside ours
    rows = (folder / "csv" / "annealscope_tokens_per_s.csv").read_text().splitlines()
    assert len(rows) == 1 + len(log)
    assert list((folder / "wandb").glob("offline-run-*"))  # W&B's offline run, beside the others


def test_a_job_s_tracker_run_is_named_by_its_cell():
    from annealscope.core.tracking import run_names

    assert run_names("results/math-7b/anneal/owm/1000000/seed1/model") == ("math-7b", "anneal/owm/1000000/seed1")
    assert run_names("/x/results/demo/stable/web/seed0/model") == ("demo", "stable/web/seed0")
    assert run_names("/tmp/work/cell/model") == ("work", "cell")


@pytest.mark.slow
def test_a_failed_job_names_its_outputs_and_leaves_none(tiny):
    spec = spec_for(tiny, "broken", seq_len=4096)
    with pytest.raises(RuntimeError, match="training job"):
        run_training(spec)
    assert not Path(spec.out_dir).exists() and not Path(spec.summary_path).exists()


def test_token_array_sidecar_is_exact(tiny):
    array = TokenArray.open(tiny["tokens"])
    assert array.size == array.meta["tokens"]
    assert array.dtype.name == "uint16"


@pytest.mark.slow
def test_a_killed_job_resumes_from_its_last_checkpoint_and_ends_where_an_uninterrupted_run_does(tiny):
    import os
    import signal
    import subprocess
    import sys
    import time

    settings = dict(ranks=2, source_budget_tokens=49152, checkpoint_every=10, dtype="fp32")
    reference = spec_for(tiny, "uninterrupted", **settings)
    run_training(reference)
    spec = spec_for(tiny, "killed", **settings)
    checkpoints = Path(spec.out_dir).parent / "checkpoints"
    code = (f"from annealscope.anneal.spec import TrainSpec; from annealscope.anneal.launch import run_training; "
            f"run_training(TrainSpec.load({str(Path(spec.out_dir).parent / 'spec.json')!r}))")
    spec.save(Path(spec.out_dir).parent / "spec.json")
    job = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while complete_tag(checkpoints) != "step20" and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert not Path(spec.summary_path).exists(), "the job finished before it could be killed"
    port = (Path(spec.summary_path).parent / "launch_port").read_text()
    assert list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*"))  # left by the killed job
    run_training(spec)
    assert not list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*"))  # removed by the rerun
    resumed = check_run(spec, world_size=2)
    expected = json.loads(Path(reference.summary_path).read_text())
    assert 20 <= resumed["summary"]["resumed_from_step"] < expected["steps"]
    assert resumed["summary"]["steps"] == expected["steps"]
    assert resumed["summary"]["final_loss"] == pytest.approx(expected["final_loss"], rel=1e-3)


@pytest.mark.slow
def test_divergence_stops_the_job_naming_the_step_and_keeps_the_last_good_checkpoint(tiny, capfd):
    spec = spec_for(tiny, "diverging", lr=30.0, warmup_steps=0, dtype="fp32", checkpoint_every=1)
    with pytest.raises(RuntimeError, match="training job"):
        run_training(spec)
    output = capfd.readouterr()
    assert re.search(r"training diverged at step [1-9]\d*: the loss", output.out + output.err)
    assert re.search(r"the last good checkpoint is \S+/checkpoints/step\d+", output.out + output.err)
    assert complete_tag(Path(spec.out_dir).parent / "checkpoints") is not None
    assert not Path(spec.out_dir).exists()


def test_deepspeed_config_derives_accumulation_offload_and_takes_overrides(tiny):
    spec = spec_for(tiny, "config", global_batch=32, micro_batch=4, offload_optimizer=True, zero_stage=2,
                    communication={"reduce_bucket_size": 1000, "max_live_parameters": 2000},
                    deepspeed={"zero_optimization": {"overlap_comm": False}, "gradient_clipping": 0.5})
    config = deepspeed_config(spec, world_size=2, hidden_size=64)
    assert config["gradient_accumulation_steps"] == 4 and config["train_micro_batch_size_per_gpu"] == 4
    assert config["zero_optimization"] == {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memory": False},
                                           "overlap_comm": False, "contiguous_gradients": True,
                                           "reduce_bucket_size": 1000}
    assert config["gradient_clipping"] == 0.5 and config["optimizer"]["params"]["torch_adam"] is False
    with pytest.raises(ValueError, match="micro_batch"):
        deepspeed_config(spec_for(tiny, "config", global_batch=32, micro_batch=3), world_size=2, hidden_size=64)


def test_bucket_sizes_follow_the_model_width_unless_set(tiny):
    """As transformers' Trainer fills DeepSpeed's `auto`: h*h, 0.9*h*h, 10*h; set values and ZeRO-3-only keys."""
    zero3 = deepspeed_config(spec_for(tiny, "config", zero_stage=3, communication={"max_live_parameters": 2000}),
                             world_size=1, hidden_size=4096)["zero_optimization"]
    assert (zero3["reduce_bucket_size"], zero3["stage3_prefetch_bucket_size"],
            zero3["stage3_param_persistence_threshold"], zero3["stage3_max_live_parameters"]) == (
        4096 * 4096, 15099494, 40960, 2000)
    zero1 = deepspeed_config(spec_for(tiny, "config", zero_stage=1, communication={"reduce_bucket_size": 7}),
                             world_size=1, hidden_size=4096)["zero_optimization"]
    assert zero1["reduce_bucket_size"] == 7 and not any(key.startswith("stage3_") for key in zero1)


def test_multi_node_launch_is_srun_torchrun_from_the_slurm_allocation(tiny):
    command = srun_command("spec.json", nodes=4, ranks_per_node=8, master_addr="gpu01", master_port=29600,
                           job_id="123")
    assert command == ["srun", "--nodes=4", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "torchrun",
                       "--nnodes=4", "--nproc-per-node=8", "--rdzv-id=123", "--rdzv-backend=c10d",
                       "--rdzv-endpoint=gpu01:29600", "-m", "annealscope.anneal.rank", "--spec", "spec.json"]
    spec = spec_for(tiny, "nodes", nodes=2, ranks=8, global_batch=16)
    with pytest.raises(RuntimeError, match=r"anneal\.nodes is 2, but this job holds no SLURM nodes"):
        launch_command("spec.json", spec, {}, 29600)
    assert launch_command("spec.json", spec_for(tiny, "one"), {}, 29600)[:4] == [
        sys.executable, "-u", "-m", "annealscope.anneal.node_launcher"]


def test_deepspeed_command_line():
    command = deepspeed_command("spec.json", 2, 29501)
    assert command[:4] == ["python", "-u", "-m", "annealscope.anneal.node_launcher"] and command[-5:] == [
        "--master_port=29501", "--module", "annealscope.anneal.rank", "--spec", "spec.json"]
    world = next(part for part in command if part.startswith("--world_info=")).removeprefix("--world_info=")
    assert json.loads(base64.urlsafe_b64decode(world)) == {"localhost": [0, 1]}


@pytest.mark.parametrize(("ranks", "code"), [(2, 0), (2, 3), (1, 5)])
def test_the_node_launcher_ends_with_its_ranks_exit_code(ranks, code):
    import subprocess

    world = base64.urlsafe_b64encode(json.dumps({"localhost": list(range(ranks))}).encode()).decode()
    rank_exit = f"exit $(( RANK == {ranks - 1} ? {code} : 0 ))"  # the last rank's code, the others succeed
    ended = subprocess.run([sys.executable, "-m", "annealscope.anneal.node_launcher", f"--world_info={world}",
                            "--master_addr=127.0.0.1", "--master_port=29650", "--no_python", "--no_local_rank",
                            "sh", "-c", rank_exit], capture_output=True, text=True, timeout=120)
    assert ended.returncode == code, ended.stderr[-2000:]


def test_orphaned_shared_memory_buffers_are_removed_and_mapped_ones_kept(tmp_path):
    import mmap

    from annealscope.anneal.launch import remove_orphaned_shm_buffers

    orphan = tmp_path / "deepspeed_allreduce_buffer_0_127.0.0.1_1111_0"
    live = tmp_path / "deepspeed_allreduce_buffer_0_127.0.0.1_2222_0"
    for buffer in (orphan, live):
        buffer.write_bytes(b"\0" * 4096)
    with open(live, "r+b") as handle, mmap.mmap(handle.fileno(), 4096):  # as a running rank maps it
        assert remove_orphaned_shm_buffers(tmp_path) == 1
        assert live.exists() and not orphan.exists()
