// RUN: attn-opt %s --attn-fuse | FileCheck %s
// A collapse_shape whose reassociation index is 2^32 + 3 (upstream's
// verifier reads it as 3): not a reshape attn-fuse looks through (it read
// the 64-bit index and crashed), so Q is the collapsed tensor itself.
// CHECK: %[[Q:.+]] = tensor.collapse_shape %{{.+}} {{\[\[}}0, 1], [2], [4294967299]]
// CHECK: %[[QX:.+]] = tensor.expand_shape %[[Q]]
// CHECK: attn.attention %[[QX]], %{{.+}}, %{{.+}} scale = 1.000000e+00 : (tensor<1x2x8x16xf32>
func.func @bad_reassociation(%q4: tensor<1x2x8x16xf32>, %kt: tensor<2x16x8xf32>, %v: tensor<2x8x16xf32>) -> tensor<2x8x16xf32> {
  %q = tensor.collapse_shape %q4 [[0, 1], [2], [4294967299]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
  %zero = arith.constant 0.0 : f32
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%sf : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%s : tensor<2x8x8xf32>) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x16xf32>) outs(%of : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return %o : tensor<2x8x16xf32>
}
