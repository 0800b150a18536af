#!/bin/bash
# Stop 47, call 1: racecheck/memcheck of the backward (warpgroup barrier + patches), the persistent deal A/B.
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
export PYTHONPATH=$PWD/python
export ATTN_BUNDLES=$PWD/.dev/suite
for tool in racecheck memcheck; do
  S=$(date +%s)
  timeout 100 compute-sanitizer --tool $tool --kernel-name kns=attn_ --error-exitcode 3 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py \
    -k "test_attention_backward and (grad_gqa_causal_f16 or grad_d256_window_softcap_f16_500 or grad_d128_dv256_bshd_sq_gt_sk_f16 or grad_nd_gqa_causal_f16 or grad_mqa_window_softcap_d64_f16 or grad_d128_dv64_bias_bshd_f16 or grad_sq_gt_sk_d64_f16 or grad_mla_d192_dv128 or grad_mla_gqa_causal_d192_dv128_700)" > $OUT/sanitizer_$tool.log 2>&1
  echo "$tool exit $? ($(( $(date +%s) - S )) s): $(grep -cE 'ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards' $OUT/sanitizer_$tool.log) clean; $(grep -c 'Race reported' $OUT/sanitizer_$tool.log) race reports; $(tail -1 $OUT/sanitizer_$tool.log)"
done
cd python
S=$(date +%s)
timeout 220 python3 ../.dev/ab_short2.py ../.dev/short-base ../.dev/short-pers 3 > $OUT/ab_short.txt 2>&1
echo "ab_short exit $? ($(( $(date +%s) - S )) s)"
cat $OUT/ab_short.txt
