// Stock mlir-opt runs attn-fuse from the plugin (loaded as a dialect plugin,
// which also registers the passes; named through --pass-pipeline).
// RUN: mlir-opt %s --load-dialect-plugin=%attn_plugin \
// RUN:   --pass-pipeline="builtin.module(func.func(attn-fuse))" | FileCheck %s

// CHECK-LABEL: func.func @softmax_attention
// CHECK: attn.attention {{.*}} scale = 1.250000e-01 : (tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>) -> tensor<1x4x8x16xf32>
// CHECK-NOT: linalg.softmax
func.func @softmax_attention(%q: tensor<4x8x16xf32>, %k: tensor<4x8x16xf32>, %v: tensor<4x8x16xf32>) -> tensor<4x8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant dense<0.125> : tensor<4x8x8xf32>
  %se = tensor.empty() : tensor<4x8x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q, %k : tensor<4x8x16xf32>, tensor<4x8x16xf32>) outs(%sf : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %ss = arith.mulf %s, %c : tensor<4x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%ss : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %oe = tensor.empty() : tensor<4x8x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  return %o : tensor<4x8x16xf32>
}
