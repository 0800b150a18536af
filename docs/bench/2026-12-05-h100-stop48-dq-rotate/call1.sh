#!/bin/bash
# Stop 48, call 1: the fused backward's dQ share issued by the next step (B) against HEAD 9e0efe5 (A), and B with
# lse-early.patch (C): interleaved A/B/C at d128 8k/16k (attn; attn-det for A and C), cuDNN once, d64 once;
# then B's grad tests and a racecheck of B's fused kernels.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/python
nvidia-smi --query-gpu=name --format=csv,noheader
cd python
for r in 1 2; do for d in bwdA bwdB bwdC; do
S=$(date +%s)
B="attn"; [ $d != bwdB ] && B="attn attn-det"; [ $r = 1 ] && [ $d = bwdA ] && B="attn attn-det sdpa-cudnn"
timeout 60 python3 -m attn.bench_backward --bundles ../.dev/$d -o /tmp/b-$d-$r --family d128 --seqlens 8192 16384 --backends $B > $OUT/bench_$d-$r.txt 2>&1
echo "== $d round $r ($(( $(date +%s) - S )) s)"; grep -E "^d128" $OUT/bench_$d-$r.txt
done; done
for d in bwdA bwdB; do
S=$(date +%s)
timeout 50 python3 -m attn.bench_backward --bundles ../.dev/$d -o /tmp/b64-$d --family d64 --seqlens 8192 16384 --backends attn > $OUT/bench64_$d.txt 2>&1
echo "== d64 $d ($(( $(date +%s) - S )) s)"; grep -E "^d64" $OUT/bench64_$d.txt
done
cd ..
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suiteB timeout 150 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py > $OUT/grad_tests_B.txt 2>&1
echo "grad tests B exit $? ($(( $(date +%s) - S )) s): $(tail -1 $OUT/grad_tests_B.txt)"
S=$(date +%s)
ATTN_BUNDLES=$PWD/.dev/suiteB timeout 100 compute-sanitizer --tool racecheck --kernel-name kns=dkdv_dq --error-exitcode 3 python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py \
  -k "test_attention_backward and grad_nd_ and not atomic and (gqa or causal or window)" > $OUT/racecheck_B.log 2>&1
echo "racecheck B exit $? ($(( $(date +%s) - S )) s): $(grep -c 'Race reported' $OUT/racecheck_B.log) race reports; $(grep -E 'passed|failed' $OUT/racecheck_B.log | tail -1)"
