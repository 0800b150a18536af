#!/usr/bin/env bash
export ATTN_BUNDLES=.dev/suite
python3 -m pytest -q -p no:cacheprovider python/tests/test_gpu.py -k "paged or mla or latent or dsa or sparse or poison or nsa" 2>&1 | tail -2
python3 -m pytest -q -p no:cacheprovider python/tests/test_runtime_gpu.py -k "paged or mla" 2>&1 | tail -2
compute-sanitizer --tool memcheck --kernel-name kns=attn_paged_combine --error-exitcode 3 python3 -m pytest -q -p no:cacheprovider python/tests/test_gpu.py -k "paged and (sinks or lse or window)" 2>&1 | grep -E "SUMMARY|passed|failed" | sort | uniq -c
cd python && export PYTHONPATH=. && python3 ../docs/bench/2026-12-04-h200-mla-combine/ab_mla.py ../.dev/pagedA ../.dev/pagedE 5 2>&1 | tail -14
M=gpu__time_duration.sum,launch__grid_size,dram__throughput.avg.pct_of_peak_sustained_elapsed
for shape in "128 64 8192" "128 1 16384"; do echo "== ncu combine $shape"; ncu --clock-control none --cache-control none -k regex:attn_paged_combine --launch-skip 2 --launch-count 1 --metrics $M python3 ../docs/bench/2026-12-04-h200-mla-combine/mla_once.py $shape ../.dev/pagedE 2>&1 | grep -E "attn_paged|gpu__|launch__grid|dram__"; done
