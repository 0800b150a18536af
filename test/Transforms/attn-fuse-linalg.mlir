// RUN: attn-opt %s --attn-fuse --split-input-file | FileCheck %s
// attn-fuse on linalg-on-tensors, spelled the way frontends emit it.

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>

// batch_matmul with a linalg.transpose feeding it, scale and causal predicate
// in one generic, linalg.softmax.
// CHECK-LABEL: func.func @bmm_transpose_causal_softmax
// CHECK-SAME: (%[[Q:.+]]: tensor<8x128x64xf32>, %[[K:.+]]: tensor<8x128x64xf32>, %[[V:.+]]: tensor<8x128x64xf32>)
// CHECK-DAG: %[[Q4:.+]] = tensor.expand_shape %[[Q]] {{\[}}[0, 1], [2], [3]] output_shape [1, 8, 128, 64]
// CHECK-DAG: %[[K4:.+]] = tensor.expand_shape %[[K]] {{\[}}[0, 1], [2], [3]]
// CHECK-DAG: %[[V4:.+]] = tensor.expand_shape %[[V]] {{\[}}[0, 1], [2], [3]]
// CHECK: %[[O:.+]] = attn.attention %[[Q4]], %[[K4]], %[[V4]] mask = <causal> scale = 1.250000e-01 : (tensor<1x8x128x64xf32>, tensor<1x8x128x64xf32>, tensor<1x8x128x64xf32>) -> tensor<1x8x128x64xf32>
// CHECK: %[[R:.+]] = tensor.collapse_shape %[[O]] {{\[}}[0, 1], [2], [3]]
// CHECK: return %[[R]]
// CHECK-NOT: linalg.
func.func @bmm_transpose_causal_softmax(%q: tensor<8x128x64xf32>, %k: tensor<8x128x64xf32>, %v: tensor<8x128x64xf32>) -> tensor<8x128x64xf32> {
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant 0.125 : f32
  %zero = arith.constant 0.0 : f32
  %kt0 = tensor.empty() : tensor<8x64x128xf32>
  %kt = linalg.transpose ins(%k : tensor<8x128x64xf32>) outs(%kt0 : tensor<8x64x128xf32>) permutation = [0, 2, 1]
  %s0 = tensor.empty() : tensor<8x128x128xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%s0 : tensor<8x128x128xf32>) -> tensor<8x128x128xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x128x64xf32>, tensor<8x64x128xf32>) outs(%sf : tensor<8x128x128xf32>) -> tensor<8x128x128xf32>
  %m = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<8x128x128xf32>) outs(%s0 : tensor<8x128x128xf32>) {
  ^bb0(%x: f32, %o: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ok = arith.cmpi ule, %j, %i : index
    %sc = arith.mulf %x, %c : f32
    %r = arith.select %ok, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<8x128x128xf32>
  %p = linalg.softmax dimension(2) ins(%m : tensor<8x128x128xf32>) outs(%s0 : tensor<8x128x128xf32>) -> tensor<8x128x128xf32>
  %o0 = tensor.empty() : tensor<8x128x64xf32>
  %of = linalg.fill ins(%zero : f32) outs(%o0 : tensor<8x128x64xf32>) -> tensor<8x128x64xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<8x128x128xf32>, tensor<8x128x64xf32>) outs(%of : tensor<8x128x64xf32>) -> tensor<8x128x64xf32>
  return %o : tensor<8x128x64xf32>
}

// -----

