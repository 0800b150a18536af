#!/bin/bash
# Stop 48, call 3: the causal backward dealt heaviest first across the grid where GQA or MQA share K/V, the grid order for MHA (E) against main 9e0efe5 (A):
# interleaved A/D on every causal family and Llama GQA (attn and attn-det; cuDNN once), then E's grad tests.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/python
nvidia-smi --query-gpu=name --format=csv,noheader
cd python
for r in 1 2; do for d in bwdA bwdE; do
S=$(date +%s)
B="attn attn-det"; [ $r = 1 ] && [ $d = bwdA ] && B="attn attn-det sdpa-cudnn"
timeout 100 python3 -m attn.bench_backward --bundles ../.dev/$d -o /tmp/b-$d-$r --family causal --family llama --seqlens 4096 8192 16384 --backends $B > $OUT/bench_$d-$r.txt 2>&1
echo "== $d round $r ($(( $(date +%s) - S )) s)"; grep -E "^(d128|d64|d256|mla|llama)" $OUT/bench_$d-$r.txt
done; done
cd ..
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suiteE timeout 150 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad_tests_E.txt 2>&1
echo "grad tests E exit $? ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad_tests_E.txt)"
