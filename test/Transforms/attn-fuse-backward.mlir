// RUN: attn-opt %s --attn-fuse --split-input-file | FileCheck %s
// With fuse-backward=0 (what the GPU pipelines use while their host code
// cannot launch attn.attention_grad's kernels) nothing here fuses: P feeds
// the backward.
// RUN: attn-opt %s --attn-fuse=fuse-backward=0 --split-input-file | FileCheck %s --check-prefix=OFF
// OFF-NOT: attn.attention
// attn-fuse on training graphs: the forward unfused attention plus the
// backward autograd builds for it become attn.attention (with its lse) and
// attn.attention_grad. The near misses are in attn-fuse-backward-misses.mlir.

// torch-mlir's shape of it with named ops: K transposed for Q·Kᵀ, the causal
// mask and the scale in one generic, linalg.softmax; the backward with
// transposes and batch_matmuls (dK as (Qᵀ·dS)ᵀ), _softmax_backward_data as
// dP·P − P·sum(dP·P) in named element-wise ops, the mask re-applied to the
// gradient before the scale.
// CHECK-LABEL: func.func @named_causal_mha
// CHECK-SAME: (%[[Q:.+]]: tensor<8x16x32xf32>, %[[K:.+]]: tensor<8x16x32xf32>, %[[V:.+]]: tensor<8x16x32xf32>, %[[DO:.+]]: tensor<8x16x32xf32>)
// CHECK-DAG: %[[Q4:.+]] = tensor.expand_shape %[[Q]] {{\[}}[0, 1], [2], [3]] output_shape [1, 8, 16, 32]
// CHECK-DAG: %[[K4:.+]] = tensor.expand_shape %[[K]]
// CHECK-DAG: %[[V4:.+]] = tensor.expand_shape %[[V]]
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q4]], %[[K4]], %[[V4]] mask = <causal> scale = 1.250000e-01 : (tensor<1x8x16x32xf32>, tensor<1x8x16x32xf32>, tensor<1x8x16x32xf32>) -> (tensor<1x8x16x32xf32>, tensor<1x8x16xf32>)
// CHECK: %[[OUT:.+]] = tensor.collapse_shape %[[O]]
// CHECK: %[[DO4:.+]] = tensor.expand_shape %[[DO]]
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q4]], %[[K4]], %[[V4]], %[[O]], %[[DO4]], %[[LSE]] mask = <causal> scale = 1.250000e-01 : (tensor<1x8x16x32xf32>, tensor<1x8x16x32xf32>, tensor<1x8x16x32xf32>, tensor<1x8x16x32xf32>, tensor<1x8x16x32xf32>, tensor<1x8x16xf32>) -> (tensor<1x8x16x32xf32>, tensor<1x8x16x32xf32>, tensor<1x8x16x32xf32>)
// CHECK-DAG: %[[DQ3:.+]] = tensor.collapse_shape %[[DQ]]
// CHECK-DAG: %[[DK3:.+]] = tensor.collapse_shape %[[DK]]
// CHECK-DAG: %[[DV3:.+]] = tensor.collapse_shape %[[DV]]
// CHECK: return %[[OUT]], %[[DQ3]], %[[DK3]], %[[DV3]]
// CHECK-NOT: linalg.

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @named_causal_mha(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
    -> (tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>) {
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant 0.125 : f32
  %zero = arith.constant 0.0 : f32
  // Forward: S = Q·Kᵀ, causal mask on the scaled scores, P = softmax, O = P·V.
  %kte = tensor.empty() : tensor<8x32x16xf32>
  %kt = linalg.transpose ins(%k : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %se = tensor.empty() : tensor<8x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
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
  %out = linalg.batch_matmul ins(%p, %v : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dV = Pᵀ·dO
  %pt = linalg.transpose ins(%p : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) permutation = [0, 2, 1]
  %dv = linalg.batch_matmul ins(%pt, %do : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dP = dO·Vᵀ
  %vt = linalg.transpose ins(%v : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dp = linalg.batch_matmul ins(%do, %vt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // _softmax_backward_data: dP·P − P·sum(dP·P)
  %dpp = linalg.mul ins(%dp, %p : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %re = tensor.empty() : tensor<8x16xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x16xf32>) -> tensor<8x16xf32>
  %sum = linalg.reduce ins(%dpp : tensor<8x16x16xf32>) outs(%rf : tensor<8x16xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %sumb = linalg.broadcast ins(%sum : tensor<8x16xf32>) outs(%se : tensor<8x16x16xf32>) dimensions = [2]
  %psum = linalg.mul ins(%p, %sumb : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %dl = linalg.sub ins(%dpp, %psum : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // masked_fill backward (the mask re-applied), then the scale.
  %ds = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%dl : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ok = arith.cmpi ule, %j, %i : index
    %m = arith.select %ok, %x, %zero : f32
    %r = arith.mulf %m, %c : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  // dQ = dS·(Kᵀ)ᵀ
  %ktt = linalg.transpose ins(%kt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  %dq = linalg.batch_matmul ins(%ds, %ktt : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // d(Kᵀ) = Qᵀ·dS, dK = d(Kᵀ)ᵀ
  %qt = linalg.transpose ins(%q : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dktf = linalg.fill ins(%zero : f32) outs(%kte : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dkt = linalg.batch_matmul ins(%qt, %ds : tensor<8x32x16xf32>, tensor<8x16x16xf32>) outs(%dktf : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dk = linalg.transpose ins(%dkt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  return %out, %dq, %dk, %dv : tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>
}

// -----

// Every contraction a linalg.generic whose maps do the transposes, softmax
// and its backward decomposed on tensors (exp, sum, divide; mulf, sum,
// subf), the scale a splat constant. dQ is computed but dead.
// CHECK-LABEL: func.func @generic_decomposed
// CHECK-SAME: (%[[Q:.+]]: tensor<4x8x16xf32>, %[[K:.+]]: tensor<4x8x16xf32>, %[[V:.+]]: tensor<4x8x16xf32>, %[[DO:.+]]: tensor<4x8x16xf32>)
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %{{.+}}, %{{.+}}, %{{.+}} scale = 2.500000e-01 :
// CHECK: %[[OUT:.+]] = tensor.collapse_shape %[[O]]
// CHECK: %[[DO4:.+]] = tensor.expand_shape %[[DO]]
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %{{.+}}, %{{.+}}, %{{.+}}, %[[O]], %[[DO4]], %[[LSE]] scale = 2.500000e-01 :
// CHECK-NOT: tensor.collapse_shape %[[DQ]]
// CHECK-DAG: %[[DK3:.+]] = tensor.collapse_shape %[[DK]]
// CHECK-DAG: %[[DV3:.+]] = tensor.collapse_shape %[[DV]]
// CHECK: return %[[OUT]], %[[DK3]], %[[DV3]]
// CHECK-NOT: linalg.
// CHECK-NOT: math.exp

#qk_q = affine_map<(b, i, j, d) -> (b, i, d)>
#qk_k = affine_map<(b, i, j, d) -> (b, j, d)>
#qk_s = affine_map<(b, i, j, d) -> (b, i, j)>
#pv_p = affine_map<(b, i, d, j) -> (b, i, j)>
#pv_v = affine_map<(b, i, d, j) -> (b, j, d)>
#pv_o = affine_map<(b, i, d, j) -> (b, i, d)>
#dv_p = affine_map<(b, j, d, i) -> (b, i, j)>
#dv_do = affine_map<(b, j, d, i) -> (b, i, d)>
#dv_out = affine_map<(b, j, d, i) -> (b, j, d)>
func.func @generic_decomposed(%q: tensor<4x8x16xf32>, %k: tensor<4x8x16xf32>, %v: tensor<4x8x16xf32>, %do: tensor<4x8x16xf32>)
    -> (tensor<4x8x16xf32>, tensor<4x8x16xf32>, tensor<4x8x16xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant dense<0.25> : tensor<4x8x8xf32>
  %se = tensor.empty() : tensor<4x8x8xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x8x8xf32>) -> tensor<4x8x8xf32>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : tensor<4x8x16xf32>, tensor<4x8x16xf32>) outs(%sf : tensor<4x8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %0 = arith.mulf %a, %b : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<4x8x8xf32>
  // softmax as exp, sum, divide on tensors.
  %ss = arith.mulf %s, %c : tensor<4x8x8xf32>
  %e = math.exp %ss : tensor<4x8x8xf32>
  %re = tensor.empty() : tensor<4x8xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<4x8xf32>) -> tensor<4x8xf32>
  %sum = linalg.reduce ins(%e : tensor<4x8x8xf32>) outs(%rf : tensor<4x8xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %sb = linalg.broadcast ins(%sum : tensor<4x8xf32>) outs(%se : tensor<4x8x8xf32>) dimensions = [2]
  %p = arith.divf %e, %sb : tensor<4x8x8xf32>
  %oe = tensor.empty() : tensor<4x8x16xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x8x16xf32>) -> tensor<4x8x16xf32>
  %o = linalg.generic {indexing_maps = [#pv_p, #pv_v, #pv_o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %v : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %0 = arith.mulf %a, %b : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<4x8x16xf32>
  // dV = Pᵀ·dO (the maps transpose P)
  %dv = linalg.generic {indexing_maps = [#dv_p, #dv_do, #dv_out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %do : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %0 = arith.mulf %a, %b : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<4x8x16xf32>
  // dP = dO·Vᵀ
  %dp = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%do, %v : tensor<4x8x16xf32>, tensor<4x8x16xf32>) outs(%sf : tensor<4x8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %0 = arith.mulf %a, %b : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<4x8x8xf32>
  // Decomposed softmax backward on tensors, then the scale.
  %dpp = arith.mulf %dp, %p : tensor<4x8x8xf32>
  %r = linalg.reduce ins(%dpp : tensor<4x8x8xf32>) outs(%rf : tensor<4x8xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %rb = linalg.broadcast ins(%r : tensor<4x8xf32>) outs(%se : tensor<4x8x8xf32>) dimensions = [2]
  %prb = arith.mulf %p, %rb : tensor<4x8x8xf32>
  %dl = arith.subf %dpp, %prb : tensor<4x8x8xf32>
  %ds = arith.mulf %dl, %c : tensor<4x8x8xf32>
  // dQ = dS·K (dead: Q needs no gradient downstream)
  %dq = linalg.generic {indexing_maps = [#pv_p, #pv_v, #pv_o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%ds, %k : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %0 = arith.mulf %a, %b : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<4x8x16xf32>
  // dK = dSᵀ·Q
  %dk = linalg.generic {indexing_maps = [#dv_p, #dv_do, #dv_out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%ds, %q : tensor<4x8x8xf32>, tensor<4x8x16xf32>) outs(%of : tensor<4x8x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %0 = arith.mulf %a, %b : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<4x8x16xf32>
  return %o, %dk, %dv : tensor<4x8x16xf32>, tensor<4x8x16xf32>, tensor<4x8x16xf32>
}

// -----

// A Llama layer's eager attention and its autograd backward as torch-mlir
// lowers them: repeat_kv (expand_shape, broadcast, collapse_shape), 4-D
// matmuls through collapse/batch_matmul/expand, the stable softmax in
// keep-dim generics; backward through the same views, _softmax_backward_data
// in generics, and repeat_kv's backward: dK and dV summed over each group of
// query heads (keep-dim sum, then squeeze).
// CHECK-LABEL: func.func @gqa_repeat_kv
// CHECK-SAME: (%[[Q:.+]]: tensor<1x4x16x32xf32>, %[[K:.+]]: tensor<1x2x16x32xf32>, %[[V:.+]]: tensor<1x2x16x32xf32>, %[[DO:.+]]: tensor<1x4x16x32xf32>)
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] scale = 0.176776692 : (tensor<1x4x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>) -> (tensor<1x4x16x32xf32>, tensor<1x4x16xf32>)
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q]], %[[K]], %[[V]], %[[O]], %[[DO]], %[[LSE]] scale = 0.176776692 : (tensor<1x4x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16xf32>) -> (tensor<1x4x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>)
// CHECK: return %{{.+}}, %[[DQ]], %[[DK]], %[[DV]]
// CHECK-NOT: linalg.

#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#keep = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
#map5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
#bc5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, 0, d3, d4)>
func.func @gqa_repeat_kv(%q: tensor<1x4x16x32xf32>, %k: tensor<1x2x16x32xf32>, %v: tensor<1x2x16x32xf32>, %do: tensor<1x4x16x32xf32>)
    -> (tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>) {
  %scale = arith.constant 0.176776692 : f32
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  // repeat_kv(k, 2), repeat_kv(v, 2)
  %k5 = tensor.expand_shape %k [[0], [1, 2], [3], [4]] output_shape [1, 2, 1, 16, 32] : tensor<1x2x16x32xf32> into tensor<1x2x1x16x32xf32>
  %e5 = tensor.empty() : tensor<1x2x2x16x32xf32>
  %kb = linalg.generic {indexing_maps = [#bc5, #map5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%k5 : tensor<1x2x1x16x32xf32>) outs(%e5 : tensor<1x2x2x16x32xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<1x2x2x16x32xf32>
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<1x2x2x16x32xf32> into tensor<1x4x16x32xf32>
  %v5 = tensor.expand_shape %v [[0], [1, 2], [3], [4]] output_shape [1, 2, 1, 16, 32] : tensor<1x2x16x32xf32> into tensor<1x2x1x16x32xf32>
  %vb = linalg.generic {indexing_maps = [#bc5, #map5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%v5 : tensor<1x2x1x16x32xf32>) outs(%e5 : tensor<1x2x2x16x32xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<1x2x2x16x32xf32>
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<1x2x2x16x32xf32> into tensor<1x4x16x32xf32>
  // torch.matmul(q, k.transpose(2, 3)) * scale
  %e4t = tensor.empty() : tensor<1x4x32x16xf32>
  %kt = linalg.transpose ins(%kr : tensor<1x4x16x32xf32>) outs(%e4t : tensor<1x4x32x16xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x4x16x32xf32> into tensor<4x16x32xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x4x32x16xf32> into tensor<4x32x16xf32>
  %se = tensor.empty() : tensor<4x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s3 = linalg.batch_matmul ins(%q3, %kt3 : tensor<4x16x32xf32>, tensor<4x32x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %s = tensor.expand_shape %s3 [[0, 1], [2], [3]] output_shape [1, 4, 16, 16] : tensor<4x16x16xf32> into tensor<1x4x16x16xf32>
  %e4 = tensor.empty() : tensor<1x4x16x16xf32>
  %ss = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x4x16x16xf32>) outs(%e4 : tensor<1x4x16x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.mulf %in, %scale : f32
    linalg.yield %0 : f32
  } -> tensor<1x4x16x16xf32>
  // softmax(dim=-1): amax, sub, exp, sum, div (keep-dim reductions)
  %r1 = tensor.empty() : tensor<1x4x16x1xf32>
  %mi = linalg.fill ins(%ninf : f32) outs(%r1 : tensor<1x4x16x1xf32>) -> tensor<1x4x16x1xf32>
  %mx = linalg.generic {indexing_maps = [#map4, #keep], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ss : tensor<1x4x16x16xf32>) outs(%mi : tensor<1x4x16x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.maximumf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<1x4x16x1xf32>
  %ex = linalg.generic {indexing_maps = [#map4, #keep, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ss, %mx : tensor<1x4x16x16xf32>, tensor<1x4x16x1xf32>) outs(%e4 : tensor<1x4x16x16xf32>) {
  ^bb0(%in: f32, %m: f32, %out: f32):
    %0 = arith.subf %in, %m : f32
    %1 = math.exp %0 : f32
    linalg.yield %1 : f32
  } -> tensor<1x4x16x16xf32>
  %si = linalg.fill ins(%zero : f32) outs(%r1 : tensor<1x4x16x1xf32>) -> tensor<1x4x16x1xf32>
  %sum = linalg.generic {indexing_maps = [#map4, #keep], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x4x16x16xf32>) outs(%si : tensor<1x4x16x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.addf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<1x4x16x1xf32>
  %p = linalg.generic {indexing_maps = [#map4, #keep, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x4x16x16xf32>, tensor<1x4x16x1xf32>) outs(%e4 : tensor<1x4x16x16xf32>) {
  ^bb0(%in: f32, %d: f32, %out: f32):
    %0 = arith.divf %in, %d : f32
    linalg.yield %0 : f32
  } -> tensor<1x4x16x16xf32>
  // torch.matmul(p, v)
  %p3 = tensor.collapse_shape %p [[0, 1], [2], [3]] : tensor<1x4x16x16xf32> into tensor<4x16x16xf32>
  %v3 = tensor.collapse_shape %vr [[0, 1], [2], [3]] : tensor<1x4x16x32xf32> into tensor<4x16x32xf32>
  %oe = tensor.empty() : tensor<4x16x32xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<4x16x32xf32>) -> tensor<4x16x32xf32>
  %o3 = linalg.batch_matmul ins(%p3, %v3 : tensor<4x16x16xf32>, tensor<4x16x32xf32>) outs(%of : tensor<4x16x32xf32>) -> tensor<4x16x32xf32>
  %o = tensor.expand_shape %o3 [[0, 1], [2], [3]] output_shape [1, 4, 16, 32] : tensor<4x16x32xf32> into tensor<1x4x16x32xf32>

  // Backward of torch.matmul(p, v): dP = dO·vᵀ, d(repeated v) = pᵀ·dO.
  %do3 = tensor.collapse_shape %do [[0, 1], [2], [3]] : tensor<1x4x16x32xf32> into tensor<4x16x32xf32>
  %vt = linalg.transpose ins(%vr : tensor<1x4x16x32xf32>) outs(%e4t : tensor<1x4x32x16xf32>) permutation = [0, 1, 3, 2]
  %vt3 = tensor.collapse_shape %vt [[0, 1], [2], [3]] : tensor<1x4x32x16xf32> into tensor<4x32x16xf32>
  %dp3 = linalg.batch_matmul ins(%do3, %vt3 : tensor<4x16x32xf32>, tensor<4x32x16xf32>) outs(%sf : tensor<4x16x16xf32>) -> tensor<4x16x16xf32>
  %dp = tensor.expand_shape %dp3 [[0, 1], [2], [3]] output_shape [1, 4, 16, 16] : tensor<4x16x16xf32> into tensor<1x4x16x16xf32>
  %pt = linalg.transpose ins(%p : tensor<1x4x16x16xf32>) outs(%e4 : tensor<1x4x16x16xf32>) permutation = [0, 1, 3, 2]
  %pt3 = tensor.collapse_shape %pt [[0, 1], [2], [3]] : tensor<1x4x16x16xf32> into tensor<4x16x16xf32>
  %dvr3 = linalg.batch_matmul ins(%pt3, %do3 : tensor<4x16x16xf32>, tensor<4x16x32xf32>) outs(%of : tensor<4x16x32xf32>) -> tensor<4x16x32xf32>
  %dvr = tensor.expand_shape %dvr3 [[0, 1], [2], [3]] output_shape [1, 4, 16, 32] : tensor<4x16x32xf32> into tensor<1x4x16x32xf32>
  // Backward of repeat_kv(v): view as [1, 2, 2, 16, 32], sum(dim=2, keepdim), squeeze.
  %dv5 = tensor.expand_shape %dvr [[0], [1, 2], [3], [4]] output_shape [1, 2, 2, 16, 32] : tensor<1x4x16x32xf32> into tensor<1x2x2x16x32xf32>
  %g1 = tensor.empty() : tensor<1x2x1x16x32xf32>
  %gf = linalg.fill ins(%zero : f32) outs(%g1 : tensor<1x2x1x16x32xf32>) -> tensor<1x2x1x16x32xf32>
  %dvs = linalg.generic {indexing_maps = [#map5, #bc5], iterator_types = ["parallel", "parallel", "reduction", "parallel", "parallel"]} ins(%dv5 : tensor<1x2x2x16x32xf32>) outs(%gf : tensor<1x2x1x16x32xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.addf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<1x2x1x16x32xf32>
  %dv = tensor.collapse_shape %dvs [[0], [1, 2], [3], [4]] : tensor<1x2x1x16x32xf32> into tensor<1x2x16x32xf32>
  // _softmax_backward_data(dP, p): dP·p − p·sum(dP·p, -1, keepdim)
  %dpp = linalg.generic {indexing_maps = [#map4, #map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%dp, %p : tensor<1x4x16x16xf32>, tensor<1x4x16x16xf32>) outs(%e4 : tensor<1x4x16x16xf32>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %0 = arith.mulf %a, %b : f32
    linalg.yield %0 : f32
  } -> tensor<1x4x16x16xf32>
  %rs = linalg.generic {indexing_maps = [#map4, #keep], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%dpp : tensor<1x4x16x16xf32>) outs(%si : tensor<1x4x16x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.addf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<1x4x16x1xf32>
  %dl = linalg.generic {indexing_maps = [#map4, #map4, #keep, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%dpp, %p, %rs : tensor<1x4x16x16xf32>, tensor<1x4x16x16xf32>, tensor<1x4x16x1xf32>) outs(%e4 : tensor<1x4x16x16xf32>) {
  ^bb0(%a: f32, %b: f32, %r: f32, %out: f32):
    %0 = arith.mulf %b, %r : f32
    %1 = arith.subf %a, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<1x4x16x16xf32>
  // Backward of * scale.
  %ds = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%dl : tensor<1x4x16x16xf32>) outs(%e4 : tensor<1x4x16x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.mulf %in, %scale : f32
    linalg.yield %0 : f32
  } -> tensor<1x4x16x16xf32>
  // Backward of torch.matmul(q, kt): dQ = dS·ktᵀ, d(kt) = qᵀ·dS.
  %ds3 = tensor.collapse_shape %ds [[0, 1], [2], [3]] : tensor<1x4x16x16xf32> into tensor<4x16x16xf32>
  %e4k = tensor.empty() : tensor<1x4x16x32xf32>
  %ktt = linalg.transpose ins(%kt : tensor<1x4x32x16xf32>) outs(%e4k : tensor<1x4x16x32xf32>) permutation = [0, 1, 3, 2]
  %ktt3 = tensor.collapse_shape %ktt [[0, 1], [2], [3]] : tensor<1x4x16x32xf32> into tensor<4x16x32xf32>
  %dq3 = linalg.batch_matmul ins(%ds3, %ktt3 : tensor<4x16x16xf32>, tensor<4x16x32xf32>) outs(%of : tensor<4x16x32xf32>) -> tensor<4x16x32xf32>
  %dq = tensor.expand_shape %dq3 [[0, 1], [2], [3]] output_shape [1, 4, 16, 32] : tensor<4x16x32xf32> into tensor<1x4x16x32xf32>
  %qt = linalg.transpose ins(%q : tensor<1x4x16x32xf32>) outs(%e4t : tensor<1x4x32x16xf32>) permutation = [0, 1, 3, 2]
  %qt3 = tensor.collapse_shape %qt [[0, 1], [2], [3]] : tensor<1x4x32x16xf32> into tensor<4x32x16xf32>
  %dkte = tensor.empty() : tensor<4x32x16xf32>
  %dktf = linalg.fill ins(%zero : f32) outs(%dkte : tensor<4x32x16xf32>) -> tensor<4x32x16xf32>
  %dkt3 = linalg.batch_matmul ins(%qt3, %ds3 : tensor<4x32x16xf32>, tensor<4x16x16xf32>) outs(%dktf : tensor<4x32x16xf32>) -> tensor<4x32x16xf32>
  %dkt = tensor.expand_shape %dkt3 [[0, 1], [2], [3]] output_shape [1, 4, 32, 16] : tensor<4x32x16xf32> into tensor<1x4x32x16xf32>
  // Backward of k.transpose(2, 3), then of repeat_kv(k).
  %dkr = linalg.transpose ins(%dkt : tensor<1x4x32x16xf32>) outs(%e4k : tensor<1x4x16x32xf32>) permutation = [0, 1, 3, 2]
  %dk5 = tensor.expand_shape %dkr [[0], [1, 2], [3], [4]] output_shape [1, 2, 2, 16, 32] : tensor<1x4x16x32xf32> into tensor<1x2x2x16x32xf32>
  %dks = linalg.generic {indexing_maps = [#map5, #bc5], iterator_types = ["parallel", "parallel", "reduction", "parallel", "parallel"]} ins(%dk5 : tensor<1x2x2x16x32xf32>) outs(%gf : tensor<1x2x1x16x32xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.addf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<1x2x1x16x32xf32>
  %dk = tensor.collapse_shape %dks [[0], [1, 2], [3], [4]] : tensor<1x2x1x16x32xf32> into tensor<1x2x16x32xf32>
  return %o, %dq, %dk, %dv : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>
}

// -----

// Softcap 30 · tanh(s / 30) after the scale: the backward goes through the
// mask, * cap, tanh_backward g · (1 − t²) on the saved tanh, / cap and
// * scale.
// CHECK-LABEL: func.func @softcap
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q4:.+]], %[[K4:.+]], %[[V4:.+]] mask = <causal> scale = 1.250000e-01 softcap = 3.000000e+01 :
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q4]], %[[K4]], %[[V4]], %[[O]], %{{.+}}, %[[LSE]] mask = <causal> scale = 1.250000e-01 softcap = 3.000000e+01 :
// CHECK-NOT: linalg.
// CHECK-NOT: math.tanh

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @softcap(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
    -> (tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>) {
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant 0.125 : f32
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %cap = arith.constant 30.0 : f32
  // Forward: S = Q·Kᵀ, causal mask on the scaled scores, P = softmax, O = P·V.
  %kte = tensor.empty() : tensor<8x32x16xf32>
  %kt = linalg.transpose ins(%k : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %se = tensor.empty() : tensor<8x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %sc = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %r = arith.mulf %x, %c : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  // tanh(x / cap), saved for the backward.
  %t = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%sc : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %d = arith.divf %x, %cap : f32
    %r = math.tanh %d : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%t : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ok = arith.cmpi ule, %j, %i : index
    %cx = arith.mulf %x, %cap : f32
    %r = arith.select %ok, %cx, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %oe = tensor.empty() : tensor<8x16x32xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  %out = linalg.batch_matmul ins(%p, %v : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dV = Pᵀ·dO
  %pt = linalg.transpose ins(%p : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) permutation = [0, 2, 1]
  %dv = linalg.batch_matmul ins(%pt, %do : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dP = dO·Vᵀ
  %vt = linalg.transpose ins(%v : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dp = linalg.batch_matmul ins(%do, %vt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // _softmax_backward_data: dP·P − P·sum(dP·P)
  %dpp = linalg.mul ins(%dp, %p : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %re = tensor.empty() : tensor<8x16xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x16xf32>) -> tensor<8x16xf32>
  %sum = linalg.reduce ins(%dpp : tensor<8x16x16xf32>) outs(%rf : tensor<8x16xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %sumb = linalg.broadcast ins(%sum : tensor<8x16xf32>) outs(%se : tensor<8x16x16xf32>) dimensions = [2]
  %psum = linalg.mul ins(%p, %sumb : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %dl = linalg.sub ins(%dpp, %psum : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // Backward of the mask and of * cap; tanh_backward: g · (1 − t²); then of
  // / cap and of * scale.
  %g1 = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%dl : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ok = arith.cmpi ule, %j, %i : index
    %m = arith.select %ok, %x, %zero : f32
    %r = arith.mulf %m, %cap : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  %g2 = linalg.generic {indexing_maps = [#id3, #id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%g1, %t : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %yy = arith.mulf %y, %y : f32
    %one_minus = arith.subf %one, %yy : f32
    %r = arith.mulf %x, %one_minus : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  %ds = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%g2 : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %d = arith.divf %x, %cap : f32
    %r = arith.mulf %d, %c : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  // dQ = dS·(Kᵀ)ᵀ
  %ktt = linalg.transpose ins(%kt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  %dq = linalg.batch_matmul ins(%ds, %ktt : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // d(Kᵀ) = Qᵀ·dS, dK = d(Kᵀ)ᵀ
  %qt = linalg.transpose ins(%q : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dktf = linalg.fill ins(%zero : f32) outs(%kte : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dkt = linalg.batch_matmul ins(%qt, %ds : tensor<8x32x16xf32>, tensor<8x16x16xf32>) outs(%dktf : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dk = linalg.transpose ins(%dkt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  return %out, %dq, %dk, %dv : tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>
}

// -----

// Dynamic sequence lengths (torch-mlir's `?` with tensor.empty(%d)), no mask
// and no scale; the softmax backward spelled P ⊙ (dP − rowsum(dP ⊙ P)) in one
// generic.
// CHECK-LABEL: func.func @dynamic_seq
// CHECK-SAME: (%[[Q:.+]]: tensor<1x8x?x64xf32>, %[[K:.+]]: tensor<1x8x?x64xf32>, %[[V:.+]]: tensor<1x8x?x64xf32>, %[[DO:.+]]: tensor<1x8x?x64xf32>)
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] scale = 1.000000e+00 : (tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>) -> (tensor<1x8x?x64xf32>, tensor<1x8x?xf32>)
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q]], %[[K]], %[[V]], %[[O]], %[[DO]], %[[LSE]] scale = 1.000000e+00 : (tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>, tensor<1x8x?xf32>) -> (tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>)
// CHECK: return %{{.+}}, %[[DQ]], %[[DK]], %[[DV]]
// CHECK-NOT: linalg.

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#row3 = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @dynamic_seq(%q: tensor<1x8x?x64xf32>, %k: tensor<1x8x?x64xf32>, %v: tensor<1x8x?x64xf32>, %do: tensor<1x8x?x64xf32>)
    -> (tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>) {
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
  %p = linalg.softmax dimension(2) ins(%s : tensor<8x?x?xf32>) outs(%se : tensor<8x?x?xf32>) -> tensor<8x?x?xf32>
  %v3 = tensor.collapse_shape %v [[0, 1], [2], [3]] : tensor<1x8x?x64xf32> into tensor<8x?x64xf32>
  %oe = tensor.empty(%sq) : tensor<8x?x64xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<8x?x64xf32>) -> tensor<8x?x64xf32>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<8x?x?xf32>, tensor<8x?x64xf32>) outs(%of : tensor<8x?x64xf32>) -> tensor<8x?x64xf32>
  %o4 = tensor.expand_shape %o [[0, 1], [2], [3]] output_shape [1, 8, %sq, 64] : tensor<8x?x64xf32> into tensor<1x8x?x64xf32>
  // dV = Pᵀ·dO
  %do3 = tensor.collapse_shape %do [[0, 1], [2], [3]] : tensor<1x8x?x64xf32> into tensor<8x?x64xf32>
  %pte = tensor.empty(%sk, %sq) : tensor<8x?x?xf32>
  %pt = linalg.transpose ins(%p : tensor<8x?x?xf32>) outs(%pte : tensor<8x?x?xf32>) permutation = [0, 2, 1]
  %ke = tensor.empty(%sk) : tensor<8x?x64xf32>
  %kf = linalg.fill ins(%zero : f32) outs(%ke : tensor<8x?x64xf32>) -> tensor<8x?x64xf32>
  %dv3 = linalg.batch_matmul ins(%pt, %do3 : tensor<8x?x?xf32>, tensor<8x?x64xf32>) outs(%kf : tensor<8x?x64xf32>) -> tensor<8x?x64xf32>
  %dv = tensor.expand_shape %dv3 [[0, 1], [2], [3]] output_shape [1, 8, %sk, 64] : tensor<8x?x64xf32> into tensor<1x8x?x64xf32>
  // dP = dO·Vᵀ
  %vte = tensor.empty(%sk) : tensor<8x64x?xf32>
  %vt = linalg.transpose ins(%v3 : tensor<8x?x64xf32>) outs(%vte : tensor<8x64x?xf32>) permutation = [0, 2, 1]
  %dp = linalg.batch_matmul ins(%do3, %vt : tensor<8x?x64xf32>, tensor<8x64x?xf32>) outs(%sf : tensor<8x?x?xf32>) -> tensor<8x?x?xf32>
  // dS = P ⊙ (dP − rowsum(dP ⊙ P))
  %dpp = linalg.mul ins(%dp, %p : tensor<8x?x?xf32>, tensor<8x?x?xf32>) outs(%se : tensor<8x?x?xf32>) -> tensor<8x?x?xf32>
  %re = tensor.empty(%sq) : tensor<8x?xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x?xf32>) -> tensor<8x?xf32>
  %r = linalg.reduce ins(%dpp : tensor<8x?x?xf32>) outs(%rf : tensor<8x?xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %ds = linalg.generic {indexing_maps = [#id3, #id3, #row3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%p, %dp, %r : tensor<8x?x?xf32>, tensor<8x?x?xf32>, tensor<8x?xf32>) outs(%se : tensor<8x?x?xf32>) {
  ^bb0(%pv: f32, %g: f32, %rv: f32, %out: f32):
    %0 = arith.subf %g, %rv : f32
    %1 = arith.mulf %pv, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<8x?x?xf32>
  // dQ = dS·(Kᵀ)ᵀ, dK = dSᵀ·Q
  %ktt = linalg.transpose ins(%kt3 : tensor<8x64x?xf32>) outs(%ke : tensor<8x?x64xf32>) permutation = [0, 2, 1]
  %dq3 = linalg.batch_matmul ins(%ds, %ktt : tensor<8x?x?xf32>, tensor<8x?x64xf32>) outs(%of : tensor<8x?x64xf32>) -> tensor<8x?x64xf32>
  %dq = tensor.expand_shape %dq3 [[0, 1], [2], [3]] output_shape [1, 8, %sq, 64] : tensor<8x?x64xf32> into tensor<1x8x?x64xf32>
  %dst = linalg.transpose ins(%ds : tensor<8x?x?xf32>) outs(%pte : tensor<8x?x?xf32>) permutation = [0, 2, 1]
  %dk3 = linalg.batch_matmul ins(%dst, %q3 : tensor<8x?x?xf32>, tensor<8x?x64xf32>) outs(%kf : tensor<8x?x64xf32>) -> tensor<8x?x64xf32>
  %dk = tensor.expand_shape %dk3 [[0, 1], [2], [3]] output_shape [1, 8, %sk, 64] : tensor<8x?x64xf32> into tensor<1x8x?x64xf32>
  return %o4, %dq, %dk, %dv : tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>, tensor<1x8x?x64xf32>
}

// -----

// FlashAttention's Delta spelling: dS = P ⊙ (dP − rowsum(dO ⊙ O)), with O
// the forward's output; the mask is not re-applied on the gradient.
// CHECK-LABEL: func.func @delta_spelling
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q4:.+]], %[[K4:.+]], %[[V4:.+]] mask = <causal> scale = 1.250000e-01 :
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q4]], %[[K4]], %[[V4]], %[[O]], %{{.+}}, %[[LSE]] mask = <causal> scale = 1.250000e-01 :
// CHECK-NOT: linalg.

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @delta_spelling(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
    -> (tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>) {
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant 0.125 : f32
  %zero = arith.constant 0.0 : f32
  // Forward: S = Q·Kᵀ, causal mask on the scaled scores, P = softmax, O = P·V.
  %kte = tensor.empty() : tensor<8x32x16xf32>
  %kt = linalg.transpose ins(%k : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %se = tensor.empty() : tensor<8x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
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
  %out = linalg.batch_matmul ins(%p, %v : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dV = Pᵀ·dO
  %pt = linalg.transpose ins(%p : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) permutation = [0, 2, 1]
  %dv = linalg.batch_matmul ins(%pt, %do : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dP = dO·Vᵀ
  %vt = linalg.transpose ins(%v : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dp = linalg.batch_matmul ins(%do, %vt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // FlashAttention's Delta = rowsum(dO ⊙ O) in place of rowsum(dP ⊙ P):
  // dS = P ⊙ (dP − Delta).
  %doo = linalg.mul ins(%do, %out : tensor<8x16x32xf32>, tensor<8x16x32xf32>) outs(%oe : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  %re = tensor.empty() : tensor<8x16xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x16xf32>) -> tensor<8x16xf32>
  %delta = linalg.reduce ins(%doo : tensor<8x16x32xf32>) outs(%rf : tensor<8x16xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %deltab = linalg.broadcast ins(%delta : tensor<8x16xf32>) outs(%se : tensor<8x16x16xf32>) dimensions = [2]
  %dd = linalg.sub ins(%dp, %deltab : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %dl = linalg.mul ins(%p, %dd : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // Backward of * scale.
  %ds = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%dl : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %r = arith.mulf %x, %c : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  // dQ = dS·(Kᵀ)ᵀ
  %ktt = linalg.transpose ins(%kt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  %dq = linalg.batch_matmul ins(%ds, %ktt : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // d(Kᵀ) = Qᵀ·dS, dK = d(Kᵀ)ᵀ
  %qt = linalg.transpose ins(%q : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dktf = linalg.fill ins(%zero : f32) outs(%kte : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dkt = linalg.batch_matmul ins(%qt, %ds : tensor<8x32x16xf32>, tensor<8x16x16xf32>) outs(%dktf : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dk = linalg.transpose ins(%dkt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  return %out, %dq, %dk, %dv : tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>
}

// -----

// Partial gradients: k does not require grad, so autograd emits no dK
// chain at all (dQ and dV only). attn.attention_grad computes all three;
// attn-tile drops the unused dK.
// CHECK-LABEL: func.func @frozen_key
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q4:.+]], %[[K4:.+]], %[[V4:.+]] mask = <causal> scale = 1.250000e-01 :
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q4]], %[[K4]], %[[V4]], %[[O]], %{{.+}}, %[[LSE]] mask = <causal> scale = 1.250000e-01 :
// CHECK-DAG: %[[DQ3:.+]] = tensor.collapse_shape %[[DQ]]
// CHECK-DAG: %[[DV3:.+]] = tensor.collapse_shape %[[DV]]
// CHECK-NOT: tensor.collapse_shape %[[DK]]
// CHECK: return %{{.+}}, %[[DQ3]], %[[DV3]]
// CHECK-NOT: linalg.

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @frozen_key(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
    -> (tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>) {
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant 0.125 : f32
  %zero = arith.constant 0.0 : f32
  // Forward: S = Q·Kᵀ, causal mask on the scaled scores, P = softmax, O = P·V.
  %kte = tensor.empty() : tensor<8x32x16xf32>
  %kt = linalg.transpose ins(%k : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %se = tensor.empty() : tensor<8x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
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
  %out = linalg.batch_matmul ins(%p, %v : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dV = Pᵀ·dO
  %pt = linalg.transpose ins(%p : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) permutation = [0, 2, 1]
  %dv = linalg.batch_matmul ins(%pt, %do : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dP = dO·Vᵀ
  %vt = linalg.transpose ins(%v : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dp = linalg.batch_matmul ins(%do, %vt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // _softmax_backward_data: dP·P − P·sum(dP·P)
  %dpp = linalg.mul ins(%dp, %p : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %re = tensor.empty() : tensor<8x16xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x16xf32>) -> tensor<8x16xf32>
  %sum = linalg.reduce ins(%dpp : tensor<8x16x16xf32>) outs(%rf : tensor<8x16xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %sumb = linalg.broadcast ins(%sum : tensor<8x16xf32>) outs(%se : tensor<8x16x16xf32>) dimensions = [2]
  %psum = linalg.mul ins(%p, %sumb : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %dl = linalg.sub ins(%dpp, %psum : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // masked_fill backward (the mask re-applied), then the scale.
  %ds = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%dl : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ok = arith.cmpi ule, %j, %i : index
    %m = arith.select %ok, %x, %zero : f32
    %r = arith.mulf %m, %c : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  // dQ = dS·(Kᵀ)ᵀ
  %ktt = linalg.transpose ins(%kt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  %dq = linalg.batch_matmul ins(%ds, %ktt : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  return %out, %dq, %dv : tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>
}

// -----

// V frozen: dQ and dK, no dV. dO is found through dP = dO·Vᵀ.
// CHECK-LABEL: func.func @frozen_value
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q4:.+]], %[[K4:.+]], %[[V4:.+]] mask = <causal> scale = 1.250000e-01 :
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q4]], %[[K4]], %[[V4]], %[[O]], %{{.+}}, %[[LSE]] mask = <causal> scale = 1.250000e-01 :
// CHECK-DAG: %[[DQ3:.+]] = tensor.collapse_shape %[[DQ]]
// CHECK-DAG: %[[DK3:.+]] = tensor.collapse_shape %[[DK]]
// CHECK: return %{{.+}}, %[[DQ3]], %[[DK3]]
// CHECK-NOT: linalg.

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @frozen_value(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
    -> (tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>) {
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant 0.125 : f32
  %zero = arith.constant 0.0 : f32
  // Forward: S = Q·Kᵀ, causal mask on the scaled scores, P = softmax, O = P·V.
  %kte = tensor.empty() : tensor<8x32x16xf32>
  %kt = linalg.transpose ins(%k : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %se = tensor.empty() : tensor<8x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
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
  %out = linalg.batch_matmul ins(%p, %v : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dP = dO·Vᵀ (no dV: V is frozen)
  %vt = linalg.transpose ins(%v : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dp = linalg.batch_matmul ins(%do, %vt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // _softmax_backward_data: dP·P − P·sum(dP·P)
  %dpp = linalg.mul ins(%dp, %p : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %re = tensor.empty() : tensor<8x16xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x16xf32>) -> tensor<8x16xf32>
  %sum = linalg.reduce ins(%dpp : tensor<8x16x16xf32>) outs(%rf : tensor<8x16xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %sumb = linalg.broadcast ins(%sum : tensor<8x16xf32>) outs(%se : tensor<8x16x16xf32>) dimensions = [2]
  %psum = linalg.mul ins(%p, %sumb : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %dl = linalg.sub ins(%dpp, %psum : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // masked_fill backward (the mask re-applied), then the scale.
  %ds = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%dl : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ok = arith.cmpi ule, %j, %i : index
    %m = arith.select %ok, %x, %zero : f32
    %r = arith.mulf %m, %c : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  // dQ = dS·(Kᵀ)ᵀ
  %ktt = linalg.transpose ins(%kt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  %dq = linalg.batch_matmul ins(%ds, %ktt : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // d(Kᵀ) = Qᵀ·dS, dK = d(Kᵀ)ᵀ
  %qt = linalg.transpose ins(%q : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dktf = linalg.fill ins(%zero : f32) outs(%kte : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dkt = linalg.batch_matmul ins(%qt, %ds : tensor<8x32x16xf32>, tensor<8x16x16xf32>) outs(%dktf : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dk = linalg.transpose ins(%dkt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  return %out, %dq, %dk : tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>
}

// -----

// K and V frozen: dQ only.
// CHECK-LABEL: func.func @query_gradient_only
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q4:.+]], %[[K4:.+]], %[[V4:.+]] mask = <causal> scale = 1.250000e-01 :
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q4]], %[[K4]], %[[V4]], %[[O]], %{{.+}}, %[[LSE]] mask = <causal> scale = 1.250000e-01 :
// CHECK: %[[DQ3:.+]] = tensor.collapse_shape %[[DQ]]
// CHECK: return %{{.+}}, %[[DQ3]]
// CHECK-NOT: linalg.

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @query_gradient_only(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
    -> (tensor<8x16x32xf32>, tensor<8x16x32xf32>) {
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant 0.125 : f32
  %zero = arith.constant 0.0 : f32
  // Forward: S = Q·Kᵀ, causal mask on the scaled scores, P = softmax, O = P·V.
  %kte = tensor.empty() : tensor<8x32x16xf32>
  %kt = linalg.transpose ins(%k : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %se = tensor.empty() : tensor<8x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
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
  %out = linalg.batch_matmul ins(%p, %v : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dP = dO·Vᵀ (no dV, no dK: K and V are frozen)
  %vt = linalg.transpose ins(%v : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dp = linalg.batch_matmul ins(%do, %vt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // _softmax_backward_data: dP·P − P·sum(dP·P)
  %dpp = linalg.mul ins(%dp, %p : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %re = tensor.empty() : tensor<8x16xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x16xf32>) -> tensor<8x16xf32>
  %sum = linalg.reduce ins(%dpp : tensor<8x16x16xf32>) outs(%rf : tensor<8x16xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %sumb = linalg.broadcast ins(%sum : tensor<8x16xf32>) outs(%se : tensor<8x16x16xf32>) dimensions = [2]
  %psum = linalg.mul ins(%p, %sumb : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %dl = linalg.sub ins(%dpp, %psum : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // masked_fill backward (the mask re-applied), then the scale.
  %ds = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%dl : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ok = arith.cmpi ule, %j, %i : index
    %m = arith.select %ok, %x, %zero : f32
    %r = arith.mulf %m, %c : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  // dQ = dS·(Kᵀ)ᵀ
  %ktt = linalg.transpose ins(%kt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  %dq = linalg.batch_matmul ins(%ds, %ktt : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  return %out, %dq : tensor<8x16x32xf32>, tensor<8x16x32xf32>
}

// -----

// Q frozen (a cross-attention whose queries come from a frozen encoder,
// say): dK and dV only.
// CHECK-LABEL: func.func @frozen_query
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q4:.+]], %[[K4:.+]], %[[V4:.+]] mask = <causal> scale = 1.250000e-01 :
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q4]], %[[K4]], %[[V4]], %[[O]], %{{.+}}, %[[LSE]] mask = <causal> scale = 1.250000e-01 :
// CHECK-DAG: %[[DK3:.+]] = tensor.collapse_shape %[[DK]]
// CHECK-DAG: %[[DV3:.+]] = tensor.collapse_shape %[[DV]]
// CHECK-NOT: tensor.collapse_shape %[[DQ]]
// CHECK: return %{{.+}}, %[[DK3]], %[[DV3]]
// CHECK-NOT: linalg.

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @frozen_query(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
    -> (tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>) {
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant 0.125 : f32
  %zero = arith.constant 0.0 : f32
  // Forward: S = Q·Kᵀ, causal mask on the scaled scores, P = softmax, O = P·V.
  %kte = tensor.empty() : tensor<8x32x16xf32>
  %kt = linalg.transpose ins(%k : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %se = tensor.empty() : tensor<8x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
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
  %out = linalg.batch_matmul ins(%p, %v : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dV = Pᵀ·dO
  %pt = linalg.transpose ins(%p : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) permutation = [0, 2, 1]
  %dv = linalg.batch_matmul ins(%pt, %do : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dP = dO·Vᵀ
  %vt = linalg.transpose ins(%v : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dp = linalg.batch_matmul ins(%do, %vt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // _softmax_backward_data: dP·P − P·sum(dP·P)
  %dpp = linalg.mul ins(%dp, %p : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %re = tensor.empty() : tensor<8x16xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x16xf32>) -> tensor<8x16xf32>
  %sum = linalg.reduce ins(%dpp : tensor<8x16x16xf32>) outs(%rf : tensor<8x16xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %sumb = linalg.broadcast ins(%sum : tensor<8x16xf32>) outs(%se : tensor<8x16x16xf32>) dimensions = [2]
  %psum = linalg.mul ins(%p, %sumb : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %dl = linalg.sub ins(%dpp, %psum : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // masked_fill backward (the mask re-applied), then the scale.
  %ds = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%dl : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ok = arith.cmpi ule, %j, %i : index
    %m = arith.select %ok, %x, %zero : f32
    %r = arith.mulf %m, %c : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  // d(Kᵀ) = Qᵀ·dS, dK = d(Kᵀ)ᵀ
  %qt = linalg.transpose ins(%q : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dktf = linalg.fill ins(%zero : f32) outs(%kte : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dkt = linalg.batch_matmul ins(%qt, %ds : tensor<8x32x16xf32>, tensor<8x16x16xf32>) outs(%dktf : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dk = linalg.transpose ins(%dkt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  return %out, %dk, %dv : tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>
}

// -----

// Delta computed in one fused reduction generic: rowsum(dO ⊙ O) with mulf
// and addf in the body.
// CHECK-LABEL: func.func @delta_one_generic
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q4:.+]], %[[K4:.+]], %[[V4:.+]] mask = <causal> scale = 1.250000e-01 :
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q4]], %[[K4]], %[[V4]], %[[O]], %{{.+}}, %[[LSE]] mask = <causal> scale = 1.250000e-01 :
// CHECK-NOT: linalg.

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#row = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @delta_one_generic(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
    -> (tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>) {
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant 0.125 : f32
  %zero = arith.constant 0.0 : f32
  // Forward: S = Q·Kᵀ, causal mask on the scaled scores, P = softmax, O = P·V.
  %kte = tensor.empty() : tensor<8x32x16xf32>
  %kt = linalg.transpose ins(%k : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %se = tensor.empty() : tensor<8x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
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
  %out = linalg.batch_matmul ins(%p, %v : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dV = Pᵀ·dO
  %pt = linalg.transpose ins(%p : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) permutation = [0, 2, 1]
  %dv = linalg.batch_matmul ins(%pt, %do : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dP = dO·Vᵀ
  %vt = linalg.transpose ins(%v : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dp = linalg.batch_matmul ins(%do, %vt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // Delta = rowsum(dO ⊙ O) in one generic (mulf + addf, reduction over dv).
  %re = tensor.empty() : tensor<8x16xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x16xf32>) -> tensor<8x16xf32>
  %delta = linalg.generic {indexing_maps = [#id3, #id3, #row], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%do, %out : tensor<8x16x32xf32>, tensor<8x16x32xf32>) outs(%rf : tensor<8x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %0 = arith.mulf %a, %b : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  } -> tensor<8x16xf32>
  %deltab = linalg.broadcast ins(%delta : tensor<8x16xf32>) outs(%se : tensor<8x16x16xf32>) dimensions = [2]
  %dd = linalg.sub ins(%dp, %deltab : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %dl = linalg.mul ins(%p, %dd : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // Backward of * scale.
  %ds = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%dl : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %r = arith.mulf %x, %c : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  // dQ = dS·(Kᵀ)ᵀ
  %ktt = linalg.transpose ins(%kt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  %dq = linalg.batch_matmul ins(%ds, %ktt : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // d(Kᵀ) = Qᵀ·dS, dK = d(Kᵀ)ᵀ
  %qt = linalg.transpose ins(%q : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dktf = linalg.fill ins(%zero : f32) outs(%kte : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dkt = linalg.batch_matmul ins(%qt, %ds : tensor<8x32x16xf32>, tensor<8x16x16xf32>) outs(%dktf : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dk = linalg.transpose ins(%dkt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  return %out, %dq, %dk, %dv : tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>
}

// -----

// bshd, as torch models emit it: q, k, v and dO in [B, S, H, D] through
// transpose(1, 2) and 3-D batch matmuls; each gradient transposed back.
// Both ops read the inputs in place (layout = bshd); the transposes around
// the results cancel under canonicalization.
// CHECK-LABEL: func.func @bshd_transposed
// CHECK-SAME: (%[[Q:.+]]: tensor<2x16x4x32xf32>, %[[K:.+]]: tensor<2x16x4x32xf32>, %[[V:.+]]: tensor<2x16x4x32xf32>, %[[DO:.+]]: tensor<2x16x4x32xf32>)
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] layout = bshd scale = 0.176776692 : (tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>) -> (tensor<2x16x4x32xf32>, tensor<2x4x16xf32>)
// CHECK: attn.attention_grad %[[Q]], %[[K]], %[[V]], %[[O]], %[[DO]], %[[LSE]] layout = bshd scale = 0.176776692 :
// CHECK-NOT: linalg.batch_matmul
// CHECK-NOT: linalg.softmax

#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @bshd_transposed(%q: tensor<2x16x4x32xf32>, %k: tensor<2x16x4x32xf32>, %v: tensor<2x16x4x32xf32>, %do: tensor<2x16x4x32xf32>)
    -> (tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>) {
  %c = arith.constant 0.176776695 : f32
  %zero = arith.constant 0.0 : f32
  // q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), then 3-D
  // batch matmuls on [B·H, S, D].
  %e4 = tensor.empty() : tensor<2x4x16x32xf32>
  %qh = linalg.transpose ins(%q : tensor<2x16x4x32xf32>) outs(%e4 : tensor<2x4x16x32xf32>) permutation = [0, 2, 1, 3]
  %kh = linalg.transpose ins(%k : tensor<2x16x4x32xf32>) outs(%e4 : tensor<2x4x16x32xf32>) permutation = [0, 2, 1, 3]
  %vh = linalg.transpose ins(%v : tensor<2x16x4x32xf32>) outs(%e4 : tensor<2x4x16x32xf32>) permutation = [0, 2, 1, 3]
  %q3 = tensor.collapse_shape %qh [[0, 1], [2], [3]] : tensor<2x4x16x32xf32> into tensor<8x16x32xf32>
  %k3 = tensor.collapse_shape %kh [[0, 1], [2], [3]] : tensor<2x4x16x32xf32> into tensor<8x16x32xf32>
  %v3 = tensor.collapse_shape %vh [[0, 1], [2], [3]] : tensor<2x4x16x32xf32> into tensor<8x16x32xf32>
  %kte = tensor.empty() : tensor<8x32x16xf32>
  %kt = linalg.transpose ins(%k3 : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %se = tensor.empty() : tensor<8x16x16xf32>
  %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul ins(%q3, %kt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %l = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %r = arith.mulf %x, %c : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%l : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %oe = tensor.empty() : tensor<8x16x32xf32>
  %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  %o3 = linalg.batch_matmul ins(%p, %v3 : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // out.transpose(1, 2)
  %o4 = tensor.expand_shape %o3 [[0, 1], [2], [3]] output_shape [2, 4, 16, 32] : tensor<8x16x32xf32> into tensor<2x4x16x32xf32>
  %eb = tensor.empty() : tensor<2x16x4x32xf32>
  %out = linalg.transpose ins(%o4 : tensor<2x4x16x32xf32>) outs(%eb : tensor<2x16x4x32xf32>) permutation = [0, 2, 1, 3]
  // Backward of the output transpose: dO [B, S, H, D] to [B·H, S, D].
  %doh = linalg.transpose ins(%do : tensor<2x16x4x32xf32>) outs(%e4 : tensor<2x4x16x32xf32>) permutation = [0, 2, 1, 3]
  %do3 = tensor.collapse_shape %doh [[0, 1], [2], [3]] : tensor<2x4x16x32xf32> into tensor<8x16x32xf32>
  // dV = Pᵀ·dO
  %pt = linalg.transpose ins(%p : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) permutation = [0, 2, 1]
  %dv3 = linalg.batch_matmul ins(%pt, %do3 : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // dP = dO·Vᵀ
  %vt = linalg.transpose ins(%v3 : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dp = linalg.batch_matmul ins(%do3, %vt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sf : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // _softmax_backward_data, then the scale.
  %dpp = linalg.mul ins(%dp, %p : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %re = tensor.empty() : tensor<8x16xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x16xf32>) -> tensor<8x16xf32>
  %sum = linalg.reduce ins(%dpp : tensor<8x16x16xf32>) outs(%rf : tensor<8x16xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %sumb = linalg.broadcast ins(%sum : tensor<8x16xf32>) outs(%se : tensor<8x16x16xf32>) dimensions = [2]
  %psum = linalg.mul ins(%p, %sumb : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %dl = linalg.sub ins(%dpp, %psum : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %ds = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%dl : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %r = arith.mulf %x, %c : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  // dQ = dS·(Kᵀ)ᵀ
  %ktt = linalg.transpose ins(%kt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  %dq3 = linalg.batch_matmul ins(%ds, %ktt : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  // d(Kᵀ) = Qᵀ·dS, dK = d(Kᵀ)ᵀ
  %qt = linalg.transpose ins(%q3 : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %dktf = linalg.fill ins(%zero : f32) outs(%kte : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dkt = linalg.batch_matmul ins(%qt, %ds : tensor<8x32x16xf32>, tensor<8x16x16xf32>) outs(%dktf : tensor<8x32x16xf32>) -> tensor<8x32x16xf32>
  %dk3 = linalg.transpose ins(%dkt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  // Backward of the input transposes: each gradient back to [B, S, H, D].
  %dq4 = tensor.expand_shape %dq3 [[0, 1], [2], [3]] output_shape [2, 4, 16, 32] : tensor<8x16x32xf32> into tensor<2x4x16x32xf32>
  %dk4 = tensor.expand_shape %dk3 [[0, 1], [2], [3]] output_shape [2, 4, 16, 32] : tensor<8x16x32xf32> into tensor<2x4x16x32xf32>
  %dv4 = tensor.expand_shape %dv3 [[0, 1], [2], [3]] output_shape [2, 4, 16, 32] : tensor<8x16x32xf32> into tensor<2x4x16x32xf32>
  %dq = linalg.transpose ins(%dq4 : tensor<2x4x16x32xf32>) outs(%eb : tensor<2x16x4x32xf32>) permutation = [0, 2, 1, 3]
  %dk = linalg.transpose ins(%dk4 : tensor<2x4x16x32xf32>) outs(%eb : tensor<2x16x4x32xf32>) permutation = [0, 2, 1, 3]
  %dv = linalg.transpose ins(%dv4 : tensor<2x4x16x32xf32>) outs(%eb : tensor<2x16x4x32xf32>) permutation = [0, 2, 1, 3]
  return %out, %dq, %dk, %dv : tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>
}

// -----

// tosa: the forward as attn-fuse-tosa.mlir spells it, the backward in
// tosa.transpose, tosa.matmul, tosa.mul, keep-dim tosa.reduce_sum and
// tosa.sub, the gradients reshaped back with tosa.reshape.
// CHECK-LABEL: func.func @tosa_training
// CHECK-SAME: (%[[Q:.+]]: tensor<2x4x16x32xf32>, %[[K:.+]]: tensor<2x4x16x32xf32>, %[[V:.+]]: tensor<2x4x16x32xf32>, %[[DO:.+]]: tensor<2x4x16x32xf32>)
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] scale = 0.176776692 :
// CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = attn.attention_grad %[[Q]], %[[K]], %[[V]], %[[O]], %[[DO]], %[[LSE]] scale = 0.176776692 :
// CHECK: return %{{.+}}, %[[DQ]], %[[DK]], %[[DV]]
// CHECK-NOT: tosa.matmul

func.func @tosa_training(%q: tensor<2x4x16x32xf32>, %k: tensor<2x4x16x32xf32>, %v: tensor<2x4x16x32xf32>, %do: tensor<2x4x16x32xf32>)
    -> (tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>) {
  %s3 = tosa.const_shape {values = dense<[8, 16, 32]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %s4 = tosa.const_shape {values = dense<[2, 4, 16, 32]> : tensor<4xindex>} : () -> !tosa.shape<4>
  %zp = "tosa.const"() <{values = dense<0.0> : tensor<1xf32>}> : () -> tensor<1xf32>
  %shift = "tosa.const"() <{values = dense<0> : tensor<1xi8>}> : () -> tensor<1xi8>
  %scale = "tosa.const"() <{values = dense<0.176776695> : tensor<1x1x1xf32>}> : () -> tensor<1x1x1xf32>
  // Forward as attn-fuse-tosa.mlir spells it (no mask).
  %q3 = tosa.reshape %q, %s3 : (tensor<2x4x16x32xf32>, !tosa.shape<3>) -> tensor<8x16x32xf32>
  %k3 = tosa.reshape %k, %s3 : (tensor<2x4x16x32xf32>, !tosa.shape<3>) -> tensor<8x16x32xf32>
  %v3 = tosa.reshape %v, %s3 : (tensor<2x4x16x32xf32>, !tosa.shape<3>) -> tensor<8x16x32xf32>
  %kt = tosa.transpose %k3 {perms = array<i32: 0, 2, 1>} : (tensor<8x16x32xf32>) -> tensor<8x32x16xf32>
  %s = tosa.matmul %q3, %kt, %zp, %zp : (tensor<8x16x32xf32>, tensor<8x32x16xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x16x16xf32>
  %ss = tosa.mul %s, %scale, %shift : (tensor<8x16x16xf32>, tensor<1x1x1xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  %mx = tosa.reduce_max %ss {axis = 2 : i32} : (tensor<8x16x16xf32>) -> tensor<8x16x1xf32>
  %d = tosa.sub %ss, %mx : (tensor<8x16x16xf32>, tensor<8x16x1xf32>) -> tensor<8x16x16xf32>
  %e = tosa.exp %d : (tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %sum = tosa.reduce_sum %e {axis = 2 : i32} : (tensor<8x16x16xf32>) -> tensor<8x16x1xf32>
  %r = tosa.reciprocal %sum : (tensor<8x16x1xf32>) -> tensor<8x16x1xf32>
  %p = tosa.mul %e, %r, %shift : (tensor<8x16x16xf32>, tensor<8x16x1xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  %o3 = tosa.matmul %p, %v3, %zp, %zp : (tensor<8x16x16xf32>, tensor<8x16x32xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x16x32xf32>
  %o = tosa.reshape %o3, %s4 : (tensor<8x16x32xf32>, !tosa.shape<4>) -> tensor<2x4x16x32xf32>
  // Backward in the same ops: dO to [B·H, S, D]; dV = Pᵀ·dO.
  %do3 = tosa.reshape %do, %s3 : (tensor<2x4x16x32xf32>, !tosa.shape<3>) -> tensor<8x16x32xf32>
  %pt = tosa.transpose %p {perms = array<i32: 0, 2, 1>} : (tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %dv3 = tosa.matmul %pt, %do3, %zp, %zp : (tensor<8x16x16xf32>, tensor<8x16x32xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x16x32xf32>
  // dP = dO·Vᵀ
  %vt = tosa.transpose %v3 {perms = array<i32: 0, 2, 1>} : (tensor<8x16x32xf32>) -> tensor<8x32x16xf32>
  %dp = tosa.matmul %do3, %vt, %zp, %zp : (tensor<8x16x32xf32>, tensor<8x32x16xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x16x16xf32>
  // Softmax backward P ⊙ (dP − rowsum(dP ⊙ P)) with keep-dim reduce_sum,
  // then the scale.
  %dpp = tosa.mul %dp, %p, %shift : (tensor<8x16x16xf32>, tensor<8x16x16xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  %rs = tosa.reduce_sum %dpp {axis = 2 : i32} : (tensor<8x16x16xf32>) -> tensor<8x16x1xf32>
  %dd = tosa.sub %dp, %rs : (tensor<8x16x16xf32>, tensor<8x16x1xf32>) -> tensor<8x16x16xf32>
  %dl = tosa.mul %p, %dd, %shift : (tensor<8x16x16xf32>, tensor<8x16x16xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  %ds = tosa.mul %dl, %scale, %shift : (tensor<8x16x16xf32>, tensor<1x1x1xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  // dQ = dS·K; dK = (Qᵀ·dS)ᵀ
  %dq3 = tosa.matmul %ds, %k3, %zp, %zp : (tensor<8x16x16xf32>, tensor<8x16x32xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x16x32xf32>
  %qt = tosa.transpose %q3 {perms = array<i32: 0, 2, 1>} : (tensor<8x16x32xf32>) -> tensor<8x32x16xf32>
  %dkt = tosa.matmul %qt, %ds, %zp, %zp : (tensor<8x32x16xf32>, tensor<8x16x16xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<8x32x16xf32>
  %dk3 = tosa.transpose %dkt {perms = array<i32: 0, 2, 1>} : (tensor<8x32x16xf32>) -> tensor<8x16x32xf32>
  %dq = tosa.reshape %dq3, %s4 : (tensor<8x16x32xf32>, !tosa.shape<4>) -> tensor<2x4x16x32xf32>
  %dk = tosa.reshape %dk3, %s4 : (tensor<8x16x32xf32>, !tosa.shape<4>) -> tensor<2x4x16x32xf32>
  %dv = tosa.reshape %dv3, %s4 : (tensor<8x16x32xf32>, !tosa.shape<4>) -> tensor<2x4x16x32xf32>
  return %o, %dq, %dk, %dv : tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>, tensor<2x4x16x32xf32>
}
