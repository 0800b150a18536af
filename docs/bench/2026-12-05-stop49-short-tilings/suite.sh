#!/bin/bash
# The device call before the sweep (carry .dev/suite, built on the CPU machine from python/ with
# `PYTHONPATH=$PWD python3 -m attn.bundles --gpu-suite -o ../.dev/suite`): the forward and backward GPU suites on
# main's kernels, the causal length alternative among them.
cd "$(dirname "$0")/../../.."
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1 ATTN_BUNDLES=$PWD/.dev/suite
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
timeout 330 python3 -m pytest -q -p no:cacheprovider python/tests/test_gpu.py > $OUT/gpu.txt 2>&1
timeout 200 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad.txt 2>&1
grep -E "passed|failed|error" $OUT/gpu.txt | tail -3; grep -E "passed|failed|error" $OUT/grad.txt | tail -3
grep -E "^(FAILED|ERROR)" $OUT/gpu.txt $OUT/grad.txt | head -20
