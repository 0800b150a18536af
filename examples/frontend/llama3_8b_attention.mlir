// Llama-3.1-8B self-attention, prefill of 2048 tokens (bf16).
//
// 32 query heads share 8 KV heads (GQA, repeat_kv), head dim 128, causal.
//
// This is the attention block of one decoder layer in linalg on tensors, the
// way torch-mlir lowers HuggingFace's eager attention (after the q/k/v
// projections and RoPE): repeat_kv as expand_shape -> broadcast ->
// collapse_shape, torch.matmul as collapse_shape -> batch_matmul ->
// expand_shape, the scale multiply, the causal mask built from index
// comparisons and added, softmax(dim=-1, dtype=float32) decomposed into
// max/sub/exp/sum/div with keep-dim reductions, and the cast back to bf16.
//
//   build/bin/attn-opt --attn-fuse --canonicalize examples/frontend/llama3_8b_attention.mlir
//
// turns it into one attn.attention.

#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#keep = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
#sk = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map2 = affine_map<(d0, d1) -> (d0, d1)>
#map5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
#bc5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, 0, d3, d4)>
func.func @attention(%q: tensor<1x32x2048x128xbf16>, %k: tensor<1x8x2048x128xbf16>, %v: tensor<1x8x2048x128xbf16>) -> tensor<1x2048x4096xbf16> {
  %scale = arith.constant 8.838834765e-02 : bf16
  %zero = arith.constant 0.000000e+00 : bf16
  %zf = arith.constant 0.000000e+00 : f32
  %ninf = arith.constant 0xFF800000 : f32
  // repeat_kv(key_states, 4), repeat_kv(value_states, 4)
  %k5 = tensor.expand_shape %k [[0], [1, 2], [3], [4]] output_shape [1, 8, 1, 2048, 128] : tensor<1x8x2048x128xbf16> into tensor<1x8x1x2048x128xbf16>
  %ke = tensor.empty() : tensor<1x8x4x2048x128xbf16>
  %kb = linalg.generic {indexing_maps = [#bc5, #map5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%k5 : tensor<1x8x1x2048x128xbf16>) outs(%ke : tensor<1x8x4x2048x128xbf16>) {
  ^bb0(%in: bf16, %out: bf16):
    linalg.yield %in : bf16
  } -> tensor<1x8x4x2048x128xbf16>
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<1x8x4x2048x128xbf16> into tensor<1x32x2048x128xbf16>
  %v5 = tensor.expand_shape %v [[0], [1, 2], [3], [4]] output_shape [1, 8, 1, 2048, 128] : tensor<1x8x2048x128xbf16> into tensor<1x8x1x2048x128xbf16>
  %vb = linalg.generic {indexing_maps = [#bc5, #map5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%v5 : tensor<1x8x1x2048x128xbf16>) outs(%ke : tensor<1x8x4x2048x128xbf16>) {
  ^bb0(%in: bf16, %out: bf16):
    linalg.yield %in : bf16
  } -> tensor<1x8x4x2048x128xbf16>
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<1x8x4x2048x128xbf16> into tensor<1x32x2048x128xbf16>
  // attn_weights = torch.matmul(query_states, key_states.transpose(2, 3))
  %kte = tensor.empty() : tensor<1x32x128x2048xbf16>
  %kt = linalg.transpose ins(%kr : tensor<1x32x2048x128xbf16>) outs(%kte : tensor<1x32x128x2048xbf16>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x32x2048x128xbf16> into tensor<32x2048x128xbf16>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x32x128x2048xbf16> into tensor<32x128x2048xbf16>
  %se = tensor.empty() : tensor<32x2048x2048xbf16>
  %sf = linalg.fill ins(%zero : bf16) outs(%se : tensor<32x2048x2048xbf16>) -> tensor<32x2048x2048xbf16>
  %s3 = linalg.batch_matmul ins(%q3, %kt3 : tensor<32x2048x128xbf16>, tensor<32x128x2048xbf16>) outs(%sf : tensor<32x2048x2048xbf16>) -> tensor<32x2048x2048xbf16>
  %s = tensor.expand_shape %s3 [[0, 1], [2], [3]] output_shape [1, 32, 2048, 2048] : tensor<32x2048x2048xbf16> into tensor<1x32x2048x2048xbf16>
  // * self.scaling
  %e4 = tensor.empty() : tensor<1x32x2048x2048xbf16>
  %ss = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x32x2048x2048xbf16>) outs(%e4 : tensor<1x32x2048x2048xbf16>) {
  ^bb0(%in: bf16, %out: bf16):
    %0 = arith.mulf %in, %scale : bf16
    linalg.yield %0 : bf16
  } -> tensor<1x32x2048x2048xbf16>
  // The mask: built from index comparisons.
  %me = tensor.empty() : tensor<2048x2048xbf16>
  %mask = linalg.generic {indexing_maps = [#map2], iterator_types = ["parallel", "parallel"]} outs(%me : tensor<2048x2048xbf16>) {
  ^bb0(%out: bf16):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    // torch.full((S, S), -inf).triu(1): -inf where j > i
    %future = arith.cmpi ugt, %j, %i : index
    %ninf_t = arith.constant 0xFF80 : bf16
    %zero_t = arith.constant 0.000000e+00 : bf16
    %m = arith.select %future, %ninf_t, %zero_t : bf16
    linalg.yield %m : bf16
  } -> tensor<2048x2048xbf16>
  %sm = linalg.generic {indexing_maps = [#map4, #sk, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ss, %mask : tensor<1x32x2048x2048xbf16>, tensor<2048x2048xbf16>) outs(%e4 : tensor<1x32x2048x2048xbf16>) {
  ^bb0(%in: bf16, %m: bf16, %out: bf16):
    %0 = arith.addf %in, %m : bf16
    linalg.yield %0 : bf16
  } -> tensor<1x32x2048x2048xbf16>
  // softmax(dim=-1, dtype=torch.float32)
  %f4 = tensor.empty() : tensor<1x32x2048x2048xf32>
  %x = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sm : tensor<1x32x2048x2048xbf16>) outs(%f4 : tensor<1x32x2048x2048xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %0 = arith.extf %in : bf16 to f32
    linalg.yield %0 : f32
  } -> tensor<1x32x2048x2048xf32>
  %r1 = tensor.empty() : tensor<1x32x2048x1xf32>
  %mi = linalg.fill ins(%ninf : f32) outs(%r1 : tensor<1x32x2048x1xf32>) -> tensor<1x32x2048x1xf32>
  %mx = linalg.generic {indexing_maps = [#map4, #keep], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x : tensor<1x32x2048x2048xf32>) outs(%mi : tensor<1x32x2048x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.maximumf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<1x32x2048x1xf32>
  %ex = linalg.generic {indexing_maps = [#map4, #keep, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %mx : tensor<1x32x2048x2048xf32>, tensor<1x32x2048x1xf32>) outs(%f4 : tensor<1x32x2048x2048xf32>) {
  ^bb0(%in: f32, %m: f32, %out: f32):
    %0 = arith.subf %in, %m : f32
    %1 = math.exp %0 : f32
    linalg.yield %1 : f32
  } -> tensor<1x32x2048x2048xf32>
  %si = linalg.fill ins(%zf : f32) outs(%r1 : tensor<1x32x2048x1xf32>) -> tensor<1x32x2048x1xf32>
  %sum = linalg.generic {indexing_maps = [#map4, #keep], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x32x2048x2048xf32>) outs(%si : tensor<1x32x2048x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.addf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<1x32x2048x1xf32>
  %pf = linalg.generic {indexing_maps = [#map4, #keep, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x32x2048x2048xf32>, tensor<1x32x2048x1xf32>) outs(%f4 : tensor<1x32x2048x2048xf32>) {
  ^bb0(%in: f32, %d: f32, %out: f32):
    %0 = arith.divf %in, %d : f32
    linalg.yield %0 : f32
  } -> tensor<1x32x2048x2048xf32>
  // .to(query_states.dtype)
  %p = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%pf : tensor<1x32x2048x2048xf32>) outs(%e4 : tensor<1x32x2048x2048xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %0 = arith.truncf %in : f32 to bf16
    linalg.yield %0 : bf16
  } -> tensor<1x32x2048x2048xbf16>
  // attn_output = torch.matmul(attn_weights, value_states)
  %p3 = tensor.collapse_shape %p [[0, 1], [2], [3]] : tensor<1x32x2048x2048xbf16> into tensor<32x2048x2048xbf16>
  %v3 = tensor.collapse_shape %vr [[0, 1], [2], [3]] : tensor<1x32x2048x128xbf16> into tensor<32x2048x128xbf16>
  %oe = tensor.empty() : tensor<32x2048x128xbf16>
  %of = linalg.fill ins(%zero : bf16) outs(%oe : tensor<32x2048x128xbf16>) -> tensor<32x2048x128xbf16>
  %o3 = linalg.batch_matmul ins(%p3, %v3 : tensor<32x2048x2048xbf16>, tensor<32x2048x128xbf16>) outs(%of : tensor<32x2048x128xbf16>) -> tensor<32x2048x128xbf16>
  %o = tensor.expand_shape %o3 [[0, 1], [2], [3]] output_shape [1, 32, 2048, 128] : tensor<32x2048x128xbf16> into tensor<1x32x2048x128xbf16>
  // attn_output.transpose(1, 2).reshape(bsz, q_len, hidden)
  %ote = tensor.empty() : tensor<1x2048x32x128xbf16>
  %ot = linalg.transpose ins(%o : tensor<1x32x2048x128xbf16>) outs(%ote : tensor<1x2048x32x128xbf16>) permutation = [0, 2, 1, 3]
  %out = tensor.collapse_shape %ot [[0], [1], [2, 3]] : tensor<1x2048x32x128xbf16> into tensor<1x2048x4096xbf16>
  return %out : tensor<1x2048x4096xbf16>
}
