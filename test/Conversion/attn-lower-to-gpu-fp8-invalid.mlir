// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu 2>&1 | FileCheck %s
// RUN: not attn-opt %s --split-input-file --attn-to-ptx="chip=sm_90a" 2>&1 | FileCheck %s

// FP8 (f8E4M3FN) attention has no GPU kernel yet: a located error at the
// op, from the kernel generator (every path to a kernel goes through it),
// and no kernel is generated.
// CHECK: attn-lower-to-gpu-fp8-invalid.mlir:[[@LINE+3]]:8: error: 'attn.attention' op no GPU kernel for f8E4M3FN yet (FP8 attention runs on the CPU: attn-tile, attn-to-cpu)
// CHECK-NOT: gpu.func
func.func @per_head(%q: tensor<2x8x128x128xf8E4M3FN>, %k: tensor<2x2x128x128xf8E4M3FN>, %v: tensor<2x2x128x128xf8E4M3FN>, %dq: tensor<2x2xf32>, %dk: tensor<2x2xf32>, %dv: tensor<2x2xf32>) -> tensor<2x8x128x128xbf16> {
  %o = attn.attention %q, %k, %v descale(%dq, %dk, %dv) mask = <causal> : (tensor<2x8x128x128xf8E4M3FN>, tensor<2x2x128x128xf8E4M3FN>, tensor<2x2x128x128xf8E4M3FN>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x8x128x128xbf16>
  return %o : tensor<2x8x128x128xbf16>
}

// -----

// CHECK: attn-lower-to-gpu-fp8-invalid.mlir:[[@LINE+2]]:8: error: 'attn.attention' op no GPU kernel for f8E4M3FN yet
func.func @per_tensor(%q: tensor<1x4x64x64xf8E4M3FN>, %d: tensor<f32>) -> tensor<1x4x64x64xf32> {
  %o = attn.attention %q, %q, %q descale(%d, %d, %d) : (tensor<1x4x64x64xf8E4M3FN>, tensor<1x4x64x64xf8E4M3FN>, tensor<1x4x64x64xf8E4M3FN>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<1x4x64x64xf32>
  return %o : tensor<1x4x64x64xf32>
}
