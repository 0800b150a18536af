#!/bin/bash
# The sweep's bundle directories, on the CPU machine, from the repository root (about 10 s once attn-compile is
# built). A = main's kernels (with their length alternatives); the others force one tiling on all four variants.
set -e
cd "$(dirname "$0")/../../../python"
V=(--variant '{"dtype":"bf16","head_dim":64,"mask":"causal"}' --variant '{"dtype":"bf16","head_dim":64,"mask":"none"}'
   --variant '{"dtype":"bf16","head_dim":128,"mask":"causal"}' --variant '{"dtype":"bf16","head_dim":128,"mask":"none"}')
out=../.dev/sw
run() { PYTHONPATH=$PWD python3 -m attn.bundles "$@" "${V[@]}" > /dev/null; }
run -o $out/A --compile-arg=--length-alternatives=false
run -o $out/alt
run -o $out/q64kv64 --kernel wgmma --block-q 64 --block-kv 64
run -o $out/q64kv80 --kernel wgmma --block-q 64 --block-kv 80
run -o $out/q64kv96 --kernel wgmma --block-q 64 --block-kv 96
run -o $out/q128kv64 --kernel wgmma --block-q 128 --block-kv 64
run -o $out/pers --compile-arg=--persistent
du -sh $out
# three-blocks.patch is on main since stop 51 as WgmmaTiling::blocksPerSM (no longer applies): one consumer
# warpgroup with at most 64 keys a step at head dims up to 64 runs three blocks an SM. q64kv32 is that at 32 keys.
run -o $out/q64kv32 --kernel wgmma --block-q 64 --block-kv 32