// A single head: linalg.matmul whose indexing_maps transpose K, the scale as
// a divide by sqrt(D) on arith-on-tensors, and the unstable softmax
// (exp, sum, divide) with linalg.reduce.
// CHECK-LABEL: func.func @matmul_maps_unstable_softmax
// CHECK-SAME: (%[[Q:.+]]: tensor<16x64xf16>, %[[K:.+]]: tensor<32x64xf16>, %[[V:.+]]: tensor<32x48xf16>)
// CHECK-DAG: %[[Q4:.+]] = tensor.expand_shape %[[Q]] {{\[}}[0, 1, 2], [3]] output_shape [1, 1, 16, 64]
// CHECK-DAG: %[[K4:.+]] = tensor.expand_shape %[[K]] {{\[}}[0, 1, 2], [3]] output_shape [1, 1, 32, 64]
// CHECK-DAG: %[[V4:.+]] = tensor.expand_shape %[[V]] {{\[}}[0, 1, 2], [3]] output_shape [1, 1, 32, 48]
// CHECK: %[[O:.+]] = attn.attention %[[Q4]], %[[K4]], %[[V4]] scale = 1.250000e-01 :
// CHECK-SAME: -> tensor<1x1x16x48xf16>
// CHECK: tensor.collapse_shape %[[O]] {{\[}}[0, 1, 2], [3]] : tensor<1x1x16x48xf16> into tensor<16x48xf16>
// CHECK-NOT: math.exp
func.func @matmul_maps_unstable_softmax(%q: tensor<16x64xf16>, %k: tensor<32x64xf16>, %v: tensor<32x48xf16>) -> tensor<16x48xf16> {
  %zero = arith.constant 0.0 : f16
  %d = arith.constant dense<8.0> : tensor<16x32xf16>
  %se = tensor.empty() : tensor<16x32xf16>
  %sf = linalg.fill ins(%zero : f16) outs(%se : tensor<16x32xf16>) -> tensor<16x32xf16>
  %s = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
      ins(%q, %k : tensor<16x64xf16>, tensor<32x64xf16>) outs(%sf : tensor<16x32xf16>) -> tensor<16x32xf16>
  %ss = arith.divf %s, %d : tensor<16x32xf16>
  %e = math.exp %ss : tensor<16x32xf16>
  %re = tensor.empty() : tensor<16xf16>
  %rf = linalg.fill ins(%zero : f16) outs(%re : tensor<16xf16>) -> tensor<16xf16>
  %sum = linalg.reduce ins(%e : tensor<16x32xf16>) outs(%rf : tensor<16xf16>) dimensions = [1]
    (%in: f16, %acc: f16) {
      %0 = arith.addf %in, %acc : f16
      linalg.yield %0 : f16
    }
  %sb = linalg.broadcast ins(%sum : tensor<16xf16>) outs(%se : tensor<16x32xf16>) dimensions = [1]
  %p = arith.divf %e, %sb : tensor<16x32xf16>
  %oe = tensor.empty() : tensor<16x48xf16>
  %of = linalg.fill ins(%zero : f16) outs(%oe : tensor<16x48xf16>) -> tensor<16x48xf16>
  %o = linalg.matmul ins(%p, %v : tensor<16x32xf16>, tensor<32x48xf16>) outs(%of : tensor<16x48xf16>) -> tensor<16x48xf16>
  return %o : tensor<16x48xf16>
}

// -----

