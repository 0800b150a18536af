// Near misses of band masks: attn-fuse leaves each of these functions
// exactly as it was (the diff proves it) and, with report-misses, says why.
// Sq = Sk = 16 unless a case says otherwise.
// RUN: attn-opt %s --split-input-file > %t.before
// RUN: attn-opt %s --split-input-file --attn-fuse > %t.after
// RUN: diff %t.before %t.after
// RUN: attn-opt %s --split-input-file --attn-fuse=report-misses 2>&1 >/dev/null | FileCheck %s

// j * 2 <= i is not a band.
// CHECK: remark: attn-fuse: not fused: the logits are not scale/softcap/mask/bias of Q·Kᵀ
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @scaled_column(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
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
    %j2 = arith.muli %j, %c2 : index
    %ok = arith.cmpi sle, %j2, %i : index
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

// A mask that reads the batch index.
// CHECK: remark: attn-fuse: not fused: the logits are not scale/softcap/mask/bias of Q·Kᵀ
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @depends_on_batch(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
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
    %jb = arith.addi %j, %b : index
    %ok = arith.cmpi sle, %jb, %i : index
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

// i - j <=u 7: i - j can be negative, where its unsigned reading wraps.
// CHECK: remark: attn-fuse: not fused: the logits are not scale/softcap/mask/bias of Q·Kᵀ
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @unsigned_negative_side(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
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
    %d = arith.subi %i, %j : index
    %ok = arith.cmpi ule, %d, %c7 : index
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

// j <= i || i >= 8 with Sq = 16 (a band, causal, only for Sq <= 8).
// CHECK: remark: attn-fuse: not fused: the logits are not scale/softcap/mask/bias of Q·Kᵀ
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @band_for_other_sq(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
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
    %late = arith.cmpi sge, %i, %c8 : index
    %ok = arith.ori %le, %late : i1
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

// j <= i and j + 1 <= i: a band, off by one from causal.
// CHECK: remark: attn-fuse: not fused: the mask is not a band that attn.attention can express
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @strictly_causal_by_one(%q: tensor<4x16x16xf32>, %kt: tensor<4x16x16xf32>, %v: tensor<4x16x16xf32>) -> tensor<4x16x16xf32> {
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
    %j1 = arith.addi %j, %c1 : index
    %lt = arith.cmpi sle, %j1, %i : index
    %ok = arith.andi %le, %lt : i1
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

// The constant i1 twin of causal with one key too many in row 3 (Sq = Sk = 8).
// CHECK: remark: attn-fuse: not fused: the logits are not scale/softcap/mask/bias of Q·Kᵀ
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @constant_causal_off_by_one(%q: tensor<4x8x16xf32>, %kt: tensor<4x16x8xf32>, %v: tensor<4x8x16xf32>) -> tensor<4x8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %mask = arith.constant dense<[[true, false, false, false, false, false, false, false],
    [true, true, false, false, false, false, false, false],
    [true, true, true, false, false, false, false, false],
    [true, true, true, true, true, false, false, false],
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
