#!/bin/bash
# Stop 47, call 2: the backward tests, the paged/MLA forward subset (combine-v3), the backward bench.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/python
export ATTN_BUNDLES=$PWD/.dev/suite
S=$(date +%s)
timeout 170 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad_tests.txt 2>&1
echo "grad tests exit $? ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad_tests.txt)"
grep -E "^FAILED" $OUT/grad_tests.txt | head -10
S=$(date +%s)
timeout 200 python3 -m pytest -q -p no:cacheprovider python/tests/test_gpu.py -k "paged or mla or latent or poison" > $OUT/gpu_paged.txt 2>&1
echo "paged tests exit $? ($(( $(date +%s) - S )) s): $(tail -1 $OUT/gpu_paged.txt)"
grep -E "^FAILED" $OUT/gpu_paged.txt | head -10
cd python
S=$(date +%s)
timeout 150 python3 -m attn.bench_backward --bundles ../.dev/bwd -o $OUT/bench --family d128 --family mla --family d256 --family llama \
  --seqlens 8192 16384 --backends attn attn-det sdpa-cudnn > $OUT/bench.txt 2>&1
echo "bench exit $? ($(( $(date +%s) - S )) s)"
grep -vE "^\s*$" $OUT/bench.txt | tail -12
