#!/bin/bash
# Stop 52 call 5 (carry .dev/bwdB .dev/bwdC .dev/suite): the fused dQ's tile loop rotated by key block where no
# mask staggers the blocks (C) against B (main with the L2 sections), non-causal d64 and d128, 10 calls a
# measurement, two interleaved rounds; then C's backward suite.
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
cd python
for r in 1 2; do for d in bwdB bwdC; do
timeout 100 python3 -m attn.bench_backward --bundles ../.dev/$d -o /tmp/r-$d-$r --family d64 --family d128 \
  --seqlens 1024 4096 8192 16384 --backends attn attn-atomic $([ $r = 1 ] && [ $d = bwdB ] && echo sdpa-cudnn) \
  --reps 10 > $OUT/bench_$d-$r.txt 2>&1
echo "== $d round $r"; grep -E "^(d64 |d128 )" $OUT/bench_$d-$r.txt | awk '{print $1, $3, $4, $5, $8, $10}'
done; done
cd ..
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suite timeout 150 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad.txt 2>&1
echo "grad C ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad.txt)"
grep -E "^(FAILED|ERROR)" $OUT/grad.txt | head
