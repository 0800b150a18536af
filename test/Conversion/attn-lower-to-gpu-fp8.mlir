// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=auto drop-host" | FileCheck %s

// FP8 (e4m3) attention on the sm_90a kernel (FlashAttention-3's FP8
// forward): Q·Kᵀ on m64nNk32 e4m3 wgmma; the producer's warps 2 and 3 transpose
// each V tile into a K-major Vᵀ ring (FP8 wgmma has no transposed B), P is
// rounded to e4m3 in registers (offset 2^8) as P·V's register-A operand;
// the descales are tensors of [B, Hkv] (or []), the output bf16.
// Shared memory at D = Dv = 128, 128 keys a step: Q 128 x 128, two K, V and
// Vᵀ stages of 128 x 128 bytes: 16384 + 6 x 16384 = 114688.
// CHECK: attn.kernels = {attn_f8e4m3_d128_dv128_bhsd_obf16_descalehead_causal_wgmma = {
// CHECK-SAME: dynamic_shared_memory = 114688 : i64
// CHECK-SAME: {dtype = "f8E4M3FN", {{.*}}name = "q"
// CHECK-SAME: {dtype = "f32", {{.*}}name = "descale_q", role = "descale", shape = ["B", "Hkv"]}
// CHECK-SAME: {dtype = "f32", {{.*}}name = "descale_k", role = "descale", shape = ["B", "Hkv"]}
// CHECK-SAME: {dtype = "f32", {{.*}}name = "descale_v", role = "descale", shape = ["B", "Hkv"]}
// CHECK-SAME: {dtype = "bf16", {{.*}}name = "o", role = "output"
// CHECK-SAME: {box = [128, 128], kind = "tensormap"
// CHECK-SAME: variant = {{{.*}}descale = "head", dtype = "f8e4m3", {{.*}}out_dtype = "bf16"
// CHECK-LABEL: gpu.func @attn_f8e4m3_d128_dv128_bhsd_obf16_descalehead_causal_wgmma(
// CHECK-SAME: %{{.*}}: memref<?xf8E4M3FN>, %{{.*}}: memref<?xf8E4M3FN>, %{{.*}}: memref<?xf8E4M3FN>, %{{.*}}: memref<?xf32>, %{{.*}}: memref<?xf32>, %{{.*}}: memref<?xf32>, %{{.*}}: memref<?xbf16>,
// Producer: 40 registers; warps 2 and 3 transpose V (a 4 x 4 byte transpose,
// two rounds of prmt), then make their writes visible to wgmma.
// CHECK: nvvm.setmaxregister {{ *}}decrease 40
// CHECK: nvvm.prmt
// CHECK: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// The loads: one 128-byte panel per tile.
// CHECK: nvgpu.tma.async.load {{.*}} <tensor = memref<1x1x128x128xi8, #gpu.address_space<workgroup>>
// Consumers: 232 registers; S in four k-steps of 32 e4m3, as (-Q)·Kᵀ
// (scale-a -1) where the score factor scale·dq·dk is negative, else Q·Kᵀ.
// CHECK: nvvm.setmaxregister {{ *}}increase 232
// CHECK: arith.cmpf olt
// CHECK: math.absf
// CHECK: scf.if
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 128, k = 32>, D[<f32>, <{{zero|one}}>], A[<e4m3>, <neg>, <row>]
// CHECK: } else {
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 128, k = 32>, D[<f32>, <{{zero|one}}>], A[<e4m3>, <one>, <row>]
// CHECK-NOT: nvvm.wgmma.mma_async
// CHECK: nvvm.convert.f32x2.to.f8x2 {{.*}} {rnd = #nvvm.fp_rnd_mode<rn>, sat = #nvvm.sat_mode<satfinite>} : i16(f8E4M3FN)
// P·V: four k-steps of 32 keys, P from registers, Vᵀ K-major.
// CHECK: llvm.inline_asm {{.+}}wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {{.*}}p, 1, 1;
// CHECK: gpu.return
func.func @per_head(%q: tensor<2x8x128x128xf8E4M3FN>, %k: tensor<2x2x128x128xf8E4M3FN>, %v: tensor<2x2x128x128xf8E4M3FN>, %dq: tensor<2x2xf32>, %dk: tensor<2x2xf32>, %dv: tensor<2x2xf32>) -> tensor<2x8x128x128xbf16> {
  %o = attn.attention %q, %k, %v descale(%dq, %dk, %dv) mask = <causal> : (tensor<2x8x128x128xf8E4M3FN>, tensor<2x2x128x128xf8E4M3FN>, tensor<2x2x128x128xf8E4M3FN>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x8x128x128xbf16>
  return %o : tensor<2x8x128x128xbf16>
}

// -----

// Head dims 256: 64 keys a step; the Vᵀ stages keep whole 128-byte rows
// (half used): Q 32768 + K and V 2 x 64 x 512 + Vᵀ 2 x 256 x 128 = 163840.
// Per-tensor descales ([]), an f32 output.
// CHECK: attn.kernels = {attn_f8e4m3_d256_dv256_bhsd_of32_descaletensor_none_wgmma = {
// CHECK-SAME: dynamic_shared_memory = 163840 : i64
// CHECK-SAME: name = "descale_q", role = "descale", shape = []}
// CHECK-SAME: tile = {block_kv = 64 : i64, block_q = 128 : i64, stages = 2 : i64}
// CHECK-LABEL: gpu.func @attn_f8e4m3_d256_dv256_bhsd_of32_descaletensor_none_wgmma(
// CHECK-COUNT-16: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 64, k = 32>
// CHECK: llvm.inline_asm {{.+}}wgmma.mma_async.sync.aligned.m64n256k32.f32.e4m3.e4m3
func.func @per_tensor(%q: tensor<1x4x64x256xf8E4M3FN>, %d: tensor<f32>) -> tensor<1x4x64x256xf32> {
  %o = attn.attention %q, %q, %q descale(%d, %d, %d) : (tensor<1x4x64x256xf8E4M3FN>, tensor<1x4x64x256xf8E4M3FN>, tensor<1x4x64x256xf8E4M3FN>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<1x4x64x256xf32>
  return %o : tensor<1x4x64x256xf32>
}