// The attention of a Llama layer as torch-mlir lowers HF's eager attention:
// repeat_kv (expand_shape -> broadcast -> collapse_shape), 4-D matmuls through
// collapse/batch_matmul/expand, bf16 scores, the model's additive mask,
// softmax in f32 (keep-dim max and sum reductions), truncation to bf16.
// CHECK-LABEL: func.func @llama_gqa
// CHECK-SAME: (%[[Q:.+]]: tensor<1x8x16x32xbf16>, %[[K:.+]]: tensor<1x2x16x32xbf16>, %[[V:.+]]: tensor<1x2x16x32xbf16>, %[[MASK:.+]]: tensor<1x1x16x16xbf16>)
// CHECK: %[[O:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] bias(%[[MASK]]) scale = 0.176757813 : (tensor<1x8x16x32xbf16>, tensor<1x2x16x32xbf16>, tensor<1x2x16x32xbf16>, tensor<1x1x16x16xbf16>) -> tensor<1x8x16x32xbf16>
// CHECK-NOT: linalg.generic
// CHECK-NOT: linalg.batch_matmul
// CHECK: linalg.transpose
// CHECK: return
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#mask = affine_map<(d0, d1, d2, d3) -> (d0, 0, d2, d3)>
#keep = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
#map5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
#bc5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, 0, d3, d4)>
func.func @llama_gqa(%q: tensor<1x8x16x32xbf16>, %k: tensor<1x2x16x32xbf16>, %v: tensor<1x2x16x32xbf16>, %mask: tensor<1x1x16x16xbf16>) -> tensor<1x16x256xbf16> {
  %scale = arith.constant 1.767580e-01 : bf16
  %zero = arith.constant 0.000000e+00 : bf16
  %zf = arith.constant 0.000000e+00 : f32
  %ninf = arith.constant 0xFF800000 : f32
  // repeat_kv(k, 4)
  %k5 = tensor.expand_shape %k [[0], [1, 2], [3], [4]] output_shape [1, 2, 1, 16, 32] : tensor<1x2x16x32xbf16> into tensor<1x2x1x16x32xbf16>
  %ke = tensor.empty() : tensor<1x2x4x16x32xbf16>
  %kb = linalg.generic {indexing_maps = [#bc5, #map5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%k5 : tensor<1x2x1x16x32xbf16>) outs(%ke : tensor<1x2x4x16x32xbf16>) {
  ^bb0(%in: bf16, %out: bf16):
    linalg.yield %in : bf16
  } -> tensor<1x2x4x16x32xbf16>
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<1x2x4x16x32xbf16> into tensor<1x8x16x32xbf16>
  // repeat_kv(v, 4)
  %v5 = tensor.expand_shape %v [[0], [1, 2], [3], [4]] output_shape [1, 2, 1, 16, 32] : tensor<1x2x16x32xbf16> into tensor<1x2x1x16x32xbf16>
  %vb = linalg.generic {indexing_maps = [#bc5, #map5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%v5 : tensor<1x2x1x16x32xbf16>) outs(%ke : tensor<1x2x4x16x32xbf16>) {
  ^bb0(%in: bf16, %out: bf16):
    linalg.yield %in : bf16
  } -> tensor<1x2x4x16x32xbf16>
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<1x2x4x16x32xbf16> into tensor<1x8x16x32xbf16>
  // torch.matmul(q, k.transpose(2, 3))
  %kte = tensor.empty() : tensor<1x8x32x16xbf16>
  %kt = linalg.transpose ins(%kr : tensor<1x8x16x32xbf16>) outs(%kte : tensor<1x8x32x16xbf16>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x8x16x32xbf16> into tensor<8x16x32xbf16>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x8x32x16xbf16> into tensor<8x32x16xbf16>
  %se = tensor.empty() : tensor<8x16x16xbf16>
  %sf = linalg.fill ins(%zero : bf16) outs(%se : tensor<8x16x16xbf16>) -> tensor<8x16x16xbf16>
  %s3 = linalg.batch_matmul ins(%q3, %kt3 : tensor<8x16x32xbf16>, tensor<8x32x16xbf16>) outs(%sf : tensor<8x16x16xbf16>) -> tensor<8x16x16xbf16>
  %s = tensor.expand_shape %s3 [[0, 1], [2], [3]] output_shape [1, 8, 16, 16] : tensor<8x16x16xbf16> into tensor<1x8x16x16xbf16>
  // * scaling
  %e4 = tensor.empty() : tensor<1x8x16x16xbf16>
  %ss = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x8x16x16xbf16>) outs(%e4 : tensor<1x8x16x16xbf16>) {
  ^bb0(%in: bf16, %out: bf16):
    %0 = arith.mulf %in, %scale : bf16
    linalg.yield %0 : bf16
  } -> tensor<1x8x16x16xbf16>
  // + causal_mask
  %sm = linalg.generic {indexing_maps = [#map4, #mask, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ss, %mask : tensor<1x8x16x16xbf16>, tensor<1x1x16x16xbf16>) outs(%e4 : tensor<1x8x16x16xbf16>) {
  ^bb0(%in: bf16, %m: bf16, %out: bf16):
    %0 = arith.addf %in, %m : bf16
    linalg.yield %0 : bf16
  } -> tensor<1x8x16x16xbf16>
  // softmax(dim=-1, dtype=float32): to f32, amax, sub, exp, sum, div
  %f4 = tensor.empty() : tensor<1x8x16x16xf32>
  %x = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sm : tensor<1x8x16x16xbf16>) outs(%f4 : tensor<1x8x16x16xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %0 = arith.extf %in : bf16 to f32
    linalg.yield %0 : f32
  } -> tensor<1x8x16x16xf32>
  %r1 = tensor.empty() : tensor<1x8x16x1xf32>
  %mi = linalg.fill ins(%ninf : f32) outs(%r1 : tensor<1x8x16x1xf32>) -> tensor<1x8x16x1xf32>
  %mx = linalg.generic {indexing_maps = [#map4, #keep], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x : tensor<1x8x16x16xf32>) outs(%mi : tensor<1x8x16x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.maximumf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<1x8x16x1xf32>
  %ex = linalg.generic {indexing_maps = [#map4, #keep, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %mx : tensor<1x8x16x16xf32>, tensor<1x8x16x1xf32>) outs(%f4 : tensor<1x8x16x16xf32>) {
  ^bb0(%in: f32, %m: f32, %out: f32):
    %0 = arith.subf %in, %m : f32
    %1 = math.exp %0 : f32
    linalg.yield %1 : f32
  } -> tensor<1x8x16x16xf32>
  %si = linalg.fill ins(%zf : f32) outs(%r1 : tensor<1x8x16x1xf32>) -> tensor<1x8x16x1xf32>
  %sum = linalg.generic {indexing_maps = [#map4, #keep], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x8x16x16xf32>) outs(%si : tensor<1x8x16x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.addf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<1x8x16x1xf32>
  %pf = linalg.generic {indexing_maps = [#map4, #keep, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x8x16x16xf32>, tensor<1x8x16x1xf32>) outs(%f4 : tensor<1x8x16x16xf32>) {
  ^bb0(%in: f32, %d: f32, %out: f32):
    %0 = arith.divf %in, %d : f32
    linalg.yield %0 : f32
  } -> tensor<1x8x16x16xf32>
  %p = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%pf : tensor<1x8x16x16xf32>) outs(%e4 : tensor<1x8x16x16xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %0 = arith.truncf %in : f32 to bf16
    linalg.yield %0 : bf16
  } -> tensor<1x8x16x16xbf16>
  // torch.matmul(p, v)
  %p3 = tensor.collapse_shape %p [[0, 1], [2], [3]] : tensor<1x8x16x16xbf16> into tensor<8x16x16xbf16>
  %v3 = tensor.collapse_shape %vr [[0, 1], [2], [3]] : tensor<1x8x16x32xbf16> into tensor<8x16x32xbf16>
  %oe = tensor.empty() : tensor<8x16x32xbf16>
  %of = linalg.fill ins(%zero : bf16) outs(%oe : tensor<8x16x32xbf16>) -> tensor<8x16x32xbf16>
  %o3 = linalg.batch_matmul ins(%p3, %v3 : tensor<8x16x16xbf16>, tensor<8x16x32xbf16>) outs(%of : tensor<8x16x32xbf16>) -> tensor<8x16x32xbf16>
  %o = tensor.expand_shape %o3 [[0, 1], [2], [3]] output_shape [1, 8, 16, 32] : tensor<8x16x32xbf16> into tensor<1x8x16x32xbf16>
  // attn_output.transpose(1, 2).reshape(1, 16, 256)
  %ote = tensor.empty() : tensor<1x16x8x32xbf16>
  %ot = linalg.transpose ins(%o : tensor<1x8x16x32xbf16>) outs(%ote : tensor<1x16x8x32xbf16>) permutation = [0, 2, 1, 3]
  %out = tensor.collapse_shape %ot [[0], [1], [2, 3]] : tensor<1x16x8x32xbf16> into tensor<1x16x256xbf16>
  return %out : tensor<1x16x256xbf16>
}

// -----

// 4-D linalg.generic contractions on f32 copies of bf16 inputs, a Mistral
// sliding window (j <= i and i - j < 4) as a predicate selecting -inf, the
// stable softmax fused into fewer generics, and the output truncated to bf16.
// The fused op runs on the bf16 sources and produces bf16 directly.
// CHECK-LABEL: func.func @generic_sliding_window_bf16
// CHECK-SAME: (%[[Q:.+]]: tensor<2x4x16x32xbf16>, %[[K:.+]]: tensor<2x4x16x32xbf16>, %[[V:.+]]: tensor<2x4x16x32xbf16>)
// CHECK: %[[O:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] mask = <window, left = 3, right = 0> scale = 1.000000e+00 : (tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>, tensor<2x4x16x32xbf16>) -> tensor<2x4x16x32xbf16>
// CHECK-NEXT: return %[[O]]
#q = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#p = affine_map<(b, h, i, e, j) -> (b, h, i, j)>
#v = affine_map<(b, h, i, e, j) -> (b, h, j, e)>
#o = affine_map<(b, h, i, e, j) -> (b, h, i, e)>
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#row = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @generic_sliding_window_bf16(%qb: tensor<2x4x16x32xbf16>, %kb: tensor<2x4x16x32xbf16>, %vb: tensor<2x4x16x32xbf16>) -> tensor<2x4x16x32xbf16> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %w = arith.constant 4 : index
  %e32 = tensor.empty() : tensor<2x4x16x32xf32>
  %q = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%qb : tensor<2x4x16x32xbf16>) outs(%e32 : tensor<2x4x16x32xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %0 = arith.extf %in : bf16 to f32
    linalg.yield %0 : f32
  } -> tensor<2x4x16x32xf32>
  %k = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%kb : tensor<2x4x16x32xbf16>) outs(%e32 : tensor<2x4x16x32xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %0 = arith.extf %in : bf16 to f32
    linalg.yield %0 : f32
  } -> tensor<2x4x16x32xf32>
  %v = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%vb : tensor<2x4x16x32xbf16>) outs(%e32 : tensor<2x4x16x32xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %0 = arith.extf %in : bf16 to f32
    linalg.yield %0 : f32
  } -> tensor<2x4x16x32xf32>
  %se = tensor.empty() : tensor<2x4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<2x4x16x16xf32>) -> tensor<2x4x16x16xf32>
  %s = linalg.generic {indexing_maps = [#q, #k, #s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>) outs(%sf : tensor<2x4x16x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %0 = arith.mulf %a, %b : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<2x4x16x16xf32>
  %masked = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<2x4x16x16xf32>) outs(%se : tensor<2x4x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %causal = arith.cmpi sle, %j, %i : index
    %d = arith.subi %i, %j : index
    %near = arith.cmpi slt, %d, %w : index
    %ok = arith.andi %causal, %near : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x4x16x16xf32>
  %re = tensor.empty() : tensor<2x4x16xf32>
  %mi = linalg.fill ins(%ninf : f32) outs(%re : tensor<2x4x16xf32>) -> tensor<2x4x16xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%masked : tensor<2x4x16x16xf32>) outs(%mi : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.maxnumf %acc, %in : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x16xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%masked, %mx : tensor<2x4x16x16xf32>, tensor<2x4x16xf32>) outs(%se : tensor<2x4x16x16xf32>) {
  ^bb0(%in: f32, %m: f32, %out: f32):
    %0 = arith.subf %in, %m : f32
    %1 = math.exp %0 : f32
    linalg.yield %1 : f32
  } -> tensor<2x4x16x16xf32>
  %si = linalg.fill ins(%zero : f32) outs(%re : tensor<2x4x16xf32>) -> tensor<2x4x16xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<2x4x16x16xf32>) outs(%si : tensor<2x4x16xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.addf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x16xf32>
  %pr = linalg.generic {indexing_maps = [#id4, #row, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<2x4x16x16xf32>, tensor<2x4x16xf32>) outs(%se : tensor<2x4x16x16xf32>) {
  ^bb0(%in: f32, %l: f32, %out: f32):
    %one = arith.constant 1.0 : f32
    %r = arith.divf %one, %l : f32
    %0 = arith.mulf %in, %r : f32
    linalg.yield %0 : f32
  } -> tensor<2x4x16x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%e32 : tensor<2x4x16x32xf32>) -> tensor<2x4x16x32xf32>
  %o = linalg.generic {indexing_maps = [#p, #v, #o], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%pr, %v : tensor<2x4x16x16xf32>, tensor<2x4x16x32xf32>) outs(%of : tensor<2x4x16x32xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %0 = arith.mulf %a, %b : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<2x4x16x32xf32>
  %eb = tensor.empty() : tensor<2x4x16x32xbf16>
  %ob = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%o : tensor<2x4x16x32xf32>) outs(%eb : tensor<2x4x16x32xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %0 = arith.truncf %in : f32 to bf16
    linalg.yield %0 : bf16
  } -> tensor<2x4x16x32xbf16>
  return %ob : tensor<2x4x16x32xbf16>
}

// The cases below share one skeleton: Q·Kᵀ as batch_matmul on [B·H, S, D]
// with Kᵀ given, one generic for the logits, linalg.softmax, P·V.

// -----

// Banded predicate i - j <= 2 and j - i <= 1: FlashAttention's window (2, 1).
// CHECK-LABEL: func.func @window_left_right
// CHECK: attn.attention {{.*}} mask = <window, left = 2, right = 1> scale = 1.000000e+00
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @window_left_right(%q: tensor<4x8x16xf32>, %kt: tensor<4x16x8xf32>, %v: tensor<4x8x16xf32>) -> tensor<4x8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x8x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x8x16xf32>, tensor<4x16x8xf32>) outs(%sf : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %a = arith.subi %i, %j : index
    %b = arith.subi %j, %i : index
    %c2 = arith.constant 2 : index
    %c1 = arith.constant 1 : index
    %l2 = arith.cmpi sle, %a, %c2 : index
    %r1 = arith.cmpi sle, %b, %c1 : index
    %ok = arith.andi %l2, %r1 : i1
    %r = arith.select %ok, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %oe = tensor.empty() : tensor<4x8x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  return %o : tensor<4x8x16xf32>
}

// -----

// Sq = 4 < Sk = 12, the predicate j <= i + (Sk - Sq) in i64: causal,
// bottom-right aligned (query row i sits at key position i + 8).
// CHECK-LABEL: func.func @causal_bottom_right_sq_lt_sk
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00 : (tensor<1x4x4x16xf32>, tensor<1x4x12x16xf32>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @causal_bottom_right_sq_lt_sk(%q: tensor<4x4x16xf32>, %kt: tensor<4x16x12xf32>, %v: tensor<4x12x16xf32>) -> tensor<4x4x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x4x12xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x4x12xf32>) -> tensor<4x4x12xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x4x16xf32>, tensor<4x16x12xf32>) outs(%sf : tensor<4x4x12xf32>) -> tensor<4x4x12xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x4x12xf32>) outs(%se : tensor<4x4x12xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %i64 = arith.index_cast %i : index to i64
    %j64 = arith.index_cast %j : index to i64
    %off = arith.constant 8 : i64
    %p = arith.addi %i64, %off : i64
    %ok = arith.cmpi sle, %j64, %p : i64
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

// Sq = 12 > Sk = 4, j - i <= -8 written as a masked-out "j > i - 8" with
// the -inf in the true branch: causal; the first 8 rows see no key.
// CHECK-LABEL: func.func @causal_bottom_right_sq_gt_sk
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.000000e+00 : (tensor<1x4x12x16xf32>, tensor<1x4x4x16xf32>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @causal_bottom_right_sq_gt_sk(%q: tensor<4x12x16xf32>, %kt: tensor<4x16x4xf32>, %v: tensor<4x4x16xf32>) -> tensor<4x12x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x12x4xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x12x4xf32>) -> tensor<4x12x4xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x12x16xf32>, tensor<4x16x4xf32>) outs(%sf : tensor<4x12x4xf32>) -> tensor<4x12x4xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x12x4xf32>) outs(%se : tensor<4x12x4xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c8 = arith.constant 8 : index
    %im = arith.subi %i, %c8 : index
    %bad = arith.cmpi sgt, %j, %im : index
    %r = arith.select %bad, %ninf, %x : f32
    linalg.yield %r : f32
  } -> tensor<4x12x4xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x12x4xf32>) outs(%se : tensor<4x12x4xf32>) -> tensor<4x12x4xf32>
  %oe = tensor.empty() : tensor<4x12x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x12x16xf32>) -> tensor<4x12x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x12x4xf32>, tensor<4x4x16xf32>) outs(%of : tensor<4x12x16xf32>) -> tensor<4x12x16xf32>
  return %o : tensor<4x12x16xf32>
}

