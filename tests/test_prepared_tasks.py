"""The prepared tasks' record of what they were prepared from: the order of the tasks, which the rules that
prepare and score them keep while the tasks are the same, and the task YAMLs of eval.include_path and their
Python helpers that they read."""

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from annealscope.core.config import ConfigError
from annealscope.core.io import read_json, write_json, write_jsonl
from annealscope.core.layout import PREPARED_RECORD
from annealscope.evaluate.tasks import (
    PREPARING_VARIABLE,
    TaskSources,
    prepare_tasks,
    task_file_inputs,
    task_sources,
    tracks_helpers,
    unread_task_files,
)

ROOT = Path(__file__).resolve().parent.parent


def test_prepared_tasks_keep_the_order_they_were_prepared_in_while_the_tasks_are_the_same(tmp_path):
    """What prepare_tasks writes does not depend on the order of its tasks and held-out corpora, so the rule's
    parameters take the order the folder was prepared in: reordering eval.tasks or eval.heldout reruns nothing,
    while any other change, or a folder prepared before the order was recorded, takes the configured order."""
    from annealscope.core.decontamination import prepared_subset

    for name in ("x", "y"):
        write_jsonl(tmp_path / f"{name}.jsonl", ({"text": f"{name} document {i} " * 5} for i in range(30)))
    heldout = {"y": [str(tmp_path / "y.jsonl")], "x": [str(tmp_path / "x.jsonl")]}
    folders = {order: tmp_path / order for order in ("given", "reversed")}
    prepare_tasks(["mmlu_math", "arith_mc"], ROOT / "resources", folders["given"], heldout, heldout_documents=20)
    prepare_tasks(["arith_mc", "mmlu_math"], ROOT / "resources", folders["reversed"], dict(reversed(heldout.items())),
                  heldout_documents=20)
    written = {order: {path.relative_to(folder): path.read_bytes().replace(bytes(folder), b"")
                       for path in folder.rglob("*") if path.is_file() and path.name != PREPARED_RECORD}
               for order, folder in folders.items()}
    assert written["given"] == written["reversed"] and len(written["given"]) == 8

    evaluation = {"tasks": ["arith_mc", "mmlu_math"], "heldout": {"x": heldout["x"], "y": heldout["y"]},
                  "decontaminate": None}
    names = ["arith_mc", "mmlu_math", "heldout_x", "heldout_y"]
    prepared = prepared_subset(evaluation, names, folders["given"])
    assert prepared == (["mmlu_math", "arith_mc"], heldout) and list(prepared[1]) == ["y", "x"]
    configured = (["arith_mc", "mmlu_math"], evaluation["heldout"])
    assert prepared_subset(evaluation, names[:3], folders["given"]) == (configured[0], {"x": heldout["x"]})
    evaluation["heldout"]["x"] = [heldout["x"][0], heldout["y"][0]]
    assert prepared_subset(evaluation, names, folders["given"]) == configured
    evaluation["heldout"]["x"] = heldout["x"]
    (folders["given"] / PREPARED_RECORD).unlink()
    assert list(prepared_subset(evaluation, names, folders["given"])[1]) == ["x", "y"]


def test_the_evaluation_settings_of_reordered_tasks_are_those_of_the_order_they_were_prepared_in(demo_config):
    from annealscope.core.layout import evaluated_task_names
    from annealscope.core.settings import RuleSettings
    from annealscope.validation import validate_config

    demo_config["eval"]["tasks"] = ["arith_mc", "mmlu_math"]
    validate_config(demo_config, ROOT / "resources", tasks=False)
    before = RuleSettings(copy.deepcopy(demo_config))
    prepared = evaluated_task_names(demo_config["eval"])
    demo_config["eval"]["tasks"].reverse()
    after = RuleSettings(demo_config)
    assert after.evaluation(prepared) == before.evaluation() != after.evaluation()
    assert after.evaluation(prepared[:2]) == after.evaluation()  # other tasks: the configured order


def task_yaml(folder: Path, name: str, **fields) -> str:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(fields))
    return str(path)


