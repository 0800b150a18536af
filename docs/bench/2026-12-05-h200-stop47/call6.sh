#!/bin/bash
# Stop 47, call 6: every consumer lane arrives on the deterministic dK/dV's empty barrier (count 256): racecheck, tests, cost.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/python
rm -rf /tmp/s-d && cp -r .dev/suite /tmp/s-d && cp .dev/race-d/* /tmp/s-d/
S=$(date +%s)
ATTN_BUNDLES=/tmp/s-d timeout 100 compute-sanitizer --tool racecheck --kernel-name kns=attn_ --error-exitcode 3 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py \
  -k "test_attention_backward and (grad_gqa_causal_f16 or grad_d256_window_softcap_f16_500 or grad_d128_dv256_bshd_sq_gt_sk_f16 or grad_nd_gqa_causal_f16 or grad_mqa_window_softcap_d64_f16 or grad_d128_dv64_bias_bshd_f16 or grad_sq_gt_sk_d64_f16 or grad_mla_d192_dv128 or grad_mla_gqa_causal_d192_dv128_700)" > $OUT/racecheck_d.log 2>&1
echo "d: exit $? ($(( $(date +%s) - S )) s): $(grep -c 'Race reported' $OUT/racecheck_d.log) race reports; $(grep -E 'passed|failed' $OUT/racecheck_d.log | tail -1); $(tail -1 $OUT/racecheck_d.log)"
S=$(date +%s)
ATTN_BUNDLES=/tmp/s-d timeout 100 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad_tests_d.txt 2>&1
echo "grad tests d exit $? ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad_tests_d.txt)"
cd python
for r in 1 2; do for d in bwd bwd-d; do
timeout 60 python3 -m attn.bench_backward --bundles ../.dev/$d -o /tmp/bench-$d-$r --family d128 --family mla --seqlens 8192 16384 --backends attn-det > $OUT/bench_$d-$r.txt 2>&1
echo "== $d round $r"; grep -E "^(d128|mla)" $OUT/bench_$d-$r.txt
done; done