// -----

// The mask added as select(j <= i, 0, -inf), the way a mask tensor is built
// from a predicate, with the scale as a divide.
// CHECK-LABEL: func.func @additive_causal_select
// CHECK: attn.attention {{.*}} mask = <causal> scale = 2.500000e-01
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @additive_causal_select(%q: tensor<4x8x16xf32>, %kt: tensor<4x16x8xf32>, %v: tensor<4x8x16xf32>) -> tensor<4x8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x8x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x8x16xf32>, tensor<4x16x8xf32>) outs(%sf : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ok = arith.cmpi ule, %j, %i : index
    %m = arith.select %ok, %zero, %ninf : f32
    %c4 = arith.constant 4.0 : f32
    %sc = arith.divf %x, %c4 : f32
    %r = arith.addf %sc, %m : f32
    linalg.yield %r : f32
  } -> tensor<4x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %oe = tensor.empty() : tensor<4x8x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  return %o : tensor<4x8x16xf32>
}

// -----

// A constant [Sq, Sk] mask of 0 / -inf that is exactly causal.
// CHECK-LABEL: func.func @constant_causal_mask
// CHECK: attn.attention {{.*}} mask = <causal> scale = 1.250000e-01
// CHECK-NOT: arith.constant dense
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @constant_causal_mask(%q: tensor<4x8x16xf32>, %kt: tensor<4x16x8xf32>, %v: tensor<4x8x16xf32>) -> tensor<4x8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %mask = arith.constant dense<[[0.0, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000],
[0.0, 0.0, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000],
[0.0, 0.0, 0.0, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000],
[0.0, 0.0, 0.0, 0.0, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000],
[0.0, 0.0, 0.0, 0.0, 0.0, 0xFF800000, 0xFF800000, 0xFF800000],
[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0xFF800000, 0xFF800000],
[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0xFF800000],
[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<8x8xf32>
  %se = tensor.empty() : tensor<4x8x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x8x16xf32>, tensor<4x16x8xf32>) outs(%sf : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %l = linalg.generic {indexing_maps = [#id3, affine_map<(d0, d1, d2) -> (d1, d2)>, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %mask : tensor<4x8x8xf32>, tensor<8x8xf32>) outs(%se : tensor<4x8x8xf32>) {
  ^bb0(%x: f32, %m: f32, %out: f32):
    %c = arith.constant 0.125 : f32
    %sc = arith.mulf %x, %c : f32
    %r = arith.addf %sc, %m : f32
    linalg.yield %r : f32
  } -> tensor<4x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %oe = tensor.empty() : tensor<4x8x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  return %o : tensor<4x8x16xf32>
}

// -----

// A constant banded mask using torch.finfo(float32).min: a window of 3.
// CHECK-LABEL: func.func @constant_banded_mask_finfo_min
// CHECK: attn.attention {{.*}} mask = <window, left = 2, right = 0>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @constant_banded_mask_finfo_min(%q: tensor<4x8x16xf32>, %kt: tensor<4x16x8xf32>, %v: tensor<4x8x16xf32>) -> tensor<4x8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %mask = arith.constant dense<[[[0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38],
[0.0, 0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38],
[0.0, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38],
[-3.40282347E+38, 0.0, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38],
[-3.40282347E+38, -3.40282347E+38, 0.0, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38],
[-3.40282347E+38, -3.40282347E+38, -3.40282347E+38, 0.0, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38],
[-3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, 0.0, 0.0, 0.0, -3.40282347E+38],
[-3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, 0.0, 0.0, 0.0]]]> : tensor<1x8x8xf32>
  %se = tensor.empty() : tensor<4x8x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x8x16xf32>, tensor<4x16x8xf32>) outs(%sf : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %l = linalg.generic {indexing_maps = [#id3, affine_map<(d0, d1, d2) -> (0, d1, d2)>, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %mask : tensor<4x8x8xf32>, tensor<1x8x8xf32>) outs(%se : tensor<4x8x8xf32>) {
  ^bb0(%x: f32, %m: f32, %out: f32):
    %r = arith.addf %x, %m : f32
    linalg.yield %r : f32
  } -> tensor<4x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %oe = tensor.empty() : tensor<4x8x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  return %o : tensor<4x8x16xf32>
}

// -----

// A constant i1 mask used by select(mask, s, -inf): causal.
// CHECK-LABEL: func.func @constant_bool_mask_select
// CHECK: attn.attention {{.*}} mask = <causal>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @constant_bool_mask_select(%q: tensor<4x8x16xf32>, %kt: tensor<4x16x8xf32>, %v: tensor<4x8x16xf32>) -> tensor<4x8x16xf32> {
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

// -----

// A runtime bias over [B·H, Sq, Sk] (ALiBi-style) stays an operand,
// reshaped to [1, B·H, Sq, Sk].
// CHECK-LABEL: func.func @runtime_bias_3d
// CHECK-SAME: %[[BIAS:[a-z0-9]+]]: tensor<4x8x8xf32>
// CHECK: %[[B4:.+]] = tensor.expand_shape %[[BIAS]] {{\[}}[0, 1], [2], [3]] output_shape [1, 4, 8, 8]
// CHECK: attn.attention {{.*}} bias(%[[B4]]) scale = 1.000000e+00
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @runtime_bias_3d(%q: tensor<4x8x16xf32>, %kt: tensor<4x16x8xf32>, %v: tensor<4x8x16xf32>, %bias: tensor<4x8x8xf32>) -> tensor<4x8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x8x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x8x16xf32>, tensor<4x16x8xf32>) outs(%sf : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %bias : tensor<4x8x8xf32>, tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) {
  ^bb0(%x: f32, %b: f32, %out: f32):
    %r = arith.addf %x, %b : f32
    linalg.yield %r : f32
  } -> tensor<4x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %oe = tensor.empty() : tensor<4x8x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  return %o : tensor<4x8x16xf32>
}

