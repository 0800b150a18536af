// REQUIRES: cuda-toolkit
// RUN: attn-opt %s --attn-to-llvm --mlir-print-ir-before=convert-nvgpu-to-nvvm 2>%t.before | FileCheck %s
// RUN: FileCheck %s --check-prefix=MAP --input-file=%t.before

// A GPU program (attn-to-llvm) of an FP8 attention with a per-tensor descale
// (a rank-0 buffer, passed as one element): the sm_90a kernel, launched
// with the descales after v.
// CHECK-LABEL: llvm.func @fp8(
// CHECK: llvm.call @mgpuTensorMapEncodeTiledMemref
// CHECK-NOT: attn.attention
// CHECK: gpu.binary @attn_f8e4m3_d128_dv128_bhsd_obf16_descaletensor_causal_wgmma

// The TMA maps of the e4m3 tensors are maps of bytes: nvgpu's lowering takes
// the data type from the buffer, and knows ui8 (UINT8), not f8E4M3FN.
// MAP-COUNT-3: nvgpu.tma.create.descriptor {{.*}} : memref<*xui8> -> <tensor = memref<1x1x128x128xui8, #gpu.address_space<workgroup>>, swizzle = swizzle_128b
func.func @fp8(%q: tensor<?x8x?x128xf8E4M3FN>, %k: tensor<?x2x?x128xf8E4M3FN>, %v: tensor<?x2x?x128xf8E4M3FN>, %d: tensor<f32>) -> tensor<?x8x?x128xbf16> {
  %o = attn.attention %q, %k, %v descale(%d, %d, %d) mask = <causal> : (tensor<?x8x?x128xf8E4M3FN>, tensor<?x2x?x128xf8E4M3FN>, tensor<?x2x?x128xf8E4M3FN>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<?x8x?x128xbf16>
  return %o : tensor<?x8x?x128xbf16>
}
