#!/bin/bash
# Stop 52 call 1 (carry .dev/suite .dev/sw build/programs build/lib/libattn_runtime.so): the GPU suite on the d64
# causal alternative and the d128 end at 2048 (stop 51's call5.sh), the short-tiling sweep, the backward suite, and
# the compiled programs with the runtime's self-test (the launcher's shared-memory opt-in).
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suite timeout 220 python3 -m pytest -q -p no:cacheprovider python/tests/test_gpu.py > $OUT/gpu.txt 2>&1
echo "gpu ($(( $(date +%s) - S )) s): $(tail -1 $OUT/gpu.txt)"
grep -E "^(FAILED|ERROR)" $OUT/gpu.txt | head
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suite timeout 180 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad.txt 2>&1
echo "grad ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad.txt)"
grep -E "^(FAILED|ERROR)" $OUT/grad.txt | head
S=$(date +%s)
OUT=$OUT/programs timeout 60 .ci/gpu-programs run > $OUT/programs.txt 2>&1
echo "programs exit $? ($(( $(date +%s) - S )) s)"; grep -E "PASS|FAIL|passed|failed|SUMMARY" $OUT/programs.txt | head
cd python
timeout 75 python3 ../docs/bench/2026-12-05-stop49-short-tilings/sweep_short.py 3 ../.dev/sw/A ../.dev/sw/alt ../.dev/sw/q64kv80 ../.dev/sw/q128kv64 ../.dev/sw/q64kv32 > $OUT/sweep.txt 2>&1
echo "sweep exit $?"; tail -30 $OUT/sweep.txt
