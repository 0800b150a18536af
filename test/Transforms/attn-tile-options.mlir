// RUN: not attn-opt %s --attn-tile=block-q=0 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: not attn-opt %s --attn-tile=block-kv=-3 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: attn-opt %s --attn-tile | FileCheck %s
// BLOCK: error: attn-tile: block sizes must be positive

// A dynamic head dim without an explicit scale: the default 1/sqrt(D) is
// computed at run time (log2 e folded in).
// CHECK-LABEL: func.func @dynamic_head_dim_default_scale
// CHECK: %[[D:.+]] = tensor.dim %arg0, %c3
// CHECK: %[[DI:.+]] = arith.index_castui %[[D]] : index to i64
// CHECK: %[[DF:.+]] = arith.uitofp %[[DI]] : i64 to f32
// CHECK: %[[R:.+]] = math.rsqrt %[[DF]]
// CHECK: %[[F:.+]] = arith.mulf %[[R]], %{{.+}} : f32
// CHECK: scf.forall
// CHECK: arith.mulf %{{.+}}, %[[F]] : f32
func.func @dynamic_head_dim_default_scale(%q: tensor<1x4x8x?xf32>, %k: tensor<1x4x8x?xf32>, %v: tensor<1x4x8x?xf32>) -> tensor<1x4x8x?xf32> {
  %o = attn.attention %q, %k, %v : (tensor<1x4x8x?xf32>, tensor<1x4x8x?xf32>, tensor<1x4x8x?xf32>) -> tensor<1x4x8x?xf32>
  return %o : tensor<1x4x8x?xf32>
}
