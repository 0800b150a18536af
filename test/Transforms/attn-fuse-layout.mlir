// RUN: attn-opt %s --attn-fuse | FileCheck %s
// RUN: attn-opt %s --attn-fuse --canonicalize | FileCheck %s --check-prefix=CANON
// Q, K and V that come from [B, S, H, D] tensors are read in place with
// layout = bshd; the result is transposed to what P·V produced, and that
// transpose cancels against the frontend's .transpose(1, 2) under
// canonicalization, leaving a single op.

// CHECK-LABEL: func.func @bshd
// CHECK-SAME: (%[[Q:.+]]: tensor<2x16x4x32xf32>, %[[K:.+]]: tensor<2x16x4x32xf32>, %[[V:.+]]: tensor<2x16x4x32xf32>)
// CHECK: %[[O:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] layout = bshd scale = 1.000000e+00 : (tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>) -> tensor<2x16x4x32xf32>
// CHECK: linalg.transpose ins(%[[O]] : tensor<2x16x4x32xf32>) {{.*}} permutation = [0, 2, 1, 3]
// CANON-LABEL: func.func @bshd
// CANON-NEXT: %[[O:.+]] = attn.attention %arg0, %arg1, %arg2 layout = bshd
// CANON-NEXT: return %[[O]]
func.func @bshd(%q: tensor<2x16x4x32xf32>, %k: tensor<2x16x4x32xf32>, %v: tensor<2x16x4x32xf32>) -> tensor<2x16x4x32xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x4x16x32xf32>
  %qt = linalg.transpose ins(%q : tensor<2x16x4x32xf32>) outs(%e : tensor<2x4x16x32xf32>) permutation = [0, 2, 1, 3]
  %kt = linalg.transpose ins(%k : tensor<2x16x4x32xf32>) outs(%e : tensor<2x4x16x32xf32>) permutation = [0, 2, 1, 3]
  %vt = linalg.transpose ins(%v : tensor<2x16x4x32xf32>) outs(%e : tensor<2x4x16x32xf32>) permutation = [0, 2, 1, 3]
  %q3 = tensor.collapse_shape %qt [[0, 1], [2], [3]] : tensor<2x4x16x32xf32> into tensor<8x16x32xf32>
  %k3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<2x4x16x32xf32> into tensor<8x16x32xf32>
  %v3 = tensor.collapse_shape %vt [[0, 1], [2], [3]] : tensor<2x4x16x32xf32> into tensor<8x16x32xf32>
  %se = tensor.empty() : tensor<8x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q3, %k3 : tensor<8x16x32xf32>, tensor<8x16x32xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%s : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %oe = tensor.empty() : tensor<8x16x32xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  %o4 = tensor.expand_shape %o [[0, 1], [2], [3]] output_shape [2, 4, 16, 32] : tensor<8x16x32xf32> into tensor<2x4x16x32xf32>
  %ee = tensor.empty() : tensor<2x16x4x32xf32>
  %ot = linalg.transpose ins(%o4 : tensor<2x4x16x32xf32>) outs(%ee : tensor<2x16x4x32xf32>) permutation = [0, 2, 1, 3]
  return %ot : tensor<2x16x4x32xf32>
}
