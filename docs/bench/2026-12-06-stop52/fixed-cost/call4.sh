#!/bin/bash
# Stop 52 call 4 (carry .dev/bwdB): the backward's host overhead in the benchmark's timing. One call a measurement
# (the benchmark's default) against 10 back to back (--reps 10, the host's overhead hidden), attn and cuDNN,
# rounds interleaved.
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
cd python
for r in 1 2; do for reps in 1 10; do
timeout 100 python3 -m attn.bench_backward --bundles ../.dev/bwdB -o /tmp/h-$r-$reps --family d128 --family llama \
  --seqlens 1024 4096 8192 16384 --backends attn sdpa-cudnn --reps $reps > $OUT/bench_reps$reps-$r.txt 2>&1
echo "== reps $reps round $r"; grep -E "^(d128|llama)" $OUT/bench_reps$reps-$r.txt | awk '{print $1, $3, $4, $5, $10}'
done; done
