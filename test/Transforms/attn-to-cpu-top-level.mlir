// attn-to-cpu lowers the code of functions; code at the module's top level
// (an attention op on tensor.empty operands, an unrelated constant) is a
// located error before any pass runs, not a half-lowered module.
// RUN: not attn-opt %s --split-input-file --attn-to-cpu 2>&1 | FileCheck %s
// CHECK: attn-to-cpu-top-level.mlir:[[@LINE+1]]:6: error: 'tensor.empty' op is at the module's top level: attn-to-cpu lowers the code of functions; move it into a func.func
%t = tensor.empty() : tensor<1x2x16x64xf16>
%o = attn.attention %t, %t, %t : (tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>) -> tensor<1x2x16x64xf16>
func.func @f() { return }

// -----

// A reassociation index of 2^32 + 3 passes upstream's tensor verifier (read
// as 3) and would fail the memref one after bufferization: reported first.
// CHECK: attn-to-cpu-top-level.mlir:[[@LINE+2]]:8: error: 'tensor.collapse_shape' op reassociation does not group the dims of its higher-rank side into consecutive runs (an index past 2^32 passes upstream's verifier)
func.func @g(%x: tensor<1x2x8x16xf32>) -> tensor<2x8x16xf32> {
  %c = tensor.collapse_shape %x [[0, 1], [2], [4294967299]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
  return %c : tensor<2x8x16xf32>
}

// -----

// An expand_shape whose static output_shape disagrees with its type passes
// upstream's tensor verifier and would fail the memref one: reported first.
// CHECK: attn-to-cpu-top-level.mlir:[[@LINE+2]]:8: error: 'tensor.expand_shape' op output_shape size 16 of dim 2 differs from the result type 'tensor<2x1x3xf32>'
func.func @h(%k: tensor<2x3xf32>) -> tensor<2x1x3xf32> {
  %e = tensor.expand_shape %k [[0], [1, 2]] output_shape [2, 1, 16] : tensor<2x3xf32> into tensor<2x1x3xf32>
  return %e : tensor<2x1x3xf32>
}
