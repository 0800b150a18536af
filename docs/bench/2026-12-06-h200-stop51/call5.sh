#!/bin/bash
# The next device call (not run in stop 51). First, on the CPU machine from main: the GPU suite into .dev/suite
# (`cd python && PYTHONPATH=$PWD python3 -m attn.bundles --gpu-suite -o ../.dev/suite`) and
# docs/bench/2026-12-05-stop49-short-tilings/build.sh (.dev/sw; its `alt` is main's kernels). Carry both.
# The GPU suite on the d64 causal alternative (three blocks an SM) and the d128 end moved to 2048, then the sweep
# of A against main and the tilings that failed to launch before the launchers' shared-memory fix.
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suite timeout 200 python3 -m pytest -q -p no:cacheprovider python/tests/test_gpu.py > $OUT/gpu.txt 2>&1
echo "gpu ($(( $(date +%s) - S )) s): $(tail -1 $OUT/gpu.txt)"
grep -E "^(FAILED|ERROR)" $OUT/gpu.txt | head
cd python
timeout 75 python3 ../docs/bench/2026-12-05-stop49-short-tilings/sweep_short.py 3 ../.dev/sw/A ../.dev/sw/alt ../.dev/sw/q64kv80 ../.dev/sw/q128kv64 ../.dev/sw/q64kv32 > $OUT/sweep.txt 2>&1
echo "sweep exit $?"; cat $OUT/sweep.txt
