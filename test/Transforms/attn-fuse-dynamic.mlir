// RUN: attn-opt %s --attn-fuse --split-input-file | FileCheck %s
// attn-fuse on graphs with dynamic batch, head and sequence sizes, as
// torch-mlir emits them (`?` for batch and sequence). The fused op gets the
// dynamic types; masks become attributes only when they admit the same keys
// for every runtime size (see attn-fuse-dynamic-misses.mlir for the rest).

// The issue's reproducer: torch-mlir's eager attention with a dynamic
// sequence length (linalg.transpose of K, collapse_shape, fill +
// batch_matmul, linalg.softmax, batch_matmul, expand_shape).
// CHECK-LABEL: func.func @torch_mlir_dynamic_seq
// CHECK-SAME: (%[[Q:.+]]: tensor<1x8x?x64xf32>, %[[K:.+]]: tensor<1x8x?x64xf32>, %[[V:.+]]: tensor<1x8x?x64xf32>)
// CHECK: %[[O:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] scale = 1.000000e+00 : (tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>) -> tensor<1x8x?x64xf32>
// CHECK: %[[O3:.+]] = tensor.collapse_shape %[[O]] {{\[}}[0, 1], [2], [3]] : tensor<1x8x?x64xf32> into tensor<8x?x64xf32>
// CHECK: %[[R:.+]] = tensor.expand_shape %[[O3]]
// CHECK: return %[[R]]
// CHECK-NOT: linalg.
func.func @torch_mlir_dynamic_seq(%q: tensor<1x8x?x64xf32>, %k: tensor<1x8x?x64xf32>, %v: tensor<1x8x?x64xf32>) -> tensor<1x8x?x64xf32> {
  %c2 = arith.constant 2 : index
  %sq = tensor.dim %q, %c2 : tensor<1x8x?x64xf32>
  %sk = tensor.dim %k, %c2 : tensor<1x8x?x64xf32>
  %zero = arith.constant 0.0 : f32
  %kte = tensor.empty(%sk) : tensor<1x8x64x?xf32>
  %kt = linalg.transpose ins(%k : tensor<1x8x?x64xf32>) outs(%kte : tensor<1x8x64x?xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x8x?x64xf32> into tensor<8x?x64xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x8x64x?xf32> into tensor<8x64x?xf32>
  %se = tensor.empty(%sq, %sk) : tensor<8x?x?xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x?x?xf32>) -> tensor<8x?x?xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<8x?x64xf32>, tensor<8x64x?xf32>) outs(%sf : tensor<8x?x?xf32>) -> tensor<8x?x?xf32>
  %pe = tensor.empty(%sq, %sk) : tensor<8x?x?xf32>
  %p = linalg.softmax dimension(2) ins(%s : tensor<8x?x?xf32>) outs(%pe : tensor<8x?x?xf32>) -> tensor<8x?x?xf32>
  %v3 = tensor.collapse_shape %v [[0, 1], [2], [3]] : tensor<1x8x?x64xf32> into tensor<8x?x64xf32>
  %oe = tensor.empty(%sq) : tensor<8x?x64xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<8x?x64xf32>) -> tensor<8x?x64xf32>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<8x?x?xf32>, tensor<8x?x64xf32>) outs(%of : tensor<8x?x64xf32>) -> tensor<8x?x64xf32>
  %o4 = tensor.expand_shape %o [[0, 1], [2], [3]] output_shape [1, 8, %sq, 64] : tensor<8x?x64xf32> into tensor<1x8x?x64xf32>
  return %o4 : tensor<1x8x?x64xf32>
}

// -----