def test_a_folder_reads_the_yamls_it_was_prepared_from_and_each_new_one_that_may_build_its_tasks(tmp_path):
    """Without a record every candidate is an input, as before the record existed; with one, the recorded files
    and, of the new ones, each that defines a task, group member or tag the folder prepares, or that an input
    includes, or that cannot be read. A YAML for another task is none."""
    mine = tmp_path / "mine"
    mine.mkdir()
    recorded = [task_yaml(mine, "a", task="a", include="common.yaml"), task_yaml(mine, "common", output_type="x"),
                task_yaml(mine, "g", group="g", task=["b", {"task": "inline"}]), task_yaml(mine, "b", task="b")]
    folder = tmp_path / "tasks"
    folder.mkdir()
    new = [task_yaml(mine, "other", task="other"), task_yaml(mine, "other_group", group="og", task=["a", "other"]),
           task_yaml(mine, "b_moved", task="b"), task_yaml(mine, "tagged", task="c", tag=["a_tag", "g"]),
           task_yaml(mine, "uses_base", task="d", include="base.yaml"), task_yaml(mine, "base", output_type="y")]
    (mine / "broken.yaml").write_text("task: [unclosed\n")
    candidates = sorted([*recorded, *new, str(mine / "broken.yaml")])
    assert task_file_inputs(candidates, ["a", "g"], folder, mine) == candidates  # prepared before the record
    assert task_file_inputs(candidates, ["a", "g"], tmp_path / "unprepared", mine) == sorted(
        [*recorded, str(mine / "b_moved.yaml"), str(mine / "tagged.yaml"), str(mine / "broken.yaml")])
    write_json(folder / PREPARED_RECORD, {"tasks": ["a", "g"], "heldout": {},
                                          "task_files": [Path(file).name for file in recorded]})
    inputs = task_file_inputs(candidates, ["a", "g"], folder, mine)
    assert inputs == sorted([*recorded, str(mine / "b_moved.yaml"), str(mine / "tagged.yaml"),
                             str(mine / "broken.yaml")])
    assert unread_task_files(candidates, inputs, mine) == ["base.yaml", "other.yaml", "other_group.yaml",
                                                          "uses_base.yaml"]
    (mine / "b_moved.yaml").write_text(yaml.safe_dump({"task": "d2", "include": "base.yaml"}))
    assert str(mine / "base.yaml") not in task_file_inputs(candidates, ["a", "g"], folder, mine)
    (mine / "a.yaml").write_text(yaml.safe_dump({"task": "a", "include": "base.yaml"}))
    assert str(mine / "base.yaml") in task_file_inputs(candidates, ["a", "g"], folder, mine)
    (mine / "a.yaml").write_text(yaml.safe_dump({"task": "a", "include": ["common.yaml", "base.yaml"]}))
    assert str(mine / "base.yaml") in task_file_inputs(candidates, ["a", "g"], folder, mine)


def test_the_prepared_record_lists_every_yaml_of_include_path_but_those_the_workflow_says_it_does_not_read(
        tmp_path, monkeypatch):
    """What the next plan reads as the folder's inputs must be what Snakemake recorded as this job's inputs,
    else everything downstream would rerun: the job lists the folder, less the YAMLs the workflow passed as
    unread (a listing alone would count a YAML added for another task as read)."""
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    for name in ("a", "other", "sub/b"):
        task_yaml(mine, name, task=name.split("/")[-1])
    out = tmp_path / "tasks"
    monkeypatch.setenv(PREPARING_VARIABLE, json.dumps({str(out): {"unread": ["other.yaml"]},
                                                       str(tmp_path / "elsewhere"): {"unread": ["a.yaml"]}}))
    prepare_tasks(["arith_mc"], ROOT / "resources", out, include_path=mine)
    assert read_json(out / PREPARED_RECORD)["task_files"] == ["a.yaml", "sub/b.yaml"]
    monkeypatch.delenv(PREPARING_VARIABLE)
    prepare_tasks(["arith_mc"], ROOT / "resources", out, include_path=mine)
    assert read_json(out / PREPARED_RECORD)["task_files"] == ["a.yaml", "other.yaml", "sub/b.yaml"]


