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
# three-blocks.patch (not applied on main): one consumer warpgroup with 64-key steps at head dim 64 runs three blocks
# an SM (80 registers a thread at launch, 136 for the consumers after setmaxnreg; ptxas spills nothing). Built with
# the patch applied, then main's compiler rebuilt.
cd ..
git apply docs/bench/2026-12-05-stop49-short-tilings/three-blocks.patch
ninja -C build attn-compile > /dev/null
(cd python && run -o $out/q64kv64x3 --kernel wgmma --block-q 64 --block-kv 64 &&
  run -o $out/q64kv32x4 --kernel wgmma --block-q 64 --block-kv 32)
git apply -R docs/bench/2026-12-05-stop49-short-tilings/three-blocks.patch
ninja -C build attn-compile > /dev/null
(cd python && grep -l "minnctapersm [34]" $out/q64kv64x3/*d64*.ptx $out/q64kv32x4/*d64*.ptx | wc -l)   # 4: the d64 kernels
