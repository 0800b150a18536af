#!/bin/bash
# Stop 52 call 2 (carry .dev/bwdA .dev/bwdB .dev/suite): MHA's causal backward blocks dealt heaviest first in
# L2-sized sections of pairs (B) against main's grid order (A), two interleaved rounds; then B's backward suite
# (with the 72-pair cases whose sections are partial).
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
cd python
for r in 1 2; do for d in bwdA bwdB; do
S=$(date +%s)
timeout 100 python3 -m attn.bench_backward --bundles ../.dev/$d -o /tmp/b-$d-$r --family d128-causal --family d64-causal \
  --family llama --seqlens 4096 8192 16384 --backends attn attn-det $([ $r = 1 ] && [ $d = bwdA ] && echo sdpa-cudnn) \
  > $OUT/bench_$d-$r.txt 2>&1
echo "== $d round $r ($(( $(date +%s) - S )) s)"; grep -E "^(d64|d128|llama)" $OUT/bench_$d-$r.txt | cut -c1-90
done; done
cd ..
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suite timeout 150 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad.txt 2>&1
echo "grad B ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad.txt)"
grep -E "^(FAILED|ERROR)" $OUT/grad.txt | head
