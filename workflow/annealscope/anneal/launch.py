"""Launching a training job: the `deepspeed` command line built from the spec and the rule's resources."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from annealscope.anneal.spec import TrainSpec

LAUNCH_PORT = "launch_port"  # beside a job's spec while its ranks run: the port, to clean up after a kill


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def deepspeed_command(spec_path: str | Path, ranks: int, master_port: int, python: str = "python") -> list[str]:
    """The single-node launch: DeepSpeed's node launcher (`deepspeed.launcher.launch`, what the `deepspeed`
    command runs on each node, through `annealscope.anneal.node_launcher`, which cuts its waits) starting one
    process per rank (GPU, or CPU core group). Called directly, not through the `deepspeed` command, whose
    runner is one more Python process importing DeepSpeed (about 2 s a job) and only resolves hosts, which one
    node does not need."""
    world = base64.urlsafe_b64encode(json.dumps({"localhost": list(range(ranks))}).encode()).decode()
    return [python, "-u", "-m", "annealscope.anneal.node_launcher", f"--world_info={world}",
            "--master_addr=127.0.0.1", f"--master_port={master_port}", "--module", "annealscope.anneal.rank",
            "--spec", str(spec_path)]


def srun_command(spec_path: str | Path, nodes: int, ranks_per_node: int, master_addr: str, master_port: int,
                 job_id: str) -> list[str]:
    """The multi-node launch under SLURM: one `torchrun` per node started by `srun`, meeting at the first
    node by c10d rendezvous; each starts `ranks_per_node` ranks (one per GPU)."""
    return ["srun", f"--nodes={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
            "torchrun", f"--nnodes={nodes}", f"--nproc-per-node={ranks_per_node}", f"--rdzv-id={job_id}",
            "--rdzv-backend=c10d", f"--rdzv-endpoint={master_addr}:{master_port}",
            "-m", "annealscope.anneal.rank", "--spec", str(spec_path)]


def slurm_hosts(nodelist: str) -> list[str]:
    """SLURM's compressed node list (e.g. ``gpu[01-04]``) expanded by `scontrol show hostnames`."""
    result = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
    return result.stdout.split()


def launch_command(spec_path: str | Path, spec: TrainSpec, environment: dict[str, str], port: int) -> list[str]:
    """DeepSpeed's launcher on one node; `srun` + `torchrun` across `spec.nodes` nodes of the SLURM allocation."""
    if spec.nodes == 1:
        return deepspeed_command(spec_path, spec.ranks, port, sys.executable)
    allocated = int(environment.get("SLURM_NNODES", "0"))
    if allocated != spec.nodes:
        raise RuntimeError(f"anneal.nodes is {spec.nodes}, but this job holds {allocated or 'no'} SLURM nodes; "
                           "multi-node anneals run under SLURM (snakemake --profile slurm) with the rule's nodes")
    master = slurm_hosts(environment["SLURM_JOB_NODELIST"])[0]
    return srun_command(spec_path, spec.nodes, spec.ranks, master, port, environment["SLURM_JOB_ID"])


# Without anneal.compile, torch.compile is off in the launcher and the ranks: DeepSpeed's engine imports its Muon
# optimizer to recognise one, and that import wraps a kernel in torch.compile, about 1 s a rank on the AVX-512
# EPYC; with TorchDynamo disabled the wrapping is immediate (and nothing else compiles).
NO_COMPILE = {"TORCHDYNAMO_DISABLE": "1"}
SHM = Path("/dev/shm")
SHM_BUFFERS = "deepspeed_allreduce_buffer_*"


def remove_shm_buffers(port: int, directory: Path = SHM) -> int:
    """Delete DeepSpeed's CPU all-reduce buffers of the job that used `port`.

    DeepSpeed's shared-memory all-reduce (CPU, ranks on one node) leaves a ~69 MB file per rank in
    /dev/shm, named with the master port, and never unlinks it: without this, every job leaks RAM."""
    buffers = list(directory.glob(f"{SHM_BUFFERS.removesuffix('*')}*_{port}_*"))
    for buffer in buffers:
        buffer.unlink(missing_ok=True)
    return len(buffers)


def remove_orphaned_shm_buffers(directory: Path = SHM, proc: Path = Path("/proc")) -> int:
    """Delete every DeepSpeed all-reduce buffer that no live process maps, whatever became of the job (or the
    results folder) that made it; a running job's buffers are mapped by its ranks and are kept."""
    buffers = {str(buffer) for buffer in directory.glob(SHM_BUFFERS)}
    if not buffers:
        return 0
    for maps in proc.glob("[0-9]*/maps"):
        try:
            mapped = [line.split(maxsplit=5) for line in maps.read_text().splitlines()]
        except OSError:  # the process ended, or is not ours to read
            continue
        buffers -= {fields[5].strip() for fields in mapped if len(fields) == 6}
    for buffer in buffers:
        Path(buffer).unlink(missing_ok=True)
    return len(buffers)


def run_training(spec: TrainSpec) -> None:
    """Write the spec beside the outputs, launch the ranks, and check that the outputs appeared."""
    spec_path = Path(spec.summary_path).with_name("train_spec.json")
    spec.save(spec_path)
    environment = dict(os.environ, OMP_NUM_THREADS=str(spec.threads), PYTHONUNBUFFERED="1",
                       **({} if spec.compile else NO_COMPILE))
    port_file = spec_path.with_name(LAUNCH_PORT)
    if port_file.is_file():  # an earlier launch of this cell was killed before it could clean up
        remove_shm_buffers(int(port_file.read_text()))
    remove_orphaned_shm_buffers()  # those of jobs whose folders are gone, or that no one cleaned
    port = free_port()
    port_file.write_text(str(port))
    command = launch_command(spec_path, spec, environment, port)
    print("launch:", " ".join(command), flush=True)
    try:
        completed = subprocess.run(command, env=environment, check=False)
    finally:
        remove_shm_buffers(port)
        port_file.unlink(missing_ok=True)
    missing = [path for path in spec.outputs() if not Path(path).exists()]
    if completed.returncode != 0 or missing:
        raise RuntimeError(f"training job for {spec.out_dir} failed (exit {completed.returncode}); "
                           f"missing outputs: {missing}; see the log above")
