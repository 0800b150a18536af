#!/bin/bash
# Stop 47, call 3: ncu of the fused dK/dV+dQ kernel (d128, 16k) with the bulk row_stats copy; prep/convert.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/python
export ATTN_BUNDLES=$PWD/.dev/suite
S=$(date +%s)
timeout 200 ncu --kernel-name regex:dkdv_dq --launch-skip 2 --launch-count 1 \
  --section WarpStateStats --section SchedulerStats --section SpeedOfLight --section SourceCounters --section MemoryWorkloadAnalysis \
  -o $OUT/dkdv_dq -f python3 .dev/prof_bwd.py once 1 > $OUT/ncu_run.txt 2>&1
echo "ncu exit $? ($(( $(date +%s) - S )) s)"
ncu -i $OUT/dkdv_dq.ncu-rep --page details > $OUT/ncu_details.txt 2>&1
ncu -i $OUT/dkdv_dq.ncu-rep --page source --csv --print-source sass > $OUT/ncu_source.csv 2>&1
rm -f $OUT/dkdv_dq.ncu-rep
grep -iE "stall|throughput|Issued|Eligible|Active Warps|Duration|Pipe" $OUT/ncu_details.txt | head -50
wc -l $OUT/ncu_source.csv
tail -3 $OUT/ncu_run.txt
