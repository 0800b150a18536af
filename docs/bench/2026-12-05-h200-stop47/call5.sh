#!/bin/bash
# Stop 47, call 5: racecheck's hazard detail for the deterministic d128 causal dK/dV; backward host time.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/python
export ATTN_BUNDLES=$PWD/.dev/suite
S=$(date +%s)
timeout 120 compute-sanitizer --tool racecheck --racecheck-report hazard --print-limit 30 --kernel-name kns=attn_f16_d128_dv128_bhsd_causal_bwd_dkdv_wgmma \
  python3 -m pytest -q -p no:cacheprovider python/tests/test_grad_gpu.py -k "test_attention_backward and grad_gqa_causal_f16" > $OUT/racecheck_detail.log 2>&1
echo "detail exit $? ($(( $(date +%s) - S )) s)"
grep -E "Error|Warning|thread|address|Address|Write|Read" $OUT/racecheck_detail.log | head -40
S=$(date +%s)
timeout 100 python3 .dev/host_bwd2.py > $OUT/host.txt 2>&1; echo "host exit $? ($(( $(date +%s) - S )) s)"
cat $OUT/host.txt | tail -10
