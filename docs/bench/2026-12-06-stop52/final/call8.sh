#!/bin/bash
# Stop 52 call 8 (carry .dev/bwdD): main 8c72aa7's backward against cuDNN, 10 calls a measurement, then one call a
# measurement (the host's overhead counted).
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
cd python
for reps in 10 1; do
timeout 50 python3 -m attn.bench_backward --bundles ../.dev/bwdD -o /tmp/f-$reps --family d128 --family llama \
  --seqlens 8192 16384 --backends attn sdpa-cudnn --reps $reps > $OUT/bench_reps$reps.txt 2>&1
echo "== reps $reps"; grep -E "^(d128|llama)" $OUT/bench_reps$reps.txt | awk '{print $1, $3, $4, $5, $10, $NF}'
done
