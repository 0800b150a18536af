#!/bin/bash
# Stop 52 call 6 (carry .dev/bwdB .dev/bwdD .dev/suite): the dK/dV epilogue staged through shared memory (D)
# against column-pair stores (B): D's backward suite, racecheck on two cases, then two interleaved rounds, 10
# calls a measurement.
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suite timeout 120 python3 -m pytest -q -x -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad.txt 2>&1
echo "grad D ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad.txt)"
grep -E "^(FAILED|ERROR)" $OUT/grad.txt | head -5
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suite timeout 80 compute-sanitizer --tool racecheck --kernel-name kns=dkdv --error-exitcode 3 \
  python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py \
  -k "test_attention_backward and (grad_nd_gqa4_causal_d128_f16_1100 or grad_d128_dv64_bias_bshd_f16)" > $OUT/racecheck.log 2>&1
echo "racecheck exit $? ($(( $(date +%s) - S )) s): $(grep -E 'RACECHECK SUMMARY' $OUT/racecheck.log | sort | uniq -c | tr '\n' ' ') $(tail -1 $OUT/racecheck.log)"
cd python
for r in 1 2; do for d in bwdB bwdD; do
timeout 60 python3 -m attn.bench_backward --bundles ../.dev/$d -o /tmp/e-$d-$r --family d64 --family d128 --family llama \
  --family mla --seqlens 1024 8192 16384 --backends attn attn-det --reps 10 > $OUT/bench_$d-$r.txt 2>&1
echo "== $d round $r"; grep -E "^(d64|d128|llama|mla)" $OUT/bench_$d-$r.txt | awk '{print $1, $3, $4, $5, $6}'
done; done
