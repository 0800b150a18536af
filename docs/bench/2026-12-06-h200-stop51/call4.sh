#!/bin/bash
# Stop 51 call 4: the launcher's shared-memory fix on the tilings that failed to launch, then test_grad_gpu.py.
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
cd python
D=../docs/bench/2026-12-05-stop49-short-tilings
timeout 200 python3 $D/sweep_short.py 5 ../.dev/sw/A ../.dev/sw/q64kv80 ../.dev/sw/q128kv64 ../.dev/sw/q64kv64x3 ../.dev/sw/q64kv32x4 > $OUT/sweep2.txt 2>&1
echo "sweep exit $?"
cat $OUT/sweep2.txt
cd ..
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suite timeout 250 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad.txt 2>&1
echo "grad ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad.txt)"
grep -E "^(FAILED|ERROR)" $OUT/grad.txt | head
