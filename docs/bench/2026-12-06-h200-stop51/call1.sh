#!/bin/bash
# Stop 51 call 1: the length alternative's GPU tests, test_gpu.py whole, then the H200 backward against cuDNN.
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1 ATTN_BUNDLES=$PWD/.dev/suite
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
S=$(date +%s)
timeout 60 python3 -m pytest -q -p no:cacheprovider python/tests/test_gpu.py -k "alt or 2048 or length_alternative" > $OUT/alt.txt 2>&1
echo "alt ($(( $(date +%s) - S )) s): $(tail -1 $OUT/alt.txt)"
S=$(date +%s)
timeout 280 python3 -m pytest -q -p no:cacheprovider python/tests/test_gpu.py > $OUT/gpu.txt 2>&1
echo "gpu ($(( $(date +%s) - S )) s): $(tail -1 $OUT/gpu.txt)"
grep -E "^(FAILED|ERROR)" $OUT/alt.txt $OUT/gpu.txt | head -20
cd python
S=$(date +%s)
timeout 170 python3 -m attn.bench_backward --bundles ../.dev/bwd -o $OUT/bench --family d128 --family llama --family mla --family d256 \
  --seqlens 8192 16384 --backends attn attn-det sdpa-cudnn > $OUT/bench_bwd.txt 2>&1
echo "bench_bwd exit $? ($(( $(date +%s) - S )) s)"
grep -vE "^\s*$" $OUT/bench_bwd.txt | tail -14
