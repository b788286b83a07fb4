#!/usr/bin/env bash
# One prepared command for a GPU machine (<= 10 minutes on one GPU): ELECTRA-Small and -Base at
# sequence length 128, batch 128, in bf16 and fp32 (TF32 matmuls), eager and compiled — ms/step,
# sequences/s, tokens/s, MFU against the device's dense bf16 peak, fraction of a same-run bf16
# GEMM, syncs per step — beside the naive baseline. Writes benchmarks/gpu-results.json and one
# line per figure; with two or more GPUs, also a 2-GPU DDP run of the CLI (tokens/s).
# Anchor printed beside it: NVIDIA's ELECTRA-Base pretraining (TF2, mixed precision), 955
# sequences/s at seq 128 on one A100-40GB.
#   bash benchmarks/gpu.sh            # after `make venv` with a CUDA build of torch==2.13.0
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT_JSON:-benchmarks/gpu-results.json}
"$PY" benchmarks/bench.py --device cuda --precision bf16 --sizes small base \
  --batch "${BATCH:-128}" --seq 128 --steps 20 --warmup 5 --skip_memory --skip_streaming \
  --data_batches 300 --json "$OUT" "$@"
echo "anchor: NVIDIA ELECTRA-Base pretraining, 955 sequences/s at seq 128 on one A100-40GB (TF2, AMP)"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
figures = json.load(open(sys.argv[1]))
for row in figures.get("variants", []):
    mfu = f"{row['mfu']:.1%}" if row.get("mfu") else "n/a"
    print(f"figure: ELECTRA-{row['size']} {row['variant']}: {row['seq_s']:.0f} seq/s, "
          f"{row['tokens_s']:.0f} tokens/s, MFU {mfu}, {row['peak_fraction']:.2f} of GEMM, "
          f"{row['syncs_per_step']} syncs/step")
PYEOF
if [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -ge 2 ]; then
  # 2-GPU DDP through the CLI: ELECTRA-Small on the demo corpus, 60 steps, tokens/s from the log
  tmp=$(mktemp -d)
  "$PY" data/make_demo_corpus.py --output_dir "$tmp/corpus" >/dev/null
  "$PY" -m electra_lightning tokenizer --files "$tmp/corpus/train.txt" --output_dir "$tmp/tok" \
    --vocab_size 30522 >/dev/null
  "$PY" -m electra_lightning fit --config configs/electra-small.yaml --config configs/trainer/ddp.yaml \
    --config configs/logger/csv.yaml --trainer.devices=2 --trainer.max_steps=60 \
    --trainer.log_every_n_steps=20 --trainer.limit_val_batches=0 \
    --data.train_files="$tmp/corpus/train.txt" --data.val_files=null --data.tokenizer="$tmp/tok" \
    --data.max_seq_length=128 --trainer.default_root_dir="$tmp/run" \
    --trainer.logger.init_args.save_dir="$tmp/run" --trainer.callbacks.init_args.dirpath="$tmp/run/ckpt" \
    > "$tmp/ddp.log" 2>&1 || { tail -20 "$tmp/ddp.log"; exit 1; }
  "$PY" - "$tmp/run" <<'PYEOF'
import csv, glob, sys
rows = [r for f in glob.glob(sys.argv[1] + "/**/metrics.csv", recursive=True)
        for r in csv.DictReader(open(f)) if r.get("train/tokens_per_sec")]
print(f"figure: 2-GPU DDP ELECTRA-Small bf16: {float(rows[-1]['train/tokens_per_sec']):.0f} tokens/s")
PYEOF
fi