// -----

// Gemma-2 logit soft-capping 50 * tanh(s / 50) after the scale, then causal.
// CHECK-LABEL: func.func @softcap
// CHECK: attn.attention {{.*}} mask = <causal> scale = 6.250000e-02 softcap = 5.000000e+01
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @softcap(%q: tensor<4x8x16xf32>, %kt: tensor<4x16x8xf32>, %v: tensor<4x8x16xf32>) -> tensor<4x8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<4x8x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x8x16xf32>, tensor<4x16x8xf32>) outs(%sf : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) {
  ^bb0(%x: f32, %out: f32):
    %c = arith.constant 0.0625 : f32
    %cap = arith.constant 50.0 : f32
    %sc = arith.mulf %x, %c : f32
    %d = arith.divf %sc, %cap : f32
    %t = math.tanh %d : f32
    %capped = arith.mulf %t, %cap : f32
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ok = arith.cmpi sge, %i, %j : index
    %r = arith.select %ok, %capped, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<4x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %oe = tensor.empty() : tensor<4x8x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  return %o : tensor<4x8x16xf32>
}

// -----

// The scale applied to Q before Q·Kᵀ (as PyTorch's SDPA decomposition does),
// then a further scale of 2 on the scores: the product is the scale.
// CHECK-LABEL: func.func @scale_on_query
// CHECK-SAME: (%[[Q:[a-z0-9]+]]: tensor<4x8x16xf32>
// CHECK: tensor.expand_shape %[[Q]]
// CHECK: attn.attention {{.*}} scale = 5.000000e-01
// CHECK-NOT: arith.mulf
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @scale_on_query(%q: tensor<4x8x16xf32>, %kt: tensor<4x16x8xf32>, %v: tensor<4x8x16xf32>) -> tensor<4x8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %c025 = arith.constant dense<0.25> : tensor<4x8x16xf32>
  %qs = arith.mulf %q, %c025 : tensor<4x8x16xf32>
  %se = tensor.empty() : tensor<4x8x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %s = linalg.batch_matmul ins(%qs, %kt : tensor<4x8x16xf32>, tensor<4x16x8xf32>) outs(%sf : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) {
  ^bb0(%x: f32, %out: f32):
    %c = arith.constant 2.0 : f32
    %r = arith.mulf %c, %x : f32
    linalg.yield %r : f32
  } -> tensor<4x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<4x8x8xf32>) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %oe = tensor.empty() : tensor<4x8x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  return %o : tensor<4x8x16xf32>
}

