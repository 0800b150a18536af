// Llama-3.1-8B self-attention as torch-mlir emits it for any batch and
// length: the graph of examples/frontend/llama3_8b_attention.mlir (repeat_kv,
// torch.matmul, the scale, an additive causal mask, softmax in float32, the
// cast back, the output reshape) with `?` for the batch and sequence dims.
// The mask is HF's for a prefill after `past = Sk - Sq` cached tokens: -inf
// where j > i + past, i.e. attn's bottom-right causal for every Sq and Sk.
// attn-fuse turns it into one attn.attention on dynamic tensors, and
//
//   build/bin/attn-compile --shared examples/program/llama_unfused_dynamic.mlir -o build/programs/llama_unfused_dynamic.so
//
// compiles it once for all batch sizes and lengths (the same entry point as
// attention_dynamic.mlir: q [B, 32, S, 128], k and v [B, 8, S, 128] bf16 ->
// [B, S, 4096]).

#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#keep = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
#sk = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map2 = affine_map<(d0, d1) -> (d0, d1)>
#map5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
#bc5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, 0, d3, d4)>
func.func @attention(%q: tensor<?x32x?x128xbf16>, %k: tensor<?x8x?x128xbf16>, %v: tensor<?x8x?x128xbf16>) -> tensor<?x?x4096xbf16> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %scale = arith.constant 8.838834765e-02 : bf16
  %zero = arith.constant 0.000000e+00 : bf16
  %zf = arith.constant 0.000000e+00 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %b = tensor.dim %q, %c0 : tensor<?x32x?x128xbf16>
  %sq = tensor.dim %q, %c2 : tensor<?x32x?x128xbf16>
  %skv = tensor.dim %k, %c2 : tensor<?x8x?x128xbf16>
  %past = arith.subi %skv, %sq : index
  // repeat_kv(key_states, 4), repeat_kv(value_states, 4)
  %k5 = tensor.expand_shape %k [[0], [1, 2], [3], [4]] output_shape [%b, 8, 1, %skv, 128] : tensor<?x8x?x128xbf16> into tensor<?x8x1x?x128xbf16>
  %ke = tensor.empty(%b, %skv) : tensor<?x8x4x?x128xbf16>
  %kb = linalg.generic {indexing_maps = [#bc5, #map5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%k5 : tensor<?x8x1x?x128xbf16>) outs(%ke : tensor<?x8x4x?x128xbf16>) {
  ^bb0(%in: bf16, %out: bf16):
    linalg.yield %in : bf16
  } -> tensor<?x8x4x?x128xbf16>
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<?x8x4x?x128xbf16> into tensor<?x32x?x128xbf16>
  %v5 = tensor.expand_shape %v [[0], [1, 2], [3], [4]] output_shape [%b, 8, 1, %skv, 128] : tensor<?x8x?x128xbf16> into tensor<?x8x1x?x128xbf16>
  %vb = linalg.generic {indexing_maps = [#bc5, #map5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%v5 : tensor<?x8x1x?x128xbf16>) outs(%ke : tensor<?x8x4x?x128xbf16>) {
  ^bb0(%in: bf16, %out: bf16):
    linalg.yield %in : bf16
  } -> tensor<?x8x4x?x128xbf16>
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<?x8x4x?x128xbf16> into tensor<?x32x?x128xbf16>
  // attn_weights = torch.matmul(query_states, key_states.transpose(2, 3))
  %kte = tensor.empty(%b, %skv) : tensor<?x32x128x?xbf16>
  %kt = linalg.transpose ins(%kr : tensor<?x32x?x128xbf16>) outs(%kte : tensor<?x32x128x?xbf16>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<?x32x?x128xbf16> into tensor<?x?x128xbf16>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<?x32x128x?xbf16> into tensor<?x128x?xbf16>
  %bh = tensor.dim %q3, %c0 : tensor<?x?x128xbf16>
  %se = tensor.empty(%bh, %sq, %skv) : tensor<?x?x?xbf16>
  %sf = linalg.fill ins(%zero : bf16) outs(%se : tensor<?x?x?xbf16>) -> tensor<?x?x?xbf16>
  %s3 = linalg.batch_matmul ins(%q3, %kt3 : tensor<?x?x128xbf16>, tensor<?x128x?xbf16>) outs(%sf : tensor<?x?x?xbf16>) -> tensor<?x?x?xbf16>
  %s = tensor.expand_shape %s3 [[0, 1], [2], [3]] output_shape [%b, 32, %sq, %skv] : tensor<?x?x?xbf16> into tensor<?x32x?x?xbf16>
  // * self.scaling
  %e4 = tensor.empty(%b, %sq, %skv) : tensor<?x32x?x?xbf16>
  %ss = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<?x32x?x?xbf16>) outs(%e4 : tensor<?x32x?x?xbf16>) {
  ^bb0(%in: bf16, %out: bf16):
    %0 = arith.mulf %in, %scale : bf16
    linalg.yield %0 : bf16
  } -> tensor<?x32x?x?xbf16>
  // The causal mask after `past` cached tokens: -inf where j > i + past.
  %me = tensor.empty(%sq, %skv) : tensor<?x?xbf16>
  %mask = linalg.generic {indexing_maps = [#map2], iterator_types = ["parallel", "parallel"]} outs(%me : tensor<?x?xbf16>) {
  ^bb0(%out: bf16):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %last = arith.addi %i, %past : index
    %future = arith.cmpi sgt, %j, %last : index
    %ninf_t = arith.constant 0xFF80 : bf16
    %zero_t = arith.constant 0.000000e+00 : bf16
    %m = arith.select %future, %ninf_t, %zero_t : bf16
    linalg.yield %m : bf16
  } -> tensor<?x?xbf16>
  %sm = linalg.generic {indexing_maps = [#map4, #sk, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ss, %mask : tensor<?x32x?x?xbf16>, tensor<?x?xbf16>) outs(%e4 : tensor<?x32x?x?xbf16>) {
  ^bb0(%in: bf16, %m: bf16, %out: bf16):
    %0 = arith.addf %in, %m : bf16
    linalg.yield %0 : bf16
  } -> tensor<?x32x?x?xbf16>
  // softmax(dim=-1, dtype=torch.float32)
  %f4 = tensor.empty(%b, %sq, %skv) : tensor<?x32x?x?xf32>
  %x = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sm : tensor<?x32x?x?xbf16>) outs(%f4 : tensor<?x32x?x?xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %0 = arith.extf %in : bf16 to f32
    linalg.yield %0 : f32
  } -> tensor<?x32x?x?xf32>
  %r1 = tensor.empty(%b, %sq) : tensor<?x32x?x1xf32>
  %mi = linalg.fill ins(%ninf : f32) outs(%r1 : tensor<?x32x?x1xf32>) -> tensor<?x32x?x1xf32>
  %mx = linalg.generic {indexing_maps = [#map4, #keep], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x : tensor<?x32x?x?xf32>) outs(%mi : tensor<?x32x?x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.maximumf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<?x32x?x1xf32>
  %ex = linalg.generic {indexing_maps = [#map4, #keep, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %mx : tensor<?x32x?x?xf32>, tensor<?x32x?x1xf32>) outs(%f4 : tensor<?x32x?x?xf32>) {
  ^bb0(%in: f32, %m: f32, %out: f32):
    %0 = arith.subf %in, %m : f32
    %1 = math.exp %0 : f32
    linalg.yield %1 : f32
  } -> tensor<?x32x?x?xf32>
  %si = linalg.fill ins(%zf : f32) outs(%r1 : tensor<?x32x?x1xf32>) -> tensor<?x32x?x1xf32>
  %sum = linalg.generic {indexing_maps = [#map4, #keep], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<?x32x?x?xf32>) outs(%si : tensor<?x32x?x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.addf %in, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<?x32x?x1xf32>
  %pf = linalg.generic {indexing_maps = [#map4, #keep, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<?x32x?x?xf32>, tensor<?x32x?x1xf32>) outs(%f4 : tensor<?x32x?x?xf32>) {
  ^bb0(%in: f32, %d: f32, %out: f32):
    %0 = arith.divf %in, %d : f32
    linalg.yield %0 : f32
  } -> tensor<?x32x?x?xf32>
  // .to(query_states.dtype)
  %p = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%pf : tensor<?x32x?x?xf32>) outs(%e4 : tensor<?x32x?x?xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %0 = arith.truncf %in : f32 to bf16
    linalg.yield %0 : bf16
  } -> tensor<?x32x?x?xbf16>
  // attn_output = torch.matmul(attn_weights, value_states)
  %p3 = tensor.collapse_shape %p [[0, 1], [2], [3]] : tensor<?x32x?x?xbf16> into tensor<?x?x?xbf16>
  %v3 = tensor.collapse_shape %vr [[0, 1], [2], [3]] : tensor<?x32x?x128xbf16> into tensor<?x?x128xbf16>
  %oe = tensor.empty(%bh, %sq) : tensor<?x?x128xbf16>
  %of = linalg.fill ins(%zero : bf16) outs(%oe : tensor<?x?x128xbf16>) -> tensor<?x?x128xbf16>
  %o3 = linalg.batch_matmul ins(%p3, %v3 : tensor<?x?x?xbf16>, tensor<?x?x128xbf16>) outs(%of : tensor<?x?x128xbf16>) -> tensor<?x?x128xbf16>
  %o = tensor.expand_shape %o3 [[0, 1], [2], [3]] output_shape [%b, 32, %sq, 128] : tensor<?x?x128xbf16> into tensor<?x32x?x128xbf16>
  // attn_output.transpose(1, 2).reshape(bsz, q_len, hidden)
  %ote = tensor.empty(%b, %sq) : tensor<?x?x32x128xbf16>
  %ot = linalg.transpose ins(%o : tensor<?x32x?x128xbf16>) outs(%ote : tensor<?x?x32x128xbf16>) permutation = [0, 2, 1, 3]
  %out = tensor.collapse_shape %ot [[0], [1], [2, 3]] : tensor<?x?x32x128xbf16> into tensor<?x?x4096xbf16>
  return %out : tensor<?x?x4096xbf16>
}
