// REQUIRES: cuda-toolkit
// RUN: not attn-opt %s --attn-to-llvm 2>&1 | FileCheck %s
// A GPU program (attn-to-llvm) of an FP8 attention: the kernel generator's
// located error, as attn-lower-to-gpu-fp8-invalid.mlir shows for kernels.

// CHECK: attn-to-llvm-fp8-invalid.mlir:[[@LINE+2]]:8: error: 'attn.attention' op no GPU kernel for f8E4M3FN yet
func.func @fp8(%q: tensor<?x8x?x128xf8E4M3FN>, %k: tensor<?x2x?x128xf8E4M3FN>, %v: tensor<?x2x?x128xf8E4M3FN>, %d: tensor<f32>) -> tensor<?x8x?x128xbf16> {
  %o = attn.attention %q, %k, %v descale(%d, %d, %d) mask = <causal> : (tensor<?x8x?x128xf8E4M3FN>, tensor<?x2x?x128xf8E4M3FN>, tensor<?x2x?x128xf8E4M3FN>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<?x8x?x128xbf16>
  return %o : tensor<?x8x?x128xbf16>
}
