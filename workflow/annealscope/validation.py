"""The whole configuration check, as the Snakefile runs it before any job: the schema with its defaults,
then what every stage shares, then what one stage alone can tell (here: the evaluation tasks and the tasks of
fit.suites)."""

from __future__ import annotations

from pathlib import Path

from annealscope.core.config import ConfigError, check_config, read_config_file, validate_schema
from annealscope.evaluate.tasks import check_suite_tasks, check_tasks


def validate_config(config: dict, resources_dir: str | Path = "resources", tasks: bool = True) -> None:
    """Validate `config` in place (defaults filled in); a ConfigError names the key and the fix.

    `tasks=False` leaves out the check that every evaluation task exists: a job's own Snakemake process reads
    the configuration for its defaults, after the main process checked the tasks before any job."""
    validate_schema(config)
    check_config(config)
    if tasks:
        check_tasks(config["eval"]["tasks"], resources_dir, config["eval"]["include_path"])
        check_suite_tasks(config["fit"]["suites"], config["eval"])


def load_config(path: str | Path, resources_dir: str | Path = "resources") -> dict:
    """Read and validate a config file, as the Snakefile does."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    config = read_config_file(path)
    validate_config(config, resources_dir)
    return config
