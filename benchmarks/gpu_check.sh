#!/usr/bin/env bash
# The GPU check of issue 19, one command for a lent GPU (one H200: within 8 minutes). It prints MFU under
# ZeRO-1 and ZeRO-3, a 2 x 2 grid end to end on the GPU, hf against vllm scoring, teacher throughput, and the
# peak GPU memory of each step (benchmarks/gpu_check.py). `--smoke` checks the script small on a CPU.
# Run: bash benchmarks/gpu_check.sh [--smoke]. It uses the clone's .venv where there is one (make install),
# else the python3 on PATH with annealscope's dependencies installed, annealscope itself read from workflow/.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
if [ -x .venv/bin/python ]; then
    export PATH="$PWD/.venv/bin:$PATH"
elif ! command -v annealscope > /dev/null; then  # the rules call the `annealscope` command
    shim="$(mktemp -d)"
    printf '#!/bin/sh\nexec python3 -m annealscope.cli "$@"\n' > "$shim/annealscope"
    chmod +x "$shim/annealscope"
    export PATH="$shim:$PATH" PYTHONPATH="$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
exec python3 benchmarks/gpu_check.py "$@"
