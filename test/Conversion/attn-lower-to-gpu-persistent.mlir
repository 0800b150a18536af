// RUN: attn-opt %s --attn-lower-to-gpu="launch=1 chip=sm_90a kernel=auto persistent=1" | FileCheck %s
// RUN: attn-opt %s --attn-lower-to-gpu="launch=1 chip=sm_80 kernel=auto persistent=1" | FileCheck %s --check-prefix=SM80
// RUN: attn-opt %s --attn-lower-to-gpu="chip=sm_90a kernel=auto persistent=1 drop-host" --canonicalize | FileCheck %s --check-prefix=DEAL

// With persistent=1 the variants the sm_90a wgmma kernel takes with its
// persistent schedule get it (blocks walk the query tiles); the host code
// launches min(tiles, SMs) blocks, the SM count asked of the runtime at the
// launch. The variant the schedule does not take (head dim 256) keeps one
// block a tile, and so does everything on sm_80.

// CHECK: attn.kernels = {
// CHECK-DAG: attn_bf16_d128_dv128_bhsd_causal_wgmma_persistent = {
// CHECK-DAG: attn_bf16_d256_dv256_bhsd_none_wgmma = {
// CHECK: func.func private @attnRuntimeMultiprocessorCount() -> i64
// CHECK-LABEL: func.func @causal
// CHECK: %[[SMS:.*]] = call @attnRuntimeMultiprocessorCount() : () -> i64
// CHECK: %[[SMSIDX:.*]] = arith.index_cast %[[SMS]] : i64 to index
// CHECK: %[[GRID:.*]] = arith.minui %{{.*}}, %[[SMSIDX]] : index
// CHECK: gpu.launch_func @attn_bf16_d128_dv128_bhsd_causal_wgmma_persistent::@attn_bf16_d128_dv128_bhsd_causal_wgmma_persistent blocks in (%[[GRID]], %c1{{.*}}, %c1{{.*}}) threads in (%c384
// CHECK-LABEL: func.func @wide
// CHECK-NOT: attnRuntimeMultiprocessorCount
// CHECK: gpu.launch_func @attn_bf16_d256_dv256_bhsd_none_wgmma::

// The tiles are dealt in a snake: round k gives block b tile k·grid + b, or
// k·grid + grid - 1 - b in odd rounds; the block's rounds are tiles / grid,
// plus one where its position in the last round is still a tile. A causal
// tile index is heaviest first over the (batch, head) pairs: query block
// blocks - 1 - t / (Hq·B), pair t % (Hq·B).
// DEAL-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_wgmma_persistent
// DEAL: %[[QB:.+]] = arith.ceildivsi %{{.+}}, %c128 : index
// DEAL: %[[QBH:.+]] = arith.muli %[[QB]], %[[HQ:arg[0-9]+]] : index
// DEAL: %[[TILES:.+]] = arith.muli %[[QBH]], %[[B:arg[0-9]+]] : index
// DEAL: %[[GRID:.+]] = gpu.grid_dim x
// DEAL: %[[BLOCK:.+]] = gpu.block_id x
// DEAL: %[[ROUNDS:.+]] = arith.divui %[[TILES]], %[[GRID]] : index
// DEAL: %[[LASTPOS:.+]] = arith.select %{{.+}}, %{{.+}}, %[[BLOCK]] : index
// DEAL: %[[LASTBASE:.+]] = arith.muli %[[ROUNDS]], %[[GRID]] : index
// DEAL: %[[LAST:.+]] = arith.addi %[[LASTBASE]], %[[LASTPOS]] : index
// DEAL: %[[MORE:.+]] = arith.cmpi slt, %[[LAST]], %[[TILES]] : index
// DEAL: %[[ONE:.+]] = arith.select %[[MORE]], %c1, %c0 : index
// DEAL: %[[COUNT:.+]] = arith.addi %[[ROUNDS]], %[[ONE]] : index
// DEAL: scf.for %[[K:.+]] = %c0 to %[[COUNT]] step %c1
// DEAL:   %[[PAR:.+]] = arith.remui %[[K]], %c2 : index
// DEAL:   %[[ODD:.+]] = arith.cmpi eq, %[[PAR]], %c1 : index
// DEAL:   %[[REV0:.+]] = arith.subi %[[GRID]], %[[BLOCK]] : index
// DEAL:   %[[REV:.+]] = arith.subi %[[REV0]], %c1 : index
// DEAL:   %[[POS:.+]] = arith.select %[[ODD]], %[[REV]], %[[BLOCK]] : index
// DEAL:   %[[BASE:.+]] = arith.muli %[[K]], %[[GRID]] : index
// DEAL:   %[[T:.+]] = arith.addi %[[BASE]], %[[POS]] : index
// DEAL:   %[[PAIRS:.+]] = arith.muli %[[HQ]], %[[B]] : index
// DEAL:   %[[LEVEL:.+]] = arith.divui %[[T]], %[[PAIRS]] : index
// DEAL:   %[[PAIR:.+]] = arith.remui %[[T]], %[[PAIRS]] : index
// DEAL:   %[[QB1:.+]] = arith.subi %[[QB]], %[[LEVEL]] : index
// DEAL:   arith.subi %[[QB1]], %c1 : index
// DEAL:   arith.remui %[[PAIR]], %[[HQ]] : index
// DEAL:   arith.divui %[[PAIR]], %[[HQ]] : index

// SM80-NOT: _persistent
// SM80: gpu.launch_func @attn_bf16_d128_dv128_bhsd_causal_mma::
// SM80-NOT: _persistent
func.func @causal(%q: tensor<?x8x?x128xbf16>, %k: tensor<?x8x?x128xbf16>, %v: tensor<?x8x?x128xbf16>) -> tensor<?x8x?x128xbf16> {
  %o = attn.attention %q, %k, %v scale = 0.0883883461 {mask = #attn.mask<causal>} : (tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>) -> tensor<?x8x?x128xbf16>
  return %o : tensor<?x8x?x128xbf16>
}

func.func @wide(%q: tensor<2x8x64x256xbf16>, %k: tensor<2x8x64x256xbf16>, %v: tensor<2x8x64x256xbf16>) -> tensor<2x8x64x256xbf16> {
  %o = attn.attention %q, %k, %v scale = 0.0625 : (tensor<2x8x64x256xbf16>, tensor<2x8x64x256xbf16>, tensor<2x8x64x256xbf16>) -> tensor<2x8x64x256xbf16>
  return %o : tensor<2x8x64x256xbf16>
}
