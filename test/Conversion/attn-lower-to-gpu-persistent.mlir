// RUN: attn-opt %s --attn-lower-to-gpu="launch=1 chip=sm_90a kernel=auto persistent=1" | FileCheck %s
// RUN: attn-opt %s --attn-lower-to-gpu="launch=1 chip=sm_80 kernel=auto persistent=1" | FileCheck %s --check-prefix=SM80

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
