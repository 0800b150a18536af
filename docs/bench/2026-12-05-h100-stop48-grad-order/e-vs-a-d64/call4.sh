#!/bin/bash
# Stop 48, call 4: d64 causal MHA (where E keeps the grid's order) and Llama GQA, A/E in three interleaved rounds.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/python
nvidia-smi --query-gpu=name --format=csv,noheader
cd python
for r in 1 2 3; do for d in bwdA bwdE; do
timeout 60 python3 -m attn.bench_backward --bundles ../.dev/$d -o /tmp/b-$d-$r --family d64-causal --family llama --seqlens 4096 8192 16384 --backends attn attn-det > $OUT/bench_$d-$r.txt 2>&1
echo "== $d round $r"; grep -E "^(d64|llama)" $OUT/bench_$d-$r.txt | cut -c1-75
done; done
