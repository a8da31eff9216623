"""annealscope prune-branches: which stable-phase branch checkpoints go, which stay and why, and what a
cooldown starts from once its own is gone. The stable job and a cooldown after a prune run for real in
test_branched_grid.py."""

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from annealscope.anneal.checkpoints import COMPLETE, complete_steps, prune, pruned_steps
from annealscope.anneal.prune import stable_phases
from annealscope.anneal.rank import _branch_checkpoint


def checkpoint(directory: Path, step: int, size: int) -> None:
    (directory / f"step{step}").mkdir(parents=True)
    (directory / f"step{step}" / "mp_rank_00_model_states.pt").write_bytes(b"x" * size)


def stable_phase(run_dir: Path, source: str, seed: int, branches: dict[int, int | None], finished: set[int],
                 written: set[int] | None = None) -> Path:
    """A stable phase's folder as the stable job leaves it: a checkpoint at each branch step (`written`, all by
    default) recorded complete, a marker per budget (None: not a budget of this phase), and the cooldown
    summaries of the `finished` budgets."""
    stable = run_dir / "stable" / source / f"seed{seed}"
    directory = stable / "checkpoints"
    directory.mkdir(parents=True)
    steps = {step for step in branches.values() if step is not None} if written is None else written
    for step in steps:
        checkpoint(directory, step, 1000 * step)
    (directory / COMPLETE).write_text(json.dumps({"tags": sorted(f"step{step}" for step in steps)}))
    for budget, step in branches.items():
        (stable / f"branch{budget}.json").write_text(json.dumps({"budget": budget, "step": step}))
    (stable / "branches.json").write_text(json.dumps({"branches": []}))  # the phase's summary, no marker
    for budget in finished:
        summary = run_dir / "anneal" / source / str(budget) / f"seed{seed}" / "summary.json"
        summary.parent.mkdir(parents=True)
        summary.write_text("{}")
    return directory


def test_only_branch_points_whose_cooldowns_all_finished_go_and_each_phase_keeps_its_newest(tmp_path):
    run_dir = tmp_path / "results" / "grid"
    web = stable_phase(run_dir, "web", 0, {100: 4, 200: 8, 300: 12, 400: 16, 50: None}, finished={100, 300, 400})
    (web / "step20").mkdir()  # a checkpoint some rank never finished writing: not the prune's to judge
    shared = stable_phase(run_dir, "given", 1, {100: 4, 150: 4, 200: 8}, finished={100, 200})
    failed = stable_phase(run_dir, "given", 0, {}, finished=set(), written={4, 8})  # stopped before its markers
    busy = stable_phase(run_dir, "web", 1, {100: 4, 200: 8}, finished={100, 200})
    (busy.parent / "launch_port").write_text("29500")  # its stable job is training, for an inserted budget
    phases = {(phase.source, phase.seed): phase for phase in stable_phases(run_dir)}
    assert set(phases) == {("web", 0), ("given", 1), ("web", 1), ("given", 0)}
    assert phases["web", 0].prunable == {4: 4000, 12: 12000}
    assert phases["web", 0].kept == {8: "the cooldown of budget 200 has not finished",
                                     16: "the newest: a larger budget extends the stable phase from it"}
    assert phases["given", 1].prunable == {}  # budget 150 branches at step 4 too, and its cooldown is not done
    assert phases["given", 1].kept[4] == "the cooldown of budget 150 has not finished"
    assert phases["web", 1].prunable == {} and set(phases["web", 1].kept) == {4, 8}
    assert phases["web", 1].kept[4].startswith("its stable job is training")
    assert phases["given", 0].prunable == {} and phases["given", 0].kept[4].startswith("no budget's marker names it")

    dry = subprocess.run(["annealscope", "prune-branches", str(run_dir), "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "would prune 2 branch checkpoint(s) of 4 stable phase(s), 16 kB; kept 8" in dry.stdout
    assert complete_steps(web) == {4: "step4", 8: "step8", 12: "step12", 16: "step16"}

    done = subprocess.run(["annealscope", "prune-branches", str(run_dir)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pruned 2 branch checkpoint(s) of 4 stable phase(s), 16 kB; kept 8" in done.stdout
    assert complete_steps(web) == {8: "step8", 16: "step16"} and pruned_steps(web) == {4, 12}
    assert sorted(path.name for path in web.iterdir() if path.is_dir()) == ["step16", "step20", "step8"]
    assert complete_steps(shared) == complete_steps(busy) == complete_steps(failed) == {4: "step4", 8: "step8"}
    again = subprocess.run(["annealscope", "prune-branches", str(run_dir)], capture_output=True, text=True)
    assert "pruned 0 branch checkpoint(s)" in again.stdout and pruned_steps(web) == {4, 12}


def test_a_prune_cut_short_leaves_no_checkpoint_that_reads_as_complete(tmp_path, monkeypatch):
    directory = stable_phase(tmp_path, "web", 0, {100: 4, 200: 8, 300: 12}, finished={100, 200, 300})
    removed = []

    def killed_after_one(path, **kwargs):
        if removed:
            raise KeyboardInterrupt
        removed.append(path)
        (Path(path) / "mp_rank_00_model_states.pt").unlink()  # half of a checkpoint gone

    monkeypatch.setattr(shutil, "rmtree", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        prune(directory, {4, 8})
    assert complete_steps(directory) == {12: "step12"} and pruned_steps(directory) == {4, 8}


def test_a_run_without_stable_phases_is_refused_naming_the_schedule(tmp_path):
    result = subprocess.run(["annealscope", "prune-branches", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "grid.schedule: branched-wsd" in result.stderr


def test_a_cooldown_starts_from_its_branch_or_below_a_pruned_one_and_refuses_one_that_is_only_missing(tmp_path):
    directory = stable_phase(tmp_path, "web", 0, {100: 4, 200: 8, 300: 12, 400: 16}, finished={100, 200, 300})
    spec = SimpleNamespace(branch_from=str(directory))
    assert _branch_checkpoint(spec, 12) == (directory, "step12")
    prune(directory, {4, 12})
    assert _branch_checkpoint(spec, 12) == (directory, "step8")  # the stable stretch 8..12 is trained again
    assert _branch_checkpoint(spec, 4) is None  # from the base model
    shutil.rmtree(directory / "step16")
    with pytest.raises(FileNotFoundError, match=r"no complete stable-phase checkpoint at step 16.*--forcerun stable"):
        _branch_checkpoint(spec, 16)
