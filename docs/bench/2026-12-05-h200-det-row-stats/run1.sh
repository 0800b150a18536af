#!/bin/bash
# Session 44: deterministic wgmma dK/dV with row_stats bulk copies.
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
python3 -c "import torch; print('torch', torch.__version__)" | tee -a $OUT/gpu.txt
export ATTN_BUNDLES=.dev/suite
S=$(date +%s)
timeout 230 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad_tests.txt 2>&1
echo "grad tests exit $? ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad_tests.txt)"
grep -E "^FAILED|Error" $OUT/grad_tests.txt | head -10
cd python
S=$(date +%s)
timeout 170 python3 -m attn.bench_backward --bundles ../.dev/bwd -o $OUT/bench --family d128 --family mla --family d256 --family llama \
  --seqlens 8192 16384 --backends attn attn-det sdpa-cudnn > $OUT/bench.txt 2>&1
echo "bench exit $? ($(( $(date +%s) - S )) s)"
timeout 60 python3 -m attn.bench_backward --bundles ../.dev/bwd-base -o $OUT/bench-base --family d128 --family mla --family d256 --family llama \
  --seqlens 8192 16384 --backends attn-det > $OUT/bench-base.txt 2>&1
echo "bench-base exit $?"
cd ..
for tool in memcheck racecheck; do
  S=$(date +%s)
  timeout 75 compute-sanitizer --tool $tool --kernel-name kns=attn_ --error-exitcode 3 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py \
    -k "test_attention_backward and (grad_gqa_causal_f16 or grad_d256_window_softcap_f16_500 or grad_d128_dv256_bshd_sq_gt_sk_f16 or grad_nd_gqa_causal_f16)" > $OUT/sanitizer_$tool.log 2>&1
  echo "$tool exit $? ($(( $(date +%s) - S )) s): $(grep -cE 'ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards' $OUT/sanitizer_$tool.log) clean; $(tail -1 $OUT/sanitizer_$tool.log)"
done
echo "== bench (new)"; grep -vE "^\s*$" $OUT/bench.txt | tail -30
echo "== bench (base det)"; grep -vE "^\s*$" $OUT/bench-base.txt | tail -12
