// TOSA's verifiers accept a result type less static than its operands allow;
// LLVM 22's tosa-to-linalg crashes on such a reduction (SIGSEGV in
// tensor::ExpandShapeOp::inferOutputShape) and leaves a transpose or an
// unranked result unconverted. attn-to-cpu refines the types with upstream's
// tosa-infer-shapes first, so each of these lowers to the LLVM dialect, and
// test_fuse_equivalence.py runs the training graph at the end against its
// static spelling.
// RUN: attn-opt %s --split-input-file --attn-to-cpu | FileCheck %s

// CHECK-LABEL: llvm.func @reduce_max_dynamic_kept_dim
func.func @reduce_max_dynamic_kept_dim(%x: tensor<8x16x16xf32>) -> tensor<8x?x1xf32> {
  %m = tosa.reduce_max %x {axis = 2 : i32} : (tensor<8x16x16xf32>) -> tensor<8x?x1xf32>
  return %m : tensor<8x?x1xf32>
}

// -----

// CHECK-LABEL: llvm.func @reduce_sum_all_dynamic
func.func @reduce_sum_all_dynamic(%x: tensor<8x16x16xf32>) -> tensor<?x?x?xf32> {
  %s = tosa.reduce_sum %x {axis = 1 : i32} : (tensor<8x16x16xf32>) -> tensor<?x?x?xf32>
  return %s : tensor<?x?x?xf32>
}

// -----

// CHECK-LABEL: llvm.func @transpose_dynamic
func.func @transpose_dynamic(%x: tensor<8x16x32xf32>) -> tensor<8x?x16xf32> {
  %t = tosa.transpose %x {perms = array<i32: 0, 2, 1>} : (tensor<8x16x32xf32>) -> tensor<8x?x16xf32>
  return %t : tensor<8x?x16xf32>
}

// -----

// CHECK-LABEL: llvm.func @exp_unranked
func.func @exp_unranked(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %e = tosa.exp %x : (tensor<8x16xf32>) -> tensor<*xf32>
  %c = tensor.cast %e : tensor<*xf32> to tensor<8x16xf32>
  return %c : tensor<8x16xf32>
}

// -----