def test_the_helpers_a_yaml_names_are_told_apart_by_whether_they_build_documents_or_only_score(tmp_path):
    """lm-eval imports `module.py` beside the YAML for `!function module.name` (`a/b.py` for `a.b.name`), at any
    depth of any key, else an installed module. A file named by a document-building key (and by a scoring one)
    can change the decontamination texts; one named only by process_results, metric_list, filter_list or
    aggregate_metric_list changes only the scores."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "task.yaml").write_text("""
task: t
class: !function custom.MyTask
process_docs: !function docs.clean
doc_to_text: !function shared.prompt
dataset_kwargs: {data_files: {test: x.jsonl}}
process_results: !function shared.score
metric_list:
  - metric: !function metrics.exact
    aggregation: !function metrics.mean
filter_list:
  - name: strict
    filter: [{function: custom, filter_fn: !function filters.pick}]
aggregate_metric_list: [{metric: acc, aggregation: !function groups.mean}]
""")
    (tmp_path / "other.yaml").write_text("task: o\ndoc_to_target: !function deep.pkg.target\n"
                                         "process_results: !function json.loads\n")  # an installed module
    (tmp_path / "deep").mkdir()
    for name in ("sub/custom", "sub/docs", "sub/shared", "sub/metrics", "sub/filters", "sub/groups", "deep/pkg"):
        (tmp_path / f"{name}.py").write_text("")
    (tmp_path / "broken.yaml").write_text("task: [!function docs.x\n")
    files = [str(tmp_path / name) for name in ("sub/task.yaml", "other.yaml", "broken.yaml")]
    sources = task_sources(files, tmp_path)
    assert sources.building == sorted(str(tmp_path / name) for name in
                                      ("sub/custom.py", "sub/docs.py", "sub/shared.py", "deep/pkg.py"))
    assert sources.scoring == sorted(str(tmp_path / "sub" / name) for name in ("filters.py", "groups.py", "metrics.py"))
    assert task_sources(files[1:], tmp_path) == TaskSources([str(tmp_path / "deep/pkg.py")], [], "", [])
    (tmp_path / "sub" / "metrics.py").unlink()
    with pytest.raises(ConfigError, match=r"task.yaml: metric_list names !function metrics.exact, but .*metrics.py "
                                          r"is not there nor is metrics an installed module"):
        task_sources(files, tmp_path)
    (tmp_path / "other.yaml").write_text("task: o\ndoc_to_target: !function target\n")
    with pytest.raises(ConfigError, match=r"other.yaml: doc_to_target names !function target, without its module"):
        task_sources(files[1:], tmp_path)


def test_the_templates_a_yaml_includes_are_read_with_their_helpers_and_datasets(tmp_path):
    """lm-eval's own task folders keep shared keys in a template without the .yaml suffix, which no listing of
    task YAMLs finds: the include (one or a list, relative to the including file) is followed, to its helpers and
    its dataset, and an include of a missing file is refused naming the YAML. Datasets are told by file, relative
    to include_path."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "_default_template_yaml").write_text(
        "dataset_path: org/bench\ndataset_name: x\ndoc_to_text: !function utils.prompt\ninclude: ../base.yaml\n")
    (tmp_path / "sub" / "utils.py").write_text("")
    (tmp_path / "base.yaml").write_text("output_type: multiple_choice\n")
    files = [str(tmp_path / "sub" / "a.yaml"), task_yaml(tmp_path, "b", task="b", doc_to_text="{{q}}")]
    (tmp_path / "sub" / "a.yaml").write_text("task: a\ninclude: [_default_template_yaml]\n")
    sources = task_sources(files, tmp_path)
    assert sources.templates == sorted([str(tmp_path / "sub" / "_default_template_yaml"), str(tmp_path / "base.yaml")])
    assert sources.prepared == sorted([*sources.templates, str(tmp_path / "sub" / "utils.py")])
    assert json.loads(sources.datasets) == {"sub/_default_template_yaml": {"dataset_path": "org/bench",
                                                                         "dataset_name": "x"}}
    assert task_sources(files[1:], tmp_path).datasets == ""
    (tmp_path / "base.yaml").unlink()
    with pytest.raises(ConfigError, match=r"_default_template_yaml: include names .*base.yaml, which is not there"):
        task_sources(files, tmp_path)


