cd python
export PYTHONPATH=.
M=gpu__time_duration.sum,launch__grid_size,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_sector_hit_rate.pct,lts__throughput.avg.pct_of_peak_sustained_elapsed,l1tex__m_xbar2l1tex_read_bytes.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio,smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio
for shape in "128 64 8192" "16 64 16384" "64 128 8192"; do
  echo "== $shape"
  ncu --clock-control none --cache-control none -k regex:attn_paged --launch-skip 4 --launch-count 2 --metrics $M \
    python3 ../docs/bench/2026-12-04-h200-mla-combine/mla_once.py $shape ../.dev/pagedA 2>&1 | grep -E "attn_paged|gpu__|launch__grid|dram__|lts__|l1tex|sm__|smsp__"
done
