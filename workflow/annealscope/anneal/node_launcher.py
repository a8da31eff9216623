"""DeepSpeed's node launcher (`deepspeed.launcher.launch`, what the `deepspeed` command runs on each node), run
as it is but for its waits: it checks its ranks once a second and sleeps a second more after the last one
exits, then tears down torch and DeepSpeed. Here it checks every POLL_SECONDS and ends, with DeepSpeed's exit
code, as soon as DeepSpeed's `main` returns or exits.

Run: python -m annealscope.anneal.node_launcher <deepspeed.launcher.launch's arguments>
"""

from __future__ import annotations

import time
import types

from deepspeed.launcher import launch

from annealscope.anneal.processes import exit_without_teardown

POLL_SECONDS = 0.05


class QuickClock(types.ModuleType):
    """The `time` module as the launcher sees it, every sleep cut to at most POLL_SECONDS."""

    def __getattr__(self, name: str):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, POLL_SECONDS))


def main() -> int:
    """DeepSpeed's launcher; its exit code (a failed rank's, or 1 when it was told to stop)."""
    launch.time = QuickClock("time")
    try:
        launch.main()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