def test_helpers_are_inputs_of_folders_not_yet_prepared_or_prepared_with_them_and_the_job_records_them(
        tmp_path, monkeypatch):
    """A folder prepared before its record listed helpers keeps the inputs Snakemake recorded for its job (adding
    the helpers would retrain every cell once); the job records the helpers the workflow made its inputs."""
    out = tmp_path / "tasks"
    assert tracks_helpers(out)
    prepare_tasks(["arith_mc"], ROOT / "resources", out)
    assert "helpers" not in read_json(out / PREPARED_RECORD) and not tracks_helpers(out)
    monkeypatch.setenv(PREPARING_VARIABLE, json.dumps({str(out): {"unread": [], "helpers": ["utils.py"]},
                                                       str(tmp_path / "other"): {"unread": [], "helpers": ["x.py"]}}))
    prepare_tasks(["arith_mc"], ROOT / "resources", out)
    assert read_json(out / PREPARED_RECORD)["helpers"] == ["utils.py"] and tracks_helpers(out)
    (out / PREPARED_RECORD).unlink()
    assert not tracks_helpers(out)


def test_a_screened_task_s_own_yaml_and_helper_are_inputs_of_its_preparation_not_of_decontamination(
        demo_config, tmp_path):
    """A dry run: the decontaminated tasks' preparation reads neither the screened task's YAML nor its helper,
    which its own preparation reads, so editing them reruns no curation."""
    mine = tmp_path / "my_tasks"
    mine.mkdir()
    (mine / "capitals.yaml").write_text("task: capitals\ndataset_path: json\nprocess_docs: !function helpers.docs\n")
    (mine / "helpers.py").write_text("")
    demo_config["eval"] |= {"tasks": ["arith_mc", "capitals"], "include_path": str(mine), "heldout": {},
                            "decontaminate": ["arith_mc"]}
    demo_config |= {"run": "test-screened-yaml", "cache_dir": str(tmp_path / "cache")}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(demo_config))
    folders = ["results/test-screened-yaml/tasks", "results/test-screened-yaml/tasks_screened"]
    result = subprocess.run([sys.executable, "-m", "snakemake", "--configfile", str(config), "--directory", str(ROOT),
                             "-n", *folders], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {block.split(":", 1)[0]: block for block in result.stdout.split("\nrule ")[1:]}
    assert "my_tasks" not in jobs["prepare_tasks"]
    assert all(str(mine / name) in jobs["prepare_screened_tasks"] for name in ("capitals.yaml", "helpers.py"))


HELPERS = {"helpers.py": "def documents(dataset):\n    return dataset.map(lambda doc: {'country': doc['country']})\n",
           "scoring.py": "def score(doc, results):\n    return {'exact_match': float(results[0] == doc['capital'])}\n"}


@pytest.mark.slow
def test_a_yaml_added_to_include_path_for_another_task_reruns_no_preparation_and_an_edited_one_or_helper_does(
        demo_config, tmp_path):
    """Through Snakemake: the prepared tasks' rule runs once, then plans nothing when a YAML for a task it does
    not prepare is added or edited or a helper that only scores is edited, and runs again when a YAML it reads, a
    helper that builds its documents or a template it includes changes. The scoring helper is an input of the
    evaluations. A task's dataset, changed, is fetched again; its prompt, changed, is not. A folder an earlier
    annealscope prepared is named in the plan, with what it does not track."""
    data = tmp_path / "capitals.jsonl"
    write_jsonl(data, [{"country": country, "capital": capital}
                       for country, capital in [("France", "Paris"), ("Italy", "Rome"), ("Peru", "Lima")]])
    mine = tmp_path / "my_tasks"
    mine.mkdir()
    spec = {"task": "capitals", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test", "output_type": "generate_until", "doc_to_text": "The capital of {{country}} is",
            "doc_to_target": "{{capital}}", "metric_list": [{"metric": "exact_match"}]}
    tags = ("process_docs: !function helpers.documents\nprocess_results: !function scoring.score\n"
            "include: _capitals_template_yaml\n")  # as lm-eval's own task folders share keys
    (mine / "capitals.yaml").write_text(yaml.safe_dump(spec) + tags)
    (mine / "_capitals_template_yaml").write_text("metadata: {version: 1.0}\n")
    for name, text in HELPERS.items():
        (mine / name).write_text(text)
    task_yaml(mine, "unrelated", **{**spec, "task": "unrelated"})
    demo_config["eval"] |= {"tasks": ["arith_mc", "capitals"], "include_path": str(mine), "heldout": {}}
    demo_config |= {"run": "test-prepared-tasks", "cache_dir": str(tmp_path / "cache")}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(demo_config))
    target = ROOT / "results" / demo_config["run"] / "tasks"

    def snakemake(*args: str, target: Path = target) -> str:
        command = [sys.executable, "-m", "snakemake", "--configfile", str(config), "--directory", str(ROOT),
                   "--cores", "2", *args, str(target.relative_to(ROOT))]
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    shutil.rmtree(target.parent, ignore_errors=True)
    try:
        snakemake()
        assert read_json(target / PREPARED_RECORD) | {"heldout": None} == {
            "tasks": ["arith_mc", "capitals"], "heldout": None, "task_files": ["capitals.yaml"],
            "helpers": ["_capitals_template_yaml", "helpers.py"]}
        task_yaml(mine, "later", **{**spec, "task": "later"})
        task_yaml(mine, "unrelated", **{**spec, "task": "unrelated", "doc_to_text": "Capital of {{country}}:"})
        (mine / "scoring.py").write_text(HELPERS["scoring.py"] + "# the evaluations rerun\n")
        assert "Nothing to be done" in snakemake("-n")
        base_scores = target.parent / "eval" / "base" / "0" / "seed0" / "scores.json"
        evaluation = snakemake("-n", target=base_scores).split("rule evaluate:")[1].split("\n\n")[0]
        assert str(mine / "scoring.py") in evaluation and "helpers.py" not in evaluation
        (mine / "helpers.py").write_text(HELPERS["helpers.py"] + "# decontamination reruns\n")
        assert "rule prepare_tasks:" in snakemake("-n")
        (mine / "helpers.py").write_text(HELPERS["helpers.py"])
        (mine / "_capitals_template_yaml").write_text("metadata: {version: 2.0}\n")
        assert "rule prepare_tasks:" in snakemake("-n")
        (mine / "capitals.yaml").write_text(yaml.safe_dump({**spec, "doc_to_text": "{{country}}'s capital is"}) + tags)
        planned = snakemake("-n")
        assert "rule prepare_tasks:" in planned and "rule fetch_tasks:" not in planned
        moved = {"data_files": {"test": str(shutil.copy(data, tmp_path / "moved.jsonl"))}}
        (mine / "capitals.yaml").write_text(yaml.safe_dump({**spec, "dataset_kwargs": moved}) + tags)
        assert "rule fetch_tasks:" in snakemake("-n")  # the jobs that read it run offline
        record = read_json(target / PREPARED_RECORD)
        del record["helpers"]  # as an earlier annealscope wrote it
        write_json(target / PREPARED_RECORD, record)
        assert f"tasks: {target.relative_to(ROOT)} was prepared by an earlier annealscope" in snakemake("-n")
        (target / PREPARED_RECORD).unlink()
        assert f"tasks: {target.relative_to(ROOT)} was prepared before annealscope recorded" in snakemake("-n")
    finally:
        shutil.rmtree(target.parent, ignore_errors=True)
