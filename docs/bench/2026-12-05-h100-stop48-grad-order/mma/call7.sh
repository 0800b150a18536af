#!/bin/bash
# Stop 48, call 7: the mma.sync dK/dV kernel dealt like the wgmma one (getGradBlockIds; I) against main (H landed, A'),
# attn-mma on Llama GQA and d128/d64 causal, two interleaved rounds.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/python
nvidia-smi --query-gpu=name --format=csv,noheader
cd python
for r in 1 2; do for d in bwdH bwdI; do
timeout 50 python3 -m attn.bench_backward --bundles ../.dev/$d -o /tmp/b-$d-$r --family llama --family d128-causal --family d64-causal --seqlens 4096 8192 --backends attn-mma > $OUT/bench_$d-$r.txt 2>&1
echo "== $d round $r"; grep -E "^(d64|d128|llama)" $OUT/bench_$d-$r.txt | cut -c1-90
done; done
