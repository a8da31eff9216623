"""Experiment trackers (`anneal.monitor`): run names from the layout, and a run's fit and report sent to the
trackers when `anneal.monitor.results` asks.

A job's run is named by its folder under `results/<run>/` and grouped by the run, so a training job, the fit
and the report of one grid land in one Weights & Biases group, and `tensorboard --logdir results/<run>` shows
each by its path.
"""

from __future__ import annotations

from pathlib import Path


def run_names(path: str | Path) -> tuple[str, str]:
    """(group, name) of a job writing `path`: its run and its folder under the run, from the layout's paths;
    outside `results/`, the folder's parent and name."""
    folder = Path(path).resolve().parent
    parts = folder.parts
    if "results" in parts[:-1]:
        at = len(parts) - 1 - parts[::-1].index("results")
        if at + 2 < len(parts):
            return parts[at + 1], "/".join(parts[at + 2:])
        return parts[at + 1], folder.name
    return folder.parent.name, folder.name


def log_results(files: list[Path], monitor: dict) -> list[str]:
    """Send tables (`*.csv`), figures (`*.png`) and pages (`*.html`) of one folder to the trackers that
    `monitor` turns on, when `monitor.results` asks; return where they went. TensorBoard gets tables as
    text and figures as images under `<folder>/monitor/tensorboard`; Weights & Biases a run named by the folder
    in the grid's group, with tables, images and pages. The CSV tracker adds nothing: the tables are CSV."""
    backends = set(monitor.get("backends", [])) if monitor.get("results") and files else set()
    folder = files[0].parent if files else Path()
    sent = []
    if "tensorboard" in backends:
        _to_tensorboard(files, folder / "monitor" / "tensorboard")
        sent.append(f"tensorboard ({folder / 'monitor' / 'tensorboard'})")
    if "wandb" in backends:
        group, name = run_names(folder / "outputs")
        _to_wandb(files, monitor, group, name, folder / "monitor")
        sent.append(f"wandb (group {group}, run {name})")
    return sent


def _to_tensorboard(files: list[Path], log_dir: Path) -> None:
    import matplotlib.image
    import pandas as pd
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for path in files:
            if path.suffix == ".csv":
                table = pd.read_csv(path).to_string(index=False, max_rows=200)
                writer.add_text(path.stem, "\n".join(f"    {line}" for line in table.splitlines()))
            elif path.suffix == ".png":
                writer.add_image(path.stem, matplotlib.image.imread(path)[..., :3], dataformats="HWC")


def _to_wandb(files: list[Path], monitor: dict, group: str, name: str, directory: Path) -> None:
    import pandas as pd
    import wandb

    directory.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=monitor.get("project", "annealscope"), entity=monitor.get("team"), group=group,
                     name=name, dir=str(directory))
    for path in files:
        if path.suffix == ".csv":
            run.log({path.stem: wandb.Table(dataframe=pd.read_csv(path))})
        elif path.suffix == ".png":
            run.log({path.stem: wandb.Image(str(path))})
        else:
            run.log({path.stem: wandb.Html(path.read_text(encoding="utf-8"))})
    run.finish()
