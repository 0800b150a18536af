#!/bin/bash
# Stop 52 call 7 (carry .dev/bwdD; the machine of call 6, still warm): D against cuDNN, 10 calls a measurement.
cd python && export PYTHONPATH=$PWD && for r in 1 2; do timeout 70 python3 -m attn.bench_backward --bundles ../.dev/bwdD -o /tmp/z-$r --family d128 --family llama --seqlens 8192 16384 --backends attn sdpa-cudnn --reps 10 > $OUT/bench_D_cudnn-$r.txt 2>&1; echo "== round $r"; grep -E "^(d128|llama)" $OUT/bench_D_cudnn-$r.txt | awk '{print $1, $3, $4, $5, $10, $NF}'; done
