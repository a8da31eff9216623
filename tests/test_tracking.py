"""A run's fit and report sent to the trackers when `anneal.monitor.results` asks, offline."""

import pandas as pd
import pytest

from annealscope.core.tracking import log_results


@pytest.fixture
def outputs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fit = tmp_path / "results" / "grid" / "fit"
    fit.mkdir(parents=True)
    pd.DataFrame({"source": ["web", "owned"], "value": [0.5, 0.25]}).to_csv(fit / "fits.csv", index=False)
    figure, axes = plt.subplots(figsize=(2, 2))
    axes.plot([0, 1], [1, 0])
    figure.savefig(fit / "curves.png")
    plt.close(figure)
    return [fit / "fits.csv", fit / "curves.png"]


def test_fit_outputs_go_to_tensorboard_and_wandb_only_when_asked(outputs, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_MODE", "offline")
    folder = outputs[0].parent
    assert log_results(outputs, {"backends": ["tensorboard", "wandb"]}) == []  # results not asked for
    assert not (folder / "monitor").exists()
    sent = log_results(outputs, {"backends": ["tensorboard", "wandb", "csv"], "results": True, "project": "t"})
    assert sent == [f"tensorboard ({folder / 'monitor' / 'tensorboard'})", "wandb (group grid, run fit)"]
    events = EventAccumulator(str(folder / "monitor" / "tensorboard")).Reload()
    assert events.Tags()["images"] == ["curves"]
    [text] = events.Tensors("fits/text_summary")
    assert "owned" in text.tensor_proto.string_val[0].decode()
    assert list((folder / "monitor" / "wandb").glob("offline-run-*"))