// fuzz_ops.py seed 4711, input 2233: a training graph whose three
// reductions are typed tensor<8x?x1xf32>. It stays unfused (attn-fuse
// matches the types it is given).
// CHECK-LABEL: llvm.func @tosa_training
func.func @tosa_training(%q: tensor<2x4x16x32xf32>, %k: tensor<2x4x16x32xf32>, %v: tensor<2x4x16x32xf32>, %do: tensor<2x4x16x32xf32>)
    -> (tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>) {
  %s3 = tosa.const_shape {values = dense<[8, 16, 32]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %s4 = tosa.const_shape {values = dense<[2, 4, 16, 32]> : tensor<4xindex>} : () -> !tosa.shape<4>
  %zp = "tosa.const"() <{values = dense<0.0> : tensor<1xf32>}> : () -> tensor<1xf32>
  %shift = "tosa.const"() <{values = dense<0> : tensor<1xi8>}> : () -> tensor<1xi8>
  %scale = "tosa.const"() <{values = dense<0.176776695> : tensor<1x1x1xf32>}> : () -> tensor<1x1x1xf32>
  %q3 = tosa.reshape %q, %s3 : (tensor<2x4x16x32xf32>, !tosa.shape<3>) -> tensor<8x16x32xf32>
  %k3 = tosa.reshape %k, %s3 : (tensor<2x4x16x32xf32>, !tosa.shape<3>) -> tensor<8x16x32xf32>
  %v3 = tosa.reshape %v, %s3 : (tensor<2x4x16x32xf32>, !tosa.shape<3>) -> tensor<8x16x32xf32>
  %kt = tosa.transpose %k3 {perms = array<i32: 0, 2, 1>} : (tensor<8x16x32xf32>) -> tensor<8x32x16xf32>
  %s = tosa.matmul %q3, %kt, %zp, %zp : (tensor<8x16x32xf32>, tensor<8x32x16xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x16x16xf32>
  %ss = tosa.mul %s, %scale, %shift : (tensor<8x16x16xf32>, tensor<1x1x1xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  %mx = tosa.reduce_max %ss {axis = 2 : i32} : (tensor<8x16x16xf32>) -> tensor<8x?x1xf32>
  %d = tosa.sub %ss, %mx : (tensor<8x16x16xf32>, tensor<8x?x1xf32>) -> tensor<8x16x16xf32>
  %e = tosa.exp %d : (tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %sum = tosa.reduce_sum %e {axis = 2 : i32} : (tensor<8x16x16xf32>) -> tensor<8x?x1xf32>
  %r = tosa.reciprocal %sum : (tensor<8x?x1xf32>) -> tensor<8x?x1xf32>
  %p = tosa.mul %e, %r, %shift : (tensor<8x16x16xf32>, tensor<8x?x1xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  %o3 = tosa.matmul %p, %v3, %zp, %zp : (tensor<8x16x16xf32>, tensor<8x16x32xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x16x32xf32>
  %o = tosa.reshape %o3, %s4 : (tensor<8x16x32xf32>, !tosa.shape<4>) -> tensor<2x4x16x32xf32>
  %do3 = tosa.reshape %do, %s3 : (tensor<2x4x16x32xf32>, !tosa.shape<3>) -> tensor<8x16x32xf32>
  %pt = tosa.transpose %p {perms = array<i32: 0, 2, 1>} : (tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %dv3 = tosa.matmul %pt, %do3, %zp, %zp : (tensor<8x16x16xf32>, tensor<8x16x32xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x16x32xf32>
  %vt = tosa.transpose %v3 {perms = array<i32: 0, 2, 1>} : (tensor<8x16x32xf32>) -> tensor<8x32x16xf32>
  %dp = tosa.matmul %do3, %vt, %zp, %zp : (tensor<8x16x32xf32>, tensor<8x32x16xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x16x16xf32>
  %dpp = tosa.mul %dp, %p, %shift : (tensor<8x16x16xf32>, tensor<8x16x16xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  %rs = tosa.reduce_sum %dpp {axis = 2 : i32} : (tensor<8x16x16xf32>) -> tensor<8x?x1xf32>
  %dd = tosa.sub %dp, %rs : (tensor<8x16x16xf32>, tensor<8x?x1xf32>) -> tensor<8x16x16xf32>
  %dl = tosa.mul %p, %dd, %shift : (tensor<8x16x16xf32>, tensor<8x16x16xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  %ds = tosa.mul %dl, %scale, %shift : (tensor<8x16x16xf32>, tensor<1x1x1xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  %dq3 = tosa.matmul %ds, %k3, %zp, %zp : (tensor<8x16x16xf32>, tensor<8x16x32xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x16x32xf32>
  %qt = tosa.transpose %q3 {perms = array<i32: 0, 2, 1>} : (tensor<8x16x32xf32>) -> tensor<8x32x16xf32>
  %dkt = tosa.matmul %qt, %ds, %zp, %zp : (tensor<8x32x16xf32>, tensor<8x16x16xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x32x16xf32>
  %dk3 = tosa.transpose %dkt {perms = array<i32: 0, 2, 1>} : (tensor<8x32x16xf32>) -> tensor<8x16x32xf32>
  %dq = tosa.reshape %dq3, %s4 : (tensor<8x16x32xf32>, !tosa.shape<4>) -> tensor<2x4x16x32xf32>
  %dk = tosa.reshape %dk3, %s4 : (tensor<8x16x32xf32>, !tosa.shape<4>) -> tensor<2x4x16x32xf32>
  %dv = tosa.reshape %dv3, %s4 : (tensor<8x16x32xf32>, !tosa.shape<4>) -> tensor<2x4x16x32xf32>
  return %o, %dq, %dk, %dv : tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>
}
