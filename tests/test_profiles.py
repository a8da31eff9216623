"""The shipped Snakemake profiles, on a small workflow of their own: what they make Snakemake do."""

import itertools
import subprocess
import sys

import pytest

SNAKEFILE = """
rule all:
    input: expand("gpu{i}.txt", i=range(3))
rule gpu_job:
    output: "gpu{i}.txt"
    resources: gpu=8
    shell: "date +%s.%N > {output}; sleep 1; date +%s.%N >> {output}"
"""


def gpu_job_intervals(directory, *options) -> list[tuple[float, float]]:
    (directory / "Snakefile").write_text(SNAKEFILE)
    subprocess.run([sys.executable, "-m", "snakemake", "--quiet", "--workflow-profile", "none", *options],
                   cwd=directory, check=True, capture_output=True)
    return sorted(tuple(map(float, path.read_text().split())) for path in directory.glob("gpu*.txt"))


def overlapping(intervals: list[tuple[float, float]]) -> bool:
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(intervals))


@pytest.mark.slow
def test_the_local_profile_runs_jobs_that_ask_for_gpus_one_at_a_time(tmp_path, root):
    """They would all start on the first GPUs (DeepSpeed's launcher takes GPUs 0 to ranks-1)."""
    (tmp_path / "plain").mkdir()
    assert overlapping(gpu_job_intervals(tmp_path / "plain", "--cores", "3"))  # Snakemake alone would overlap them
    (tmp_path / "local").mkdir()
    assert not overlapping(gpu_job_intervals(tmp_path / "local", "--profile", str(root / "profiles" / "local"),
                                             "--cores", "3"))
