// Dynamic-shape near misses: attn-fuse leaves each of these functions exactly
// as it was (the diff proves it) and, with report-misses, says why. Same
// skeleton as the last cases of attn-fuse-dynamic.mlir.
// RUN: attn-opt %s --split-input-file > %t.before
// RUN: attn-opt %s --split-input-file --attn-fuse > %t.after
// RUN: diff %t.before %t.after
// RUN: attn-opt %s --split-input-file --attn-fuse=report-misses 2>&1 >/dev/null | FileCheck %s


// Top-left causal j <= i with Sq and Sk from Q and K, not known equal: fusing
// would mask other keys whenever Sq != Sk.
// CHECK: remark: attn-fuse: not fused: the mask is aligned top-left, which is attn.attention's bottom-right mask only when Sq = Sk, and the IR does not prove the dynamic Sq and Sk equal
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @top_left_causal_distinct_lengths(%q: tensor<?x?x64xf32>, %k: tensor<?x?x64xf32>, %v: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %b = tensor.dim %q, %c0 : tensor<?x?x64xf32>
  %sq = tensor.dim %q, %c1 : tensor<?x?x64xf32>
  %sk = tensor.dim %k, %c1 : tensor<?x?x64xf32>
  %se = tensor.empty(%b, %sq, %sk) : tensor<?x?x?xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q, %k : tensor<?x?x64xf32>, tensor<?x?x64xf32>) outs(%sf : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c = arith.cmpi sle, %j, %i : index
    %r = arith.select %c, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<?x?x?xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %oe = tensor.empty(%b, %sq) : tensor<?x?x64xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<?x?x?xf32>, tensor<?x?x64xf32>) outs(%of : tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return %o : tensor<?x?x64xf32>
}

// -----

// The same for a top-left sliding window.
// CHECK: remark: attn-fuse: not fused: the mask is aligned top-left, which is attn.attention's bottom-right mask only when Sq = Sk, and the IR does not prove the dynamic Sq and Sk equal
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @top_left_window_distinct_lengths(%q: tensor<?x?x64xf32>, %k: tensor<?x?x64xf32>, %v: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %b = tensor.dim %q, %c0 : tensor<?x?x64xf32>
  %sq = tensor.dim %q, %c1 : tensor<?x?x64xf32>
  %sk = tensor.dim %k, %c1 : tensor<?x?x64xf32>
  %se = tensor.empty(%b, %sq, %sk) : tensor<?x?x?xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q, %k : tensor<?x?x64xf32>, tensor<?x?x64xf32>) outs(%sf : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %w = arith.constant 4 : index
    %causal = arith.cmpi sle, %j, %i : index
    %d = arith.subi %i, %j : index
    %near = arith.cmpi slt, %d, %w : index
    %ok = arith.andi %causal, %near : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<?x?x?xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %oe = tensor.empty(%b, %sq) : tensor<?x?x64xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<?x?x?xf32>, tensor<?x?x64xf32>) outs(%of : tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return %o : tensor<?x?x64xf32>
}

// -----

// A padding mask j < %n with %n an argument: not a size the IR relates to Sk.
// CHECK: remark: attn-fuse: not fused: the logits are not scale/softcap/mask/bias of Q·Kᵀ
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @padding_length_argument(%q: tensor<?x?x64xf32>, %k: tensor<?x?x64xf32>, %v: tensor<?x?x64xf32>, %n: index) -> tensor<?x?x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %b = tensor.dim %q, %c0 : tensor<?x?x64xf32>
  %sq = tensor.dim %q, %c1 : tensor<?x?x64xf32>
  %sk = tensor.dim %k, %c1 : tensor<?x?x64xf32>
  %se = tensor.empty(%b, %sq, %sk) : tensor<?x?x?xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q, %k : tensor<?x?x64xf32>, tensor<?x?x64xf32>) outs(%sf : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c = arith.cmpi slt, %j, %n : index
    %r = arith.select %c, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<?x?x?xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %oe = tensor.empty(%b, %sq) : tensor<?x?x64xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<?x?x?xf32>, tensor<?x?x64xf32>) outs(%of : tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return %o : tensor<?x?x64xf32>
}

// -----

// A dynamic head dim: attn's kernels are generated per head dim.
// CHECK: remark: attn-fuse: not fused: dynamic head dim
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @dynamic_head_dim(%q: tensor<?x?x?xf32>, %k: tensor<?x?x?xf32>, %v: tensor<?x?x?xf32>) -> tensor<?x?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %b = tensor.dim %q, %c0 : tensor<?x?x?xf32>
  %sq = tensor.dim %q, %c1 : tensor<?x?x?xf32>
  %sk = tensor.dim %k, %c1 : tensor<?x?x?xf32>
  %c2 = arith.constant 2 : index
  %dv = tensor.dim %v, %c2 : tensor<?x?x?xf32>
  %se = tensor.empty(%b, %sq, %sk) : tensor<?x?x?xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q, %k : tensor<?x?x?xf32>, tensor<?x?x?xf32>) outs(%sf : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) {
  ^bb0(%x: f32, %out: f32):
    %r = arith.addf %x, %zero : f32
    linalg.yield %r : f32
  } -> tensor<?x?x?xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %oe = tensor.empty(%b, %sq, %dv) : tensor<?x?x?xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<?x?x?xf32>, tensor<?x?x?xf32>) outs(%of : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  return %o : tensor<?x?x?xf32>
}

