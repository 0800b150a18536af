#!/bin/bash
# Stop 47, call 4: which release ordering racecheck accepts in the deterministic dK/dV kernels.
# a: fence.proxy.async + warpgroup barrier; b: 256-thread consumer barrier; c: fence + 256 barrier.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/python
for v in a b c; do
  rm -rf /tmp/s-$v && cp -r .dev/suite /tmp/s-$v && cp .dev/race-$v/* /tmp/s-$v/
  S=$(date +%s)
  ATTN_BUNDLES=/tmp/s-$v timeout 100 compute-sanitizer --tool racecheck --kernel-name kns=attn_ --error-exitcode 3 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py \
    -k "test_attention_backward and (grad_gqa_causal_f16 or grad_d256_window_softcap_f16_500 or grad_d128_dv256_bshd_sq_gt_sk_f16 or grad_nd_gqa_causal_f16 or grad_mqa_window_softcap_d64_f16 or grad_d128_dv64_bias_bshd_f16 or grad_sq_gt_sk_d64_f16 or grad_mla_d192_dv128 or grad_mla_gqa_causal_d192_dv128_700)" > $OUT/racecheck_$v.log 2>&1
  echo "$v: exit $? ($(( $(date +%s) - S )) s): $(grep -c 'Race reported' $OUT/racecheck_$v.log) race reports; $(grep -E 'passed|failed' $OUT/racecheck_$v.log | tail -1); $(tail -1 $OUT/racecheck_$v.log)"
  grep -oE "Write access at attn_[a-z0-9_]+" $OUT/racecheck_$v.log | sort | uniq -c
done
cd python
for v in pers-stride pers-gridsnake short-pers; do
  S=$(date +%s)
  timeout 100 python3 ../.dev/ab_short2.py ../.dev/short-base ../.dev/$v 3 > $OUT/ab_$v.txt 2>&1
  echo "== $v exit $? ($(( $(date +%s) - S )) s)"; grep -E "FAIL" $OUT/ab_$v.txt; sed -n '/shape/,$p' $OUT/ab_$v.txt
done
