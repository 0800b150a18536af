#!/bin/bash
# The device call (carry .dev/sw and this directory): correctness of every directory on odd shapes, then the sweep
# (5 interleaved rounds, CUDA graphs, cuDNN in the same rounds), then item 6's row through the benchmark proper.
cd "$(dirname "$0")/../../.."
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
cd python
D=../docs/bench/2026-12-05-stop49-short-tilings
timeout 420 python3 $D/sweep_short.py 5 ../.dev/sw/A ../.dev/sw/alt ../.dev/sw/q64kv64 ../.dev/sw/q64kv80 \
  ../.dev/sw/q64kv96 ../.dev/sw/q128kv64 ../.dev/sw/pers ../.dev/sw/q64kv64x3 ../.dev/sw/q64kv32x4 > $OUT/sweep.txt 2>&1
timeout 110 python3 -m attn.bench --bundles ../.dev/sw/alt -o /tmp/fw --family d128 --seqlens 16384 \
  --backends attn sdpa-cudnn > $OUT/item6.txt 2>&1
cat $OUT/sweep.txt; tail -8 $OUT/item6.txt
