// RUN: attn-opt %s --attn-fuse --split-input-file | FileCheck %s
// attn-fuse on TOSA, as the TFLite/ONNX paths emit attention: reshapes to
// [B·H, S, D], tosa.transpose of K, tosa.matmul, a constant scale multiply, an
// additive constant mask, and softmax as reduce_max, sub, exp, reduce_sum,
// reciprocal and mul.

// CHECK-LABEL: func.func @tosa_causal
// CHECK-SAME: (%[[Q:.+]]: tensor<2x4x16x32xf32>, %[[K:.+]]: tensor<2x4x16x32xf32>, %[[V:.+]]: tensor<2x4x16x32xf32>)
// CHECK: %[[O:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] mask = <causal> scale = 0.176776692 : (tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>) -> tensor<2x4x16x32xf32>
// CHECK: %[[C:.+]] = tensor.collapse_shape %[[O]] {{\[}}[0, 1], [2], [3]]
// CHECK: tosa.reshape %[[C]]
// CHECK-NOT: tosa.matmul
// CHECK-NOT: tosa.exp
func.func @tosa_causal(%q: tensor<2x4x16x32xf32>, %k: tensor<2x4x16x32xf32>, %v: tensor<2x4x16x32xf32>) -> tensor<2x4x16x32xf32> {
  %s3 = tosa.const_shape {values = dense<[8, 16, 32]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %s4 = tosa.const_shape {values = dense<[2, 4, 16, 32]> : tensor<4xindex>} : () -> !tosa.shape<4>
  %zp = "tosa.const"() <{values = dense<0.0> : tensor<1xf32>}> : () -> tensor<1xf32>
  %shift = "tosa.const"() <{values = dense<0> : tensor<1xi8>}> : () -> tensor<1xi8>
  %scale = "tosa.const"() <{values = dense<0.176776695> : tensor<1x1x1xf32>}> : () -> tensor<1x1x1xf32>
  %mask = "tosa.const"() <{values = dense<[[[0.0,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0.0,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0.0,0.0,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0.0,0.0,0.0,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0.0,0.0,0.0,0.0,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0xFF800000,0xFF800000,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0xFF800000,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0xFF800000,0xFF800000,0xFF800000],[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0xFF800000,0xFF800000],[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0xFF800000],[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0]]]> : tensor<1x16x16xf32>}> : () -> tensor<1x16x16xf32>
  %q3 = tosa.reshape %q, %s3 : (tensor<2x4x16x32xf32>, !tosa.shape<3>) -> tensor<8x16x32xf32>
  %k3 = tosa.reshape %k, %s3 : (tensor<2x4x16x32xf32>, !tosa.shape<3>) -> tensor<8x16x32xf32>
  %v3 = tosa.reshape %v, %s3 : (tensor<2x4x16x32xf32>, !tosa.shape<3>) -> tensor<8x16x32xf32>
  %kt = tosa.transpose %k3 {perms = array<i32: 0, 2, 1>} : (tensor<8x16x32xf32>) -> tensor<8x32x16xf32>
  %s = tosa.matmul %q3, %kt, %zp, %zp : (tensor<8x16x32xf32>, tensor<8x32x16xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x16x16xf32>
  %ss = tosa.mul %s, %scale, %shift : (tensor<8x16x16xf32>, tensor<1x1x1xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  %sm = tosa.add %ss, %mask : (tensor<8x16x16xf32>, tensor<1x16x16xf32>) -> tensor<8x16x16xf32>
  %mx = tosa.reduce_max %sm {axis = 2 : i32} : (tensor<8x16x16xf32>) -> tensor<8x16x1xf32>
  %d = tosa.sub %sm, %mx : (tensor<8x16x16xf32>, tensor<8x16x1xf32>) -> tensor<8x16x16xf32>
  %e = tosa.exp %d : (tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %sum = tosa.reduce_sum %e {axis = 2 : i32} : (tensor<8x16x16xf32>) -> tensor<8x16x1xf32>
  %r = tosa.reciprocal %sum : (tensor<8x16x1xf32>) -> tensor<8x16x1xf32>
  %p = tosa.mul %e, %r, %shift : (tensor<8x16x16xf32>, tensor<8x16x1xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  %o3 = tosa.matmul %p, %v3, %zp, %zp : (tensor<8x16x16xf32>, tensor<8x16x32xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x16x32xf32>
  %o = tosa.reshape %o3, %s4 : (tensor<8x16x32xf32>, !tosa.shape<4>) -> tensor<2x4x16x32xf32>
  return %o : tensor<2x4x16x32xf32>
}

// -----

// A runtime bias [B·H, Sq, Sk] and the scale as a divide (tosa has no divide
// for floats; frontends multiply by the reciprocal of a constant).
// CHECK-LABEL: func.func @tosa_bias
// CHECK-SAME: %[[BIAS:[a-z0-9]+]]: tensor<8x16x16xf16>
// CHECK: %[[B4:.+]] = tensor.expand_shape %[[BIAS]] {{\[}}[0, 1], [2], [3]] output_shape [1, 8, 16, 16]
// CHECK: attn.attention {{.*}} bias(%[[B4]]) scale = 1.250000e-01 : (tensor<1x8x16x32xf16>, tensor<1x8x16x32xf16>, tensor<1x8x16x32xf16>, tensor<1x8x16x16xf16>) -> tensor<1x8x16x32xf16>
func.func @tosa_bias(%q: tensor<8x16x32xf16>, %k: tensor<8x16x32xf16>, %v: tensor<8x16x32xf16>, %bias: tensor<8x16x16xf16>) -> tensor<8x16x32xf16> {
  %zp = "tosa.const"() <{values = dense<0.0> : tensor<1xf16>}> : () -> tensor<1xf16>
  %shift = "tosa.const"() <{values = dense<0> : tensor<1xi8>}> : () -> tensor<1xi8>
  %eight = "tosa.const"() <{values = dense<8.0> : tensor<1x1x1xf16>}> : () -> tensor<1x1x1xf16>
  %inv = tosa.reciprocal %eight : (tensor<1x1x1xf16>) -> tensor<1x1x1xf16>
  %kt = tosa.transpose %k {perms = array<i32: 0, 2, 1>} : (tensor<8x16x32xf16>) -> tensor<8x32x16xf16>
  %s = tosa.matmul %q, %kt, %zp, %zp : (tensor<8x16x32xf16>, tensor<8x32x16xf16>, tensor<1xf16>, tensor<1xf16>) -> tensor<8x16x16xf16>
  %ss = tosa.mul %s, %inv, %shift : (tensor<8x16x16xf16>, tensor<1x1x1xf16>, tensor<1xi8>) -> tensor<8x16x16xf16>
  %sb = tosa.add %ss, %bias : (tensor<8x16x16xf16>, tensor<8x16x16xf16>) -> tensor<8x16x16xf16>
  %mx = tosa.reduce_max %sb {axis = 2 : i32} : (tensor<8x16x16xf16>) -> tensor<8x16x1xf16>
  %d = tosa.sub %sb, %mx : (tensor<8x16x16xf16>, tensor<8x16x1xf16>) -> tensor<8x16x16xf16>
  %e = tosa.exp %d : (tensor<8x16x16xf16>) -> tensor<8x16x16xf16>
  %sum = tosa.reduce_sum %e {axis = 2 : i32} : (tensor<8x16x16xf16>) -> tensor<8x16x1xf16>
  %r = tosa.reciprocal %sum : (tensor<8x16x1xf16>) -> tensor<8x16x1xf16>
  %p = tosa.mul %e, %r, %shift : (tensor<8x16x16xf16>, tensor<8x16x1xf16>, tensor<1xi8>) -> tensor<8x16x16xf16>
  %o = tosa.matmul %p, %v, %zp, %zp : (tensor<8x16x16xf16>, tensor<8x16x32xf16>, tensor<1xf16>, tensor<1xf16>) -> tensor<8x16x32xf16>
  return %o : tensor<8x16x32xf16>
}
