#!/bin/bash
# Stop 52 call 3 (carry .dev/bwdB): what a dK/dV block's fixed cost is. The same 16k tokens a batch at 1k to 16k
# tokens a sequence: a block's query tiles double with each length, its fixed cost stays; two rounds.
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
cd python
for r in 1 2; do
timeout 120 python3 -m attn.bench_backward --bundles ../.dev/bwdB -o /tmp/f-$r --family d128 \
  --seqlens 1024 2048 4096 8192 16384 --backends attn attn-det sdpa-cudnn > $OUT/bench_fixed-$r.txt 2>&1
echo "== round $r"; grep -E "^d128" $OUT/bench_fixed-$r.txt | cut -c1-140
done
