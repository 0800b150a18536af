#!/bin/bash
# Stop 47, call 7: the backward's first lse2 pairs loaded before the products: tests, then A/B against HEAD (9a84061).
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/python
nvidia-smi --query-gpu=name --format=csv,noheader
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suite-lse timeout 100 python3 -m pytest -q -x -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad_tests_lse.txt 2>&1
echo "grad tests lse exit $? ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad_tests_lse.txt)"
cd python
for r in 1 2; do for d in bwd-d bwd-lse; do
timeout 50 python3 -m attn.bench_backward --bundles ../.dev/$d -o /tmp/b-$d-$r --family d128 --seqlens 8192 16384 --backends attn attn-det > $OUT/bench_$d-$r.txt 2>&1
echo "== $d round $r"; grep -E "^d128" $OUT/bench_$d-$r.txt | awk '{print $1, $2, $3, $4, $5, $6}'
done; done