// 4-D linalg.generic contractions with dynamic batch, heads and sequence
// lengths, the scale on Q (before Q·Kᵀ), the stable softmax decomposed into
// max, sub + exp, sum and div generics, bottom-right causal j <= i + Sk - Sq
// with the runtime sizes captured in the mask's body.
// CHECK-LABEL: func.func @generic_decomposed_softmax
// CHECK-SAME: (%[[Q:.+]]: tensor<?x?x?x32xf32>, %[[K:.+]]: tensor<?x?x?x32xf32>, %[[V:.+]]: tensor<?x?x?x32xf32>)
// CHECK: %[[O:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] mask = <causal> scale = 1.250000e-01 : (tensor<?x?x?x32xf32>, tensor<?x?x?x32xf32>, tensor<?x?x?x32xf32>) -> tensor<?x?x?x32xf32>
// CHECK-NEXT: return %[[O]]
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#row = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#q = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#p = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @generic_decomposed_softmax(%q: tensor<?x?x?x32xf32>, %k: tensor<?x?x?x32xf32>, %v: tensor<?x?x?x32xf32>) -> tensor<?x?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.125 : f32
  %b = tensor.dim %q, %c0 : tensor<?x?x?x32xf32>
  %h = tensor.dim %q, %c1 : tensor<?x?x?x32xf32>
  %sq = tensor.dim %q, %c2 : tensor<?x?x?x32xf32>
  %sk = tensor.dim %k, %c2 : tensor<?x?x?x32xf32>
  %qe = tensor.empty(%b, %h, %sq) : tensor<?x?x?x32xf32>
  %qs = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%q : tensor<?x?x?x32xf32>) outs(%qe : tensor<?x?x?x32xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.mulf %in, %scale : f32
    linalg.yield %0 : f32
  } -> tensor<?x?x?x32xf32>
  %se = tensor.empty(%b, %h, %sq, %sk) : tensor<?x?x?x?xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32>
  %s = linalg.generic {indexing_maps = [#q, #k, #s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%qs, %k : tensor<?x?x?x32xf32>, tensor<?x?x?x32xf32>) outs(%sf : tensor<?x?x?x?xf32>) {
  ^bb0(%a: f32, %bb: f32, %acc: f32):
    %0 = arith.mulf %a, %bb : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<?x?x?x?xf32>
  %masked = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<?x?x?x?xf32>) outs(%se : tensor<?x?x?x?xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %0 = arith.addi %i, %sk : index
    %1 = arith.subi %0, %sq : index
    %ok = arith.cmpi sle, %j, %1 : index
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<?x?x?x?xf32>
  %re = tensor.empty(%b, %h, %sq) : tensor<?x?x?xf32>
  %mi = linalg.fill ins(%ninf : f32) outs(%re : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%masked : tensor<?x?x?x?xf32>) outs(%mi : tensor<?x?x?xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.maximumf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<?x?x?xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%masked, %mx : tensor<?x?x?x?xf32>, tensor<?x?x?xf32>) outs(%se : tensor<?x?x?x?xf32>) {
  ^bb0(%in: f32, %m: f32, %out: f32):
    %0 = arith.subf %in, %m : f32
    %1 = math.exp %0 : f32
    linalg.yield %1 : f32
  } -> tensor<?x?x?x?xf32>
  %si = linalg.fill ins(%zero : f32) outs(%re : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<?x?x?x?xf32>) outs(%si : tensor<?x?x?xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.addf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<?x?x?xf32>
  %pr = linalg.generic {indexing_maps = [#id4, #row, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<?x?x?x?xf32>, tensor<?x?x?xf32>) outs(%se : tensor<?x?x?x?xf32>) {
  ^bb0(%in: f32, %l: f32, %out: f32):
    %0 = arith.divf %in, %l : f32
    linalg.yield %0 : f32
  } -> tensor<?x?x?x?xf32>
  %oe = tensor.empty(%b, %h, %sq) : tensor<?x?x?x32xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<?x?x?x32xf32>) -> tensor<?x?x?x32xf32>
  %o = linalg.generic {indexing_maps = [#p, #v, #o], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%pr, %v : tensor<?x?x?x?xf32>, tensor<?x?x?x32xf32>) outs(%of : tensor<?x?x?x32xf32>) {
  ^bb0(%a: f32, %bb: f32, %acc: f32):
    %0 = arith.mulf %a, %bb : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<?x?x?x32xf32>
  return %o : tensor<?x?x?x32xf32>
}

// -----

// GQA as torch-mlir lowers HF's repeat_kv with a dynamic batch and sequence
// length: expand_shape -> broadcast generic -> collapse_shape, then the 4-D
// matmuls through collapse/batch_matmul/expand. Hkv = 2 is inferred.
// CHECK-LABEL: func.func @gqa_dynamic
// CHECK-SAME: (%[[Q:.+]]: tensor<?x8x?x32xf32>, %[[K:.+]]: tensor<?x2x?x32xf32>, %[[V:.+]]: tensor<?x2x?x32xf32>)
// CHECK: %[[O:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] scale = 1.767580e-01 : (tensor<?x8x?x32xf32>, tensor<?x2x?x32xf32>, tensor<?x2x?x32xf32>) -> tensor<?x8x?x32xf32>
// CHECK-NOT: linalg.generic
// CHECK-NOT: linalg.batch_matmul
#bc5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, 0, d3, d4)>
#map5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @gqa_dynamic(%q: tensor<?x8x?x32xf32>, %k: tensor<?x2x?x32xf32>, %v: tensor<?x2x?x32xf32>) -> tensor<?x8x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %scale = arith.constant 1.767580e-01 : f32
  %b = tensor.dim %q, %c0 : tensor<?x8x?x32xf32>
  %sq = tensor.dim %q, %c2 : tensor<?x8x?x32xf32>
  %sk = tensor.dim %k, %c2 : tensor<?x2x?x32xf32>
  %k5 = tensor.expand_shape %k [[0], [1, 2], [3], [4]] output_shape [%b, 2, 1, %sk, 32] : tensor<?x2x?x32xf32> into tensor<?x2x1x?x32xf32>
  %ke = tensor.empty(%b, %sk) : tensor<?x2x4x?x32xf32>
  %kb = linalg.generic {indexing_maps = [#bc5, #map5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%k5 : tensor<?x2x1x?x32xf32>) outs(%ke : tensor<?x2x4x?x32xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<?x2x4x?x32xf32>
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<?x2x4x?x32xf32> into tensor<?x8x?x32xf32>
  %v5 = tensor.expand_shape %v [[0], [1, 2], [3], [4]] output_shape [%b, 2, 1, %sk, 32] : tensor<?x2x?x32xf32> into tensor<?x2x1x?x32xf32>
  %vb = linalg.generic {indexing_maps = [#bc5, #map5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%v5 : tensor<?x2x1x?x32xf32>) outs(%ke : tensor<?x2x4x?x32xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<?x2x4x?x32xf32>
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<?x2x4x?x32xf32> into tensor<?x8x?x32xf32>
  %kte = tensor.empty(%b, %sk) : tensor<?x8x32x?xf32>
  %kt = linalg.transpose ins(%kr : tensor<?x8x?x32xf32>) outs(%kte : tensor<?x8x32x?xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<?x8x?x32xf32> into tensor<?x?x32xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<?x8x32x?xf32> into tensor<?x32x?xf32>
  %bh = tensor.dim %q3, %c0 : tensor<?x?x32xf32>
  %se = tensor.empty(%bh, %sq, %sk) : tensor<?x?x?xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<?x?x32xf32>, tensor<?x32x?xf32>) outs(%sf : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %ss = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.mulf %in, %scale : f32
    linalg.yield %0 : f32
  } -> tensor<?x?x?xf32>
  %p = linalg.softmax dimension(2) ins(%ss : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %v3 = tensor.collapse_shape %vr [[0, 1], [2], [3]] : tensor<?x8x?x32xf32> into tensor<?x?x32xf32>
  %oe = tensor.empty(%bh, %sq) : tensor<?x?x32xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<?x?x32xf32>) -> tensor<?x?x32xf32>
  %o3 = linalg.batch_matmul ins(%p, %v3 : tensor<?x?x?xf32>, tensor<?x?x32xf32>) outs(%of : tensor<?x?x32xf32>) -> tensor<?x?x32xf32>
  %o = tensor.expand_shape %o3 [[0, 1], [2], [3]] output_shape [%b, 8, %sq, 32] : tensor<?x?x32xf32> into tensor<?x8x?x32xf32>
  return %o : tensor<?x8x?x32xf32>
}

// -----

// The cases below share one skeleton: Q·Kᵀ as batch_matmul on [B·H, S, D]
// with dynamic B·H and S (K read transposed through indexing_maps), one
// generic for the logits, linalg.softmax, P·V; Sq and Sk are tensor.dim of Q
// and K.

// Bottom-right causal spelled with the runtime sizes, j <= i + (Sk - Sq), with
// Sq and Sk from tensor.dim of Q and K (not known equal): causal.
// CHECK-LABEL: func.func @bottom_right_causal_runtime_sizes
// CHECK-SAME: (%[[Q:.+]]: tensor<?x?x64xf32>, %[[K:.+]]: tensor<?x?x64xf32>, %[[V:.+]]: tensor<?x?x64xf32>)
// CHECK-DAG: %[[Q4:.+]] = tensor.expand_shape %[[Q]] {{\[}}[0, 1], [2], [3]] output_shape [1, %{{.+}}, %{{.+}}, 64]
// CHECK-DAG: %[[K4:.+]] = tensor.expand_shape %[[K]]
// CHECK-DAG: %[[V4:.+]] = tensor.expand_shape %[[V]]
// CHECK: %[[O:.+]] = attn.attention %[[Q4]], %[[K4]], %[[V4]] mask = <causal> scale = 1.000000e+00 : (tensor<1x?x?x64xf32>, tensor<1x?x?x64xf32>, tensor<1x?x?x64xf32>) -> tensor<1x?x?x64xf32>
// CHECK: %[[R:.+]] = tensor.collapse_shape %[[O]] {{\[}}[0, 1], [2], [3]] : tensor<1x?x?x64xf32> into tensor<?x?x64xf32>
// CHECK: return %[[R]]
// CHECK-NOT: linalg.
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @bottom_right_causal_runtime_sizes(%q: tensor<?x?x64xf32>, %k: tensor<?x?x64xf32>, %v: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %b = tensor.dim %q, %c0 : tensor<?x?x64xf32>
  %sq = tensor.dim %q, %c1 : tensor<?x?x64xf32>
  %sk = tensor.dim %k, %c1 : tensor<?x?x64xf32>
  %off = arith.subi %sk, %sq : index
  %se = tensor.empty(%b, %sq, %sk) : tensor<?x?x?xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q, %k : tensor<?x?x64xf32>, tensor<?x?x64xf32>) outs(%sf : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ip = arith.addi %i, %off : index
    %c = arith.cmpi sle, %j, %ip : index
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

// The same mask as an additive select(j > i + (Sk - Sq), -inf, 0): causal.
// CHECK-LABEL: func.func @additive_bottom_right_causal
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00 : (tensor<1x?x?x64xf32>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @additive_bottom_right_causal(%q: tensor<?x?x64xf32>, %k: tensor<?x?x64xf32>, %v: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %b = tensor.dim %q, %c0 : tensor<?x?x64xf32>
  %sq = tensor.dim %q, %c1 : tensor<?x?x64xf32>
  %sk = tensor.dim %k, %c1 : tensor<?x?x64xf32>
  %off = arith.subi %sk, %sq : index
  %se = tensor.empty(%b, %sq, %sk) : tensor<?x?x?xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q, %k : tensor<?x?x64xf32>, tensor<?x?x64xf32>) outs(%sf : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ip = arith.addi %i, %off : index
    %c = arith.cmpi sgt, %j, %ip : index
    %m = arith.select %c, %ninf, %zero : f32
    %r = arith.addf %x, %m : f32
    linalg.yield %r : f32
  } -> tensor<?x?x?xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %oe = tensor.empty(%b, %sq) : tensor<?x?x64xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<?x?x?xf32>, tensor<?x?x64xf32>) outs(%of : tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return %o : tensor<?x?x64xf32>
}

// -----

// Top-left causal j <= i where the scores are tensor.empty(%b, %sq, %sq): the
// IR proves Sq = Sk (the batch_matmul makes K's length the scores' last
// dim), so it is attn's causal mask.
// CHECK-LABEL: func.func @top_left_causal_equal_lengths
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00 : (tensor<1x?x?x64xf32>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @top_left_causal_equal_lengths(%q: tensor<?x?x64xf32>, %k: tensor<?x?x64xf32>, %v: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %b = tensor.dim %q, %c0 : tensor<?x?x64xf32>
  %sq = tensor.dim %q, %c1 : tensor<?x?x64xf32>
  %sk = tensor.dim %k, %c1 : tensor<?x?x64xf32>
  %se = tensor.empty(%b, %sq, %sq) : tensor<?x?x?xf32>
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

// Mistral's sliding window of 4 keys, bottom-right with the runtime sizes.
// CHECK-LABEL: func.func @sliding_window_runtime_sizes
// CHECK: attn.attention {{.*}} mask = <window, left = 3, right = 0> scale = 1.000000e+00 : (tensor<1x?x?x64xf32>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @sliding_window_runtime_sizes(%q: tensor<?x?x64xf32>, %k: tensor<?x?x64xf32>, %v: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %b = tensor.dim %q, %c0 : tensor<?x?x64xf32>
  %sq = tensor.dim %q, %c1 : tensor<?x?x64xf32>
  %sk = tensor.dim %k, %c1 : tensor<?x?x64xf32>
  %off = arith.subi %sk, %sq : index
  %se = tensor.empty(%b, %sq, %sk) : tensor<?x?x?xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q, %k : tensor<?x?x64xf32>, tensor<?x?x64xf32>) outs(%sf : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %w = arith.constant 4 : index
    %ip = arith.addi %i, %off : index
    %causal = arith.cmpi sle, %j, %ip : index
    %d = arith.subi %ip, %j : index
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

// The window written top-left (j <= i, i - j < 4), Sq = Sk proven.
// CHECK-LABEL: func.func @sliding_window_top_left_equal_lengths
// CHECK: attn.attention {{.*}} mask = <window, left = 3, right = 0> scale = 1.000000e+00 : (tensor<1x?x?x64xf32>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @sliding_window_top_left_equal_lengths(%q: tensor<?x?x64xf32>, %k: tensor<?x?x64xf32>, %v: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %b = tensor.dim %q, %c0 : tensor<?x?x64xf32>
  %sq = tensor.dim %q, %c1 : tensor<?x?x64xf32>
  %sk = tensor.dim %k, %c1 : tensor<?x?x64xf32>
  %se = tensor.empty(%b, %sq, %sq) : tensor<?x?x?xf32>
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

// Gemma 2's softcap after the scale.
// CHECK-LABEL: func.func @softcap_dynamic
// CHECK: attn.attention {{.*}} scale = 1.250000e-01 softcap = 3.000000e+01 : (tensor<1x?x?x64xf32>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @softcap_dynamic(%q: tensor<?x?x64xf32>, %k: tensor<?x?x64xf32>, %v: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
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
    %cap = arith.constant 30.0 : f32
    %sc = arith.constant 0.125 : f32
    %0 = arith.mulf %x, %sc : f32
    %1 = arith.divf %0, %cap : f32
    %2 = math.tanh %1 : f32
    %r = arith.mulf %2, %cap : f32
    linalg.yield %r : f32
  } -> tensor<?x?x?xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<?x?x?xf32>) outs(%se : tensor<?x?x?xf32>) -> tensor<?x?x?xf32>
  %oe = tensor.empty(%b, %sq) : tensor<?x?x64xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<?x?x?xf32>, tensor<?x?x64xf32>) outs(%of : tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return %o : tensor<?x?x64xf32>
}