// -----

// Multi-query attention: one K/V head broadcast to the 4 query heads
// (linalg.broadcast adding the head dim), then the 3-D batched form.
// CHECK-LABEL: func.func @mqa_broadcast
// CHECK-SAME: (%[[Q:.+]]: tensor<2x4x16x32xf32>, %[[K:.+]]: tensor<2x16x32xf32>, %[[V:.+]]: tensor<2x16x32xf32>)
// CHECK-DAG: %[[K4:.+]] = tensor.expand_shape %[[K]] {{\[}}[0], [1, 2], [3]] output_shape [2, 1, 16, 32]
// CHECK-DAG: %[[V4:.+]] = tensor.expand_shape %[[V]] {{\[}}[0], [1, 2], [3]] output_shape [2, 1, 16, 32]
// CHECK: attn.attention %[[Q]], %[[K4]], %[[V4]] mask = <causal> scale = 0.176776692 : (tensor<2x4x16x32xf32>, tensor<2x1x16x32xf32>, tensor<2x1x16x32xf32>) -> tensor<2x4x16x32xf32>
// CHECK-NOT: linalg.broadcast
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @mqa_broadcast(%q: tensor<2x4x16x32xf32>, %k: tensor<2x16x32xf32>, %v: tensor<2x16x32xf32>) -> tensor<8x16x32xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant 0.176776695 : f32
  %e4 = tensor.empty() : tensor<2x4x16x32xf32>
  %kb = linalg.broadcast ins(%k : tensor<2x16x32xf32>) outs(%e4 : tensor<2x4x16x32xf32>) dimensions = [1]
  %vb = linalg.broadcast ins(%v : tensor<2x16x32xf32>) outs(%e4 : tensor<2x4x16x32xf32>) dimensions = [1]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<2x4x16x32xf32> into tensor<8x16x32xf32>
  %k3 = tensor.collapse_shape %kb [[0, 1], [2], [3]] : tensor<2x4x16x32xf32> into tensor<8x16x32xf32>
  %v3 = tensor.collapse_shape %vb [[0, 1], [2], [3]] : tensor<2x4x16x32xf32> into tensor<8x16x32xf32>
  %se = tensor.empty() : tensor<8x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q3, %k3 : tensor<8x16x32xf32>, tensor<8x16x32xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ok = arith.cmpi ule, %j, %i : index
    %sc = arith.mulf %x, %c : f32
    %r = arith.select %ok, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %oe = tensor.empty() : tensor<8x16x32xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  return %o : tensor<8x16x32xf32>
}
