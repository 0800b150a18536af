#!/bin/bash
# Stop 48, call 6: H (E's deal computed in 32 bits; MHA's loop code identical to A's) against A, two interleaved
# rounds on every causal family and Llama GQA (attn, attn-det); then H's grad tests.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/python
nvidia-smi --query-gpu=name --format=csv,noheader
cd python
for r in 1 2; do for d in bwdA bwdH; do
timeout 60 python3 -m attn.bench_backward --bundles ../.dev/$d -o /tmp/b-$d-$r --family causal --family llama --seqlens 4096 8192 --backends attn attn-det > $OUT/bench_$d-$r.txt 2>&1
echo "== $d round $r"; grep -E "^(d64|d128|d256|mla|llama)" $OUT/bench_$d-$r.txt | cut -c1-75
done; done
cd ..
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suiteH timeout 130 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad_tests_H.txt 2>&1
echo "grad tests H exit $? ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad_tests_H.txt)"
