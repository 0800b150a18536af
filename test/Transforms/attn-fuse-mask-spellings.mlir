// Equivalent spellings of band masks: each is decided by the exact mask
// analysis (MaskAnalysis.cpp) and fuses with the attribute of its band.
// Sq = Sk = 16 unless a case says otherwise.
// RUN: attn-opt %s --attn-fuse --split-input-file | FileCheck %s

// j <=u i.
// CHECK-LABEL: func.func @causal_ule
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @causal_ule(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %ok = arith.cmpi ule, %j, %i : index
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// i >=u j.
// CHECK-LABEL: func.func @causal_uge_swapped_operands
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @causal_uge_swapped_operands(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %ok = arith.cmpi uge, %i, %j : index
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// j <u i + 1 (not fused before: i + 1 is not a bare index).
// CHECK-LABEL: func.func @causal_ult_plus_one
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @causal_ult_plus_one(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %i1 = arith.addi %i, %c1 : index
    %ok = arith.cmpi ult, %j, %i1 : index
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// not (j >u i), the negation as xori with true.
// CHECK-LABEL: func.func @causal_ugt_negated_by_xor
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @causal_ugt_negated_by_xor(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %gt = arith.cmpi ugt, %j, %i : index
    %ok = arith.xori %gt, %true : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// select(j > i, -inf, x): the masked value in the true branch.
// CHECK-LABEL: func.func @causal_swapped_select
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @causal_swapped_select(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %gt = arith.cmpi sgt, %j, %i : index
    %r = arith.select %gt, %ninf, %x : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// j - i <= 0.
// CHECK-LABEL: func.func @causal_difference
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @causal_difference(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %d = arith.subi %j, %i : index
    %ok = arith.cmpi sle, %d, %c0 : index
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// 2 * j <= 2 * i (not fused before: muli).
// CHECK-LABEL: func.func @causal_scaled_by_muli
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @causal_scaled_by_muli(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %i2 = arith.muli %i, %c2 : index
    %j2 = arith.muli %c2, %j : index
    %ok = arith.cmpi sle, %j2, %i2 : index
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// j <= i in i32.
// CHECK-LABEL: func.func @causal_index_cast_i32
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @causal_index_cast_i32(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %i32 = arith.index_cast %i : index to i32
    %j32 = arith.index_cast %j : index to i32
    %ok = arith.cmpi sge, %i32, %j32 : i32
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// j <= i || i >= 16 with Sq = 16: the second test never holds on the domain (not fused before).
// CHECK-LABEL: func.func @causal_or_dead_rows
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @causal_or_dead_rows(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %c16 = arith.constant 16 : index
    %le = arith.cmpi sle, %j, %i : index
    %never = arith.cmpi sge, %i, %c16 : index
    %ok = arith.ori %le, %never : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// j <= i && j + 7 >= i.
// CHECK-LABEL: func.func @window_j_plus_c_ge_i
// CHECK: attn.attention {{.*}} mask = <window, left = 7, right = 0> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @window_j_plus_c_ge_i(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %le = arith.cmpi sle, %j, %i : index
    %j7 = arith.addi %j, %c7 : index
    %ge = arith.cmpi sge, %j7, %i : index
    %ok = arith.andi %le, %ge : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// j <=u i && j + 7 >=u i, as frontends emit for index types (not fused before).
// CHECK-LABEL: func.func @window_unsigned
// CHECK: attn.attention {{.*}} mask = <window, left = 7, right = 0> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @window_unsigned(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %le = arith.cmpi ule, %j, %i : index
    %j7 = arith.addi %j, %c7 : index
    %ge = arith.cmpi uge, %j7, %i : index
    %ok = arith.andi %le, %ge : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// j <u i + 1 && j + 8 >u i (not fused before).
// CHECK-LABEL: func.func @window_unsigned_ugt
// CHECK: attn.attention {{.*}} mask = <window, left = 7, right = 0> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @window_unsigned_ugt(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %i1 = arith.addi %i, %c1 : index
    %lt = arith.cmpi ult, %j, %i1 : index
    %j8 = arith.addi %j, %c8 : index
    %gt = arith.cmpi ugt, %j8, %i : index
    %ok = arith.andi %gt, %lt : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// j <= i && i - j <= 7.
// CHECK-LABEL: func.func @window_i_minus_j_le_c
// CHECK: attn.attention {{.*}} mask = <window, left = 7, right = 0> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @window_i_minus_j_le_c(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %le = arith.cmpi sle, %j, %i : index
    %d = arith.subi %i, %j : index
    %near = arith.cmpi sle, %d, %c7 : index
    %ok = arith.andi %le, %near : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// j <= i && 7 - i + j >= 0.
// CHECK-LABEL: func.func @window_c_minus_i_plus_j
// CHECK: attn.attention {{.*}} mask = <window, left = 7, right = 0> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @window_c_minus_i_plus_j(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %le = arith.cmpi sle, %j, %i : index
    %a = arith.subi %c7, %i : index
    %e = arith.addi %a, %j : index
    %near = arith.cmpi sge, %e, %c0 : index
    %ok = arith.andi %near, %le : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// (j - i) + 7 >= 0 on one side, 0 >= j - i on the other.
// CHECK-LABEL: func.func @window_difference_plus_c
// CHECK: attn.attention {{.*}} mask = <window, left = 7, right = 0> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @window_difference_plus_c(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %d = arith.subi %j, %i : index
    %e = arith.addi %d, %c7 : index
    %near = arith.cmpi sge, %e, %c0 : index
    %le = arith.cmpi sge, %c0, %d : index
    %ok = arith.andi %near, %le : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// The two sides as two selects.
// CHECK-LABEL: func.func @window_two_selects
// CHECK: attn.attention {{.*}} mask = <window, left = 7, right = 0> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @window_two_selects(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %le = arith.cmpi sle, %j, %i : index
    %r0 = arith.select %le, %x, %ninf : f32
    %d = arith.subi %i, %j : index
    %far = arith.cmpi sgt, %d, %c7 : index
    %r = arith.select %far, %ninf, %r0 : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// Masked out where j > i || i - j > 7: the or of the negations (not fused before).
// CHECK-LABEL: func.func @window_de_morgan
// CHECK: attn.attention {{.*}} mask = <window, left = 7, right = 0> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @window_de_morgan(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %gt = arith.cmpi sgt, %j, %i : index
    %d = arith.subi %i, %j : index
    %far = arith.cmpi sgt, %d, %c7 : index
    %bad = arith.ori %gt, %far : i1
    %r = arith.select %bad, %ninf, %x : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// not (j > i || i - j > 7) through xori with true.
// CHECK-LABEL: func.func @window_de_morgan_xor
// CHECK: attn.attention {{.*}} mask = <window, left = 7, right = 0> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @window_de_morgan_xor(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %gt = arith.cmpi ugt, %j, %i : index
    %d = arith.subi %i, %j : index
    %far = arith.cmpi sgt, %d, %c7 : index
    %bad = arith.ori %gt, %far : i1
    %ok = arith.xori %true, %bad : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// select(j <= i, i - j <= 7, false) on i1 (not fused before).
// CHECK-LABEL: func.func @window_select_on_i1
// CHECK: attn.attention {{.*}} mask = <window, left = 7, right = 0> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @window_select_on_i1(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %le = arith.cmpi sle, %j, %i : index
    %d = arith.subi %i, %j : index
    %near = arith.cmpi sle, %d, %c7 : index
    %ok = arith.select %le, %near, %false : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// -3 <= j - i <= 2.
// CHECK-LABEL: func.func @window_both_sides
// CHECK: attn.attention {{.*}} mask = <window, left = 3, right = 2> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @window_both_sides(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %d = arith.subi %j, %i : index
    %c3 = arith.constant 3 : index
    %i3 = arith.addi %j, %c3 : index
    %lo = arith.cmpi uge, %i3, %i : index
    %hi = arith.cmpi sle, %d, %c2 : index
    %ok = arith.andi %lo, %hi : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// select(j != i, -inf, x): only the diagonal.
// CHECK-LABEL: func.func @diagonal_not_ne
// CHECK: attn.attention {{.*}} mask = <window, left = 0, right = 0> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @diagonal_not_ne(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %ne = arith.cmpi ne, %j, %i : index
    %r = arith.select %ne, %ninf, %x : f32
    linalg.yield %r : f32
  } -> tensor<4x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x16x16xf32>) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %oe = tensor.empty() : tensor<4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x16x16xf32>, tensor<4x16x16xf32>) outs(%of : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  return %o : tensor<4x16x16xf32>
}

// -----

// Sq = 4 < Sk = 12: j <=u i + 8 is causal, bottom-right aligned (not fused
// before: i + 8 is not a bare index).
// CHECK-LABEL: func.func @causal_bottom_right_unsigned
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00 : (tensor<1x4x4x16xf32>, tensor<1x4x12x16xf32>
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @causal_bottom_right_unsigned(%q: tensor<4x4x16xf32>, %kt: tensor<4x16x12xf32>, %v: tensor<4x12x16xf32>) -> tensor<4x4x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x4x12xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x4x12xf32>) -> tensor<4x4x12xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x4x16xf32>, tensor<4x16x12xf32>) outs(%sf : tensor<4x4x12xf32>) -> tensor<4x4x12xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x4x12xf32>) outs(%se : tensor<4x4x12xf32>) {
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %true = arith.constant true
    %false = arith.constant false
    %i8 = arith.addi %i, %c8 : index
    %ok = arith.cmpi ule, %j, %i8 : index
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x4x12xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x4x12xf32>) outs(%se : tensor<4x4x12xf32>) -> tensor<4x4x12xf32>
  %oe = tensor.empty() : tensor<4x4x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x4x16xf32>) -> tensor<4x4x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x4x12xf32>, tensor<4x12x16xf32>) outs(%of : tensor<4x4x16xf32>) -> tensor<4x4x16xf32>
  return %o : tensor<4x4x16xf32>
}

// -----

// The constant i1 twin of causal (Sq = Sk = 8).
// CHECK-LABEL: func.func @constant_causal_twin
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00
// CHECK-NOT: linalg.softmax
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @constant_causal_twin(%q: tensor<4x8x16xf32>, %kt: tensor<4x16x8xf32>, %v: tensor<4x8x16xf32>) -> tensor<4x8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %mask = arith.constant dense<[[true, false, false, false, false, false, false, false],
    [true, true, false, false, false, false, false, false],
    [true, true, true, false, false, false, false, false],
    [true, true, true, true, false, false, false, false],
    [true, true, true, true, true, false, false, false],
    [true, true, true, true, true, true, false, false],
    [true, true, true, true, true, true, true, false],
    [true, true, true, true, true, true, true, true]]> : tensor<8x8xi1>
  %se = tensor.empty() : tensor<4x8x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x8x16xf32>, tensor<4x16x8xf32>) outs(%sf : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %l = linalg.generic {indexing_maps = [#id3, affine_map<(d0, d1, d2) -> (d1, d2)>, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %mask : tensor<4x8x8xf32>, tensor<8x8xi1>) outs(%se : tensor<4x8x8xf32>) {
  ^bb0(%x: f32, %m: i1, %out: f32):
    %r = arith.select %m, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %oe = tensor.empty() : tensor<4x8x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  return %o : tensor<4x8x16xf32>
}
