// Near misses of the training-graph fusion: each function has a forward
// attention whose P also feeds something that is not exactly its backward.
// attn-fuse must create no attn.attention_grad -- and, as P then has users
// outside the forward, no attn.attention either: each function is left
// exactly as it was (the diff proves it) and, with report-misses, the P·V
// says why.
// RUN: attn-opt %s --split-input-file > %t.before
// RUN: attn-opt %s --split-input-file --attn-fuse > %t.after
// RUN: diff %t.before %t.after
// RUN: attn-opt %s --split-input-file --attn-fuse 2>&1 | FileCheck %s --check-prefix=NOGRAD
// RUN: attn-opt %s --split-input-file --attn-fuse=report-misses 2>&1 >/dev/null | FileCheck %s

// NOGRAD-NOT: attn.attention_grad
// NOGRAD-NOT: attn.attention

// dV = P·dO instead of Pᵀ·dO (the shapes line up only because Sq = Sk):
// not the gradient of V.
// CHECK: remark: attn-fuse: not fused: intermediate scores are used outside the attention
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @dv_without_transpose(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
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
  %dv = linalg.batch_matmul ins(%p, %do : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
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

// The softmax backward reads the softmax of the raw scores, not the P that
// P·V reads (no scale, no mask).
// CHECK: remark: attn-fuse: not fused: intermediate scores are used outside the attention
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @softmax_backward_of_another_p(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
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
  %p2 = linalg.softmax dimension(2) ins(%s : tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  // _softmax_backward_data: dP·P − P·sum(dP·P)
  %dpp = linalg.mul ins(%dp, %p2 : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %re = tensor.empty() : tensor<8x16xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x16xf32>) -> tensor<8x16xf32>
  %sum = linalg.reduce ins(%dpp : tensor<8x16x16xf32>) outs(%rf : tensor<8x16xf32>) dimensions = [2]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %sumb = linalg.broadcast ins(%sum : tensor<8x16xf32>) outs(%se : tensor<8x16x16xf32>) dimensions = [2]
  %psum = linalg.mul ins(%p2, %sumb : tensor<8x16x16xf32>, tensor<8x16x16xf32>) outs(%se : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
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

// rowsum(dP ⊙ P) over the query dim instead of the key dim.
// CHECK: remark: attn-fuse: not fused: intermediate scores are used outside the attention
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @rowsum_over_queries(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
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
  %sum = linalg.reduce ins(%dpp : tensor<8x16x16xf32>) outs(%rf : tensor<8x16xf32>) dimensions = [1]
    (%in: f32, %acc: f32) {
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }
  %sumb = linalg.broadcast ins(%sum : tensor<8x16xf32>) outs(%se : tensor<8x16x16xf32>) dimensions = [1]
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

// The gradient is scaled by 0.25 where the forward scales by 0.125.
// CHECK: remark: attn-fuse: not fused: intermediate scores are used outside the attention
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @gradient_scale_differs(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
    -> (tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>) {
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant 0.125 : f32
  %zero = arith.constant 0.0 : f32
  %c2 = arith.constant 0.25 : f32
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
    %r = arith.mulf %m, %c2 : f32
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

// P is also returned (attention weights output): a use that is not the
// backward's.
// CHECK: remark: attn-fuse: not fused: intermediate scores are used outside the attention
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @probabilities_returned(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
    -> (tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x16xf32>) {
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
  return %out, %dq, %dk, %dv, %p : tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x16xf32>
}

// -----

// Partial gradients (K frozen: dQ and dV only) keep the scale check: dS is
// scaled by 0.25 where the forward scales by 0.125, and with no dK to
// compare against, dQ's chain (no tail scale) must make up the difference.
// CHECK: remark: attn-fuse: not fused: intermediate scores are used outside the attention
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @frozen_key_gradient_scale_differs(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
    -> (tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>) {
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant 0.125 : f32
  %zero = arith.constant 0.0 : f32
  %c2 = arith.constant 0.25 : f32
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
    %r = arith.mulf %m, %c2 : f32
    linalg.yield %r : f32
  } -> tensor<8x16x16xf32>
  // dQ = dS·(Kᵀ)ᵀ
  %ktt = linalg.transpose ins(%kt : tensor<8x32x16xf32>) outs(%oe : tensor<8x16x32xf32>) permutation = [0, 2, 1]
  %dq = linalg.batch_matmul ins(%ds, %ktt : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%of : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  return %out, %dq, %dv : tensor<8x16x32xf32>, tensor<8x16x32xf32>, tensor<8x16x32xf32>
}


// -----

// dQ only (K and V frozen): dO is found through dP alone, and that "dP"
// reads K where the forward reads V.
// CHECK: remark: attn-fuse: not fused: intermediate scores are used outside the attention
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @query_gradient_only_dp_reads_key(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
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
  // "dP" = dO·Kᵀ: K where V belongs (no dV, no dK to find dO by)
  %vt = linalg.transpose ins(%k : tensor<8x16x32xf32>) outs(%kte : tensor<8x32x16xf32>) permutation = [0, 2, 1]
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

// The gradient is masked with j < i where the forward masks j <= i: it would
// zero the diagonal's gradient, which the forward keeps.
// CHECK: remark: attn-fuse: not fused: intermediate scores are used outside the attention
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @gradient_mask_drops_diagonal(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
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
    %ok = arith.cmpi ult, %j, %i : index
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

// GQA whose key gradient stays per query head (repeat_kv's backward, the
// sum over each group, is missing): not the gradient of K.
// CHECK: remark: attn-fuse: not fused: intermediate scores are used outside the attention
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#keep = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
#map5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
#bc5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, 0, d3, d4)>
func.func @gqa_key_gradient_not_summed(%q: tensor<1x4x16x32xf32>, %k: tensor<1x2x16x32xf32>, %v: tensor<1x2x16x32xf32>, %do: tensor<1x4x16x32xf32>)
    -> (tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x2x16x32xf32>) {
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
  return %o, %dq, %dkr, %dv : tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x2x16x32xf32>
}

// -----

// Delta in one fused generic, but of dO ⊙ dO rather than dO ⊙ O.
// CHECK: remark: attn-fuse: not fused: intermediate scores are used outside the attention
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#row = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @delta_one_generic_reads_do_twice(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>, %do: tensor<8x16x32xf32>)
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
  // "Delta" = rowsum(dO ⊙ dO): not O.
  %re = tensor.empty() : tensor<8x16xf32>
  %rf = linalg.fill ins(%zero : f32) outs(%re : tensor<8x16xf32>) -> tensor<8x16xf32>
  %delta = linalg.generic {indexing_maps = [#id3, #id3, #row], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%do, %do : tensor<8x16x32xf32>, tensor<8x16x32xf32>) outs(%rf : tensor<8x16xf32>) {
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

// tosa: the softmax backward's sum runs over the queries (axis 1).
// CHECK: remark: attn-fuse: not fused: intermediate scores are used outside the attention
func.func @tosa_rowsum_over_queries(%q: tensor<2x4x16x32xf32>, %k: tensor<2x4x16x32xf32>, %v: tensor<2x4x16x32xf32>, %do: tensor<2x4x16x32xf32>)
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
  // The "rowsum" is over the queries (axis 1), not the keys.
  %dpp = tosa.mul %dp, %p, %shift : (tensor<8x16x16xf32>, tensor<8x16x16xf32>, tensor<1xi8>) -> tensor<8x16x16xf32>
  %rs = tosa.reduce_sum %dpp {axis = 1 : i32} : (tensor<8x16x16xf32>) -> tensor<8x1x16xf32>
  %dd = tosa.sub %dp, %rs : (tensor<8x16x16xf32>, tensor<8x1x16xf32>) -> tensor<8x16x16xf32>
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
