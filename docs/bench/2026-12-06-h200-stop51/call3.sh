#!/bin/bash
# Stop 51 call 3: the short-length sweep only (item 6's row ran in call 2).
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
cd python
D=../docs/bench/2026-12-05-stop49-short-tilings
timeout 480 python3 $D/sweep_short.py 5 ../.dev/sw/A ../.dev/sw/alt ../.dev/sw/q64kv64 ../.dev/sw/q64kv80 \
  ../.dev/sw/q64kv96 ../.dev/sw/q128kv64 ../.dev/sw/pers ../.dev/sw/q64kv64x3 ../.dev/sw/q64kv32x4 > $OUT/sweep.txt 2>&1
echo "sweep exit $?"
cat $OUT/sweep.txt
