#!/usr/bin/env bash
# One prepared command for a GPU machine: ELECTRA-Small and -Base at sequence length 128 in bf16,
# ours vs the naive baseline, sequences/s and MFU (model FLOPs counted analytically, see README).
#   bash benchmarks/gpu.sh            # after `make venv` with a CUDA build of torch==2.13.0
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" benchmarks/bench.py --device cuda --precision bf16 --sizes small base \
  --batch "${BATCH:-128}" --seq 128 --steps 20 --warmup 5 --skip_memory --data_seconds 10 "$@"
