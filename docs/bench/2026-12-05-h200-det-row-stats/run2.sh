#!/bin/bash
# Session 44, run 2: the warp barrier before the deterministic dK/dV's release.
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
export ATTN_BUNDLES=.dev/suite
for tool in racecheck memcheck; do
  S=$(date +%s)
  timeout 90 compute-sanitizer --tool $tool --kernel-name kns=attn_ --error-exitcode 3 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py \
    -k "test_attention_backward and (grad_gqa_causal_f16 or grad_d256_window_softcap_f16_500 or grad_d128_dv256_bshd_sq_gt_sk_f16 or grad_nd_gqa_causal_f16 or grad_mqa_window_softcap_d64_f16 or grad_d128_dv64_bias_bshd_f16 or grad_sq_gt_sk_d64_f16)" > $OUT/sanitizer_$tool.log 2>&1
  echo "$tool exit $? ($(( $(date +%s) - S )) s): $(grep -cE 'ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards' $OUT/sanitizer_$tool.log) clean; $(tail -1 $OUT/sanitizer_$tool.log)"
done
S=$(date +%s)
timeout 200 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad_tests.txt 2>&1
echo "grad tests exit $? ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad_tests.txt)"
grep -E "^FAILED" $OUT/grad_tests.txt | head -10
cd python
timeout 120 python3 -m attn.bench_backward --bundles ../.dev/bwd -o $OUT/bench --family d128 --family mla --family d256 --family llama \
  --seqlens 8192 16384 --backends attn attn-det sdpa-cudnn > $OUT/bench.txt 2>&1
echo "bench exit $?"
cd ..
timeout 90 python3 .dev/prof_det.py > $OUT/profile.txt 2>&1; echo "prof exit $?"
timeout 60 python3 .dev/host_bwd2.py > $OUT/host.txt 2>&1; echo "host exit $?"
echo "== bench"; grep -vE "^\s*$" $OUT/bench.txt | tail -9
echo "== profile"; cat $OUT/profile.txt | tail -40
echo "== host"; cat $OUT/host.txt | tail -12
# ncu of the fused dK/dV+dQ kernel (d128, 16k, non-causal): stall reasons and
# per-instruction samples.
if command -v ncu >/dev/null; then
  S=$(date +%s)
  timeout 150 ncu --kernel-name regex:dkdv_dq --launch-skip 2 --launch-count 1 \
    --section WarpStateStats --section SchedulerStats --section SpeedOfLight --section SourceCounters \
    -o $OUT/dkdv_dq -f python3 .dev/prof_bwd.py once 1 > $OUT/ncu_run.txt 2>&1
  echo "ncu exit $? ($(( $(date +%s) - S )) s)"
  ncu -i $OUT/dkdv_dq.ncu-rep --page details > $OUT/ncu_details.txt 2>&1
  ncu -i $OUT/dkdv_dq.ncu-rep --page source --csv --print-source sass > $OUT/ncu_source.csv 2>&1
  rm -f $OUT/dkdv_dq.ncu-rep
  grep -iE "stall|throughput|Issued|Eligible|Active Warps" $OUT/ncu_details.txt | head -40
  wc -l $OUT/ncu_source.csv
fi
if command -v ncu >/dev/null; then
  timeout 90 ncu --kernel-name regex:"nd_prep|nd_dq_convert" --launch-skip 4 --launch-count 2 \
    --section WarpStateStats --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    -o $OUT/small -f python3 .dev/prof_bwd.py once 1 > $OUT/ncu_small_run.txt 2>&1
  echo "ncu small exit $?"
  ncu -i $OUT/small.ncu-rep --page details > $OUT/ncu_small.txt 2>&1
  rm -f $OUT/small.ncu-rep
  grep -E "nd_prep|nd_dq_convert|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers Per|Stall|Warp Cycles Per Issued" $OUT/ncu_small.txt | head -30
fi
