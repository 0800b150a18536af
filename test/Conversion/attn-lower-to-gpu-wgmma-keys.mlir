// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=auto drop-host" | FileCheck %s
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=wgmma block-kv=176 drop-host" 2>&1 | FileCheck %s --check-prefix=KNOB
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=wgmma block-kv=96 drop-host" 2>&1 | FileCheck %s --check-prefix=KNOB96
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=wgmma block-kv=100 drop-host" 2>&1 | FileCheck %s --check-prefix=ODD
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=wgmma block-q=32 drop-host" 2>&1 | FileCheck %s --check-prefix=ROWS
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=wgmma block-kv=256 drop-host" 2>&1 | FileCheck %s --check-prefix=BIG

// Keys a step of the sm_90a kernel: 128 by default at Dv <= 128. With
// kernel=wgmma, block-kv sets them (a multiple of 16 that fits 227 KB) and
// names the kernel: the K/V tensor maps' boxes, the wgmma's N, the P·V's
// k-steps and the two stages follow. block-q must be the kernel's 128 rows.
// (kernel=auto with block sizes keeps meaning the mma.sync kernel.)

// The manifest (module attributes) comes first, then the kernel.
// CHECK: attn_bf16_d128_dv128_bhsd_none_wgmma = {{{.+}} dynamic_shared_memory = 163840
// CHECK-SAME: tile = {block_kv = 128 : i64, block_q = 128 : i64, stages = 2 : i64}
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_none_wgmma(
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 128, k = 16>
// FlashAttention-3's non-causal tile: 32 KB of Q + 2 x 176 x 256 x 2 bytes,
// S as m64n176, P·V in eleven k-steps of 16 keys (register A).
// KNOB: attn_bf16_d128_dv128_bhsd_none_wgmma_kv176 = {{{.+}} dynamic_shared_memory = 212992
// KNOB-SAME: {box = [64, 128], {{.+}} name = "q_tma"
// KNOB-SAME: {box = [64, 176], {{.+}} name = "k_tma"
// KNOB-SAME: {box = [64, 176], {{.+}} name = "v_tma"
// KNOB-SAME: tile = {block_kv = 176 : i64, block_q = 128 : i64, stages = 2 : i64}
// KNOB-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_none_wgmma_kv176(
// KNOB-COUNT-8: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 176, k = 16>
// KNOB: scf.for
// KNOB-COUNT-11: wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16
// KNOB96-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_none_wgmma_kv96(
// KNOB96-COUNT-8: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 96, k = 16>
// ODD: error: 'attn.attention' op the wgmma kernel's key blocks are multiples of 16 up to 256 (block-kv 100)

// BIG: error: 'attn.attention' op the wgmma kernel's key blocks of 256 with head dims 128 and 128 do not fit 227 KB of shared memory
func.func @none_d128(%q: tensor<1x8x300x128xbf16>, %k: tensor<1x2x300x128xbf16>) -> tensor<1x8x300x128xbf16> {
  %o = attn.attention %q, %k, %k : (tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>) -> tensor<1x8x300x128xbf16>
  return %o : tensor<1x8x300x128xbf16>
}

// -----

// A causal kernel takes the knob too (its band is cut in key blocks of any
// size).
// KNOB: attn_f16_d64_dv64_bhsd_causal_wgmma_kv176 = {{{.+}} tile = {block_kv = 176 : i64
// KNOB-LABEL: gpu.func @attn_f16_d64_dv64_bhsd_causal_wgmma_kv176(
// KNOB-COUNT-4: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 176, k = 16>
func.func @causal_d64(%q: tensor<1x8x300x64xf16>) -> tensor<1x8x300x64xf16> {
  %o = attn.attention %q, %q, %q mask = <causal> : (tensor<1x8x300x64xf16>, tensor<1x8x300x64xf16>, tensor<1x8x300x64xf16>) -> tensor<1x8x300x64xf16>
  return %o : tensor<1x8x300x64xf16>
}

// -----

// FP8's P·V reads Vᵀ as one 128-byte panel of keys: its key block is fixed.
// KNOB: error: 'attn.attention' op the FP8 wgmma kernel's blocks are 128 query rows by 128 keys at value head dim 128
func.func @fp8(%q: tensor<1x4x64x128xf8E4M3FN>, %d: tensor<f32>) -> tensor<1x4x64x128xbf16> {
  %o = attn.attention %q, %q, %q descale(%d, %d, %d) : (tensor<1x4x64x128xf8E4M3FN>, tensor<1x4x64x128xf8E4M3FN>, tensor<1x4x64x128xf8E4M3FN>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<1x4x64x128xbf16>
  return %o : tensor<1x4x64x128xbf16>
}

// -----

// Head dim 64 (D = Dv, no bias) runs one consumer warpgroup a block, 64
// query rows, two blocks an SM: 256 threads, .minnctapersm 2 (128 registers
// a thread), 232 to the consumers after setmaxnreg, no GEMM turns; Q is a
// 64-row box. block-q=64 asks for the same at other head dims. (2000 keys:
// below 1792 the causal kernel's length alternative is launched instead.)
// CHECK: attn_bf16_d64_dv64_bhsd_causal_wgmma = {block = [256, 1, 1], dynamic_shared_memory = 73728
// CHECK-SAME: grid = [{ceil_div = ["Sq", 64]}, "Hq", "B"]
// CHECK-SAME: {box = [64, 64], {{[^}]+}} name = "q_tma"
// CHECK-SAME: tile = {block_kv = 128 : i64, block_q = 64 : i64, stages = 2 : i64}
// CHECK-LABEL: gpu.func @attn_bf16_d64_dv64_bhsd_causal_wgmma(
// CHECK-SAME: known_block_size = array<i32: 256, 1, 1>, nvvm.minctasm = 2 : i32
// CHECK: nvvm.setmaxregister  decrease 24
// CHECK: nvvm.setmaxregister  increase 232
// CHECK-NOT: nvvm.barrier id
// CHECK: gpu.return
// ROWS: error: 'attn.attention' op the wgmma kernel's blocks are 64 or 128 query rows (block-q 32)
func.func @d64(%q: tensor<1x8x2000x64xbf16>) -> tensor<1x8x2000x64xbf16> {
  %o = attn.attention %q, %q, %q mask = <causal> : (tensor<1x8x2000x64xbf16>, tensor<1x8x2000x64xbf16>, tensor<1x8x2000x64xbf16>) -> tensor<1x8x2000x64xbf16>
  return %o : tensor<1x8x2000x64xbf16>
}

// -----

// A bias keeps two consumer warpgroups at head dim 64 (its loads would
// spill at 232 registers).
// CHECK: attn_f16_d64_dv64_bhsd_none_bias1nnnf16_wgmma = {block = [384, 1, 1]
func.func @d64_bias(%q: tensor<1x8x300x64xf16>, %b: tensor<1x8x300x300xf16>) -> tensor<1x8x300x64xf16> {
  %o = attn.attention %q, %q, %q bias(%b) : (tensor<1x8x300x64xf16>, tensor<1x8x300x64xf16>, tensor<1x8x300x64xf16>, tensor<1x8x300x300xf16>) -> tensor<1x8x300x64xf16>
  return %o : tensor<1x8x300x64xf16>
}
