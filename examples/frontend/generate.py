# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Writes the torch-mlir-style attention examples of this folder.

    python3 examples/frontend/generate.py      # rewrites the .mlir files

The same generator, at small sizes (EXAMPLES[name](small=True)), feeds the CPU
test that runs each graph with and without attn-fuse
(python/tests/test_fuse_equivalence.py): the full-size graphs would take hours
in naive CPU loops.
"""

import os

def hf_attention(name, title, B, Hq, Hkv, S, D, dtype, mask_body, comment):
    g = Hq // Hkv
    BH = B * Hq
    t = dtype
    return f'''// {title}
//
// {comment}
//
// This is the attention block of one decoder layer in linalg on tensors, the
// way torch-mlir lowers HuggingFace's eager attention (after the q/k/v
// projections and RoPE): repeat_kv as expand_shape -> broadcast ->
// collapse_shape, torch.matmul as collapse_shape -> batch_matmul ->
// expand_shape, the scale multiply, the causal mask built from index
// comparisons and added, softmax(dim=-1, dtype=float32) decomposed into
// max/sub/exp/sum/div with keep-dim reductions, and the cast back to {t}.
//
//   build/bin/attn-opt --attn-fuse --canonicalize {name}
//
// turns it into one attn.attention.

#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#keep = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
#sk = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#map2 = affine_map<(d0, d1) -> (d0, d1)>
#map5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
#bc5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, 0, d3, d4)>
func.func @attention(%q: tensor<{B}x{Hq}x{S}x{D}x{t}>, %k: tensor<{B}x{Hkv}x{S}x{D}x{t}>, %v: tensor<{B}x{Hkv}x{S}x{D}x{t}>) -> tensor<{B}x{S}x{Hq*D}x{t}> {{
  %scale = arith.constant {1/D**0.5:.9e} : {t}
  %zero = arith.constant 0.000000e+00 : {t}
  %zf = arith.constant 0.000000e+00 : f32
  %ninf = arith.constant 0xFF800000 : f32
  // repeat_kv(key_states, {g}), repeat_kv(value_states, {g})
  %k5 = tensor.expand_shape %k [[0], [1, 2], [3], [4]] output_shape [{B}, {Hkv}, 1, {S}, {D}] : tensor<{B}x{Hkv}x{S}x{D}x{t}> into tensor<{B}x{Hkv}x1x{S}x{D}x{t}>
  %ke = tensor.empty() : tensor<{B}x{Hkv}x{g}x{S}x{D}x{t}>
  %kb = linalg.generic {{indexing_maps = [#bc5, #map5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}} ins(%k5 : tensor<{B}x{Hkv}x1x{S}x{D}x{t}>) outs(%ke : tensor<{B}x{Hkv}x{g}x{S}x{D}x{t}>) {{
  ^bb0(%in: {t}, %out: {t}):
    linalg.yield %in : {t}
  }} -> tensor<{B}x{Hkv}x{g}x{S}x{D}x{t}>
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<{B}x{Hkv}x{g}x{S}x{D}x{t}> into tensor<{B}x{Hq}x{S}x{D}x{t}>
  %v5 = tensor.expand_shape %v [[0], [1, 2], [3], [4]] output_shape [{B}, {Hkv}, 1, {S}, {D}] : tensor<{B}x{Hkv}x{S}x{D}x{t}> into tensor<{B}x{Hkv}x1x{S}x{D}x{t}>
  %vb = linalg.generic {{indexing_maps = [#bc5, #map5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}} ins(%v5 : tensor<{B}x{Hkv}x1x{S}x{D}x{t}>) outs(%ke : tensor<{B}x{Hkv}x{g}x{S}x{D}x{t}>) {{
  ^bb0(%in: {t}, %out: {t}):
    linalg.yield %in : {t}
  }} -> tensor<{B}x{Hkv}x{g}x{S}x{D}x{t}>
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<{B}x{Hkv}x{g}x{S}x{D}x{t}> into tensor<{B}x{Hq}x{S}x{D}x{t}>
  // attn_weights = torch.matmul(query_states, key_states.transpose(2, 3))
  %kte = tensor.empty() : tensor<{B}x{Hq}x{D}x{S}x{t}>
  %kt = linalg.transpose ins(%kr : tensor<{B}x{Hq}x{S}x{D}x{t}>) outs(%kte : tensor<{B}x{Hq}x{D}x{S}x{t}>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<{B}x{Hq}x{S}x{D}x{t}> into tensor<{BH}x{S}x{D}x{t}>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<{B}x{Hq}x{D}x{S}x{t}> into tensor<{BH}x{D}x{S}x{t}>
  %se = tensor.empty() : tensor<{BH}x{S}x{S}x{t}>
  %sf = linalg.fill ins(%zero : {t}) outs(%se : tensor<{BH}x{S}x{S}x{t}>) -> tensor<{BH}x{S}x{S}x{t}>
  %s3 = linalg.batch_matmul ins(%q3, %kt3 : tensor<{BH}x{S}x{D}x{t}>, tensor<{BH}x{D}x{S}x{t}>) outs(%sf : tensor<{BH}x{S}x{S}x{t}>) -> tensor<{BH}x{S}x{S}x{t}>
  %s = tensor.expand_shape %s3 [[0, 1], [2], [3]] output_shape [{B}, {Hq}, {S}, {S}] : tensor<{BH}x{S}x{S}x{t}> into tensor<{B}x{Hq}x{S}x{S}x{t}>
  // * self.scaling
  %e4 = tensor.empty() : tensor<{B}x{Hq}x{S}x{S}x{t}>
  %ss = linalg.generic {{indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%s : tensor<{B}x{Hq}x{S}x{S}x{t}>) outs(%e4 : tensor<{B}x{Hq}x{S}x{S}x{t}>) {{
  ^bb0(%in: {t}, %out: {t}):
    %0 = arith.mulf %in, %scale : {t}
    linalg.yield %0 : {t}
  }} -> tensor<{B}x{Hq}x{S}x{S}x{t}>
  // The mask: {comment.splitlines()[0] if False else 'built from index comparisons'}.
  %me = tensor.empty() : tensor<{S}x{S}x{t}>
  %mask = linalg.generic {{indexing_maps = [#map2], iterator_types = ["parallel", "parallel"]}} outs(%me : tensor<{S}x{S}x{t}>) {{
  ^bb0(%out: {t}):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
{mask_body}
  }} -> tensor<{S}x{S}x{t}>
  %sm = linalg.generic {{indexing_maps = [#map4, #sk, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%ss, %mask : tensor<{B}x{Hq}x{S}x{S}x{t}>, tensor<{S}x{S}x{t}>) outs(%e4 : tensor<{B}x{Hq}x{S}x{S}x{t}>) {{
  ^bb0(%in: {t}, %m: {t}, %out: {t}):
    %0 = arith.addf %in, %m : {t}
    linalg.yield %0 : {t}
  }} -> tensor<{B}x{Hq}x{S}x{S}x{t}>
  // softmax(dim=-1, dtype=torch.float32)
  %f4 = tensor.empty() : tensor<{B}x{Hq}x{S}x{S}xf32>
  %x = linalg.generic {{indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%sm : tensor<{B}x{Hq}x{S}x{S}x{t}>) outs(%f4 : tensor<{B}x{Hq}x{S}x{S}xf32>) {{
  ^bb0(%in: {t}, %out: f32):
    %0 = arith.extf %in : {t} to f32
    linalg.yield %0 : f32
  }} -> tensor<{B}x{Hq}x{S}x{S}xf32>
  %r1 = tensor.empty() : tensor<{B}x{Hq}x{S}x1xf32>
  %mi = linalg.fill ins(%ninf : f32) outs(%r1 : tensor<{B}x{Hq}x{S}x1xf32>) -> tensor<{B}x{Hq}x{S}x1xf32>
  %mx = linalg.generic {{indexing_maps = [#map4, #keep], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}} ins(%x : tensor<{B}x{Hq}x{S}x{S}xf32>) outs(%mi : tensor<{B}x{Hq}x{S}x1xf32>) {{
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.maximumf %in, %acc : f32
    linalg.yield %0 : f32
  }} -> tensor<{B}x{Hq}x{S}x1xf32>
  %ex = linalg.generic {{indexing_maps = [#map4, #keep, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%x, %mx : tensor<{B}x{Hq}x{S}x{S}xf32>, tensor<{B}x{Hq}x{S}x1xf32>) outs(%f4 : tensor<{B}x{Hq}x{S}x{S}xf32>) {{
  ^bb0(%in: f32, %m: f32, %out: f32):
    %0 = arith.subf %in, %m : f32
    %1 = math.exp %0 : f32
    linalg.yield %1 : f32
  }} -> tensor<{B}x{Hq}x{S}x{S}xf32>
  %si = linalg.fill ins(%zf : f32) outs(%r1 : tensor<{B}x{Hq}x{S}x1xf32>) -> tensor<{B}x{Hq}x{S}x1xf32>
  %sum = linalg.generic {{indexing_maps = [#map4, #keep], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}} ins(%ex : tensor<{B}x{Hq}x{S}x{S}xf32>) outs(%si : tensor<{B}x{Hq}x{S}x1xf32>) {{
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.addf %in, %acc : f32
    linalg.yield %0 : f32
  }} -> tensor<{B}x{Hq}x{S}x1xf32>
  %pf = linalg.generic {{indexing_maps = [#map4, #keep, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%ex, %sum : tensor<{B}x{Hq}x{S}x{S}xf32>, tensor<{B}x{Hq}x{S}x1xf32>) outs(%f4 : tensor<{B}x{Hq}x{S}x{S}xf32>) {{
  ^bb0(%in: f32, %d: f32, %out: f32):
    %0 = arith.divf %in, %d : f32
    linalg.yield %0 : f32
  }} -> tensor<{B}x{Hq}x{S}x{S}xf32>
  // .to(query_states.dtype)
  %p = linalg.generic {{indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%pf : tensor<{B}x{Hq}x{S}x{S}xf32>) outs(%e4 : tensor<{B}x{Hq}x{S}x{S}x{t}>) {{
  ^bb0(%in: f32, %out: {t}):
    %0 = arith.truncf %in : f32 to {t}
    linalg.yield %0 : {t}
  }} -> tensor<{B}x{Hq}x{S}x{S}x{t}>
  // attn_output = torch.matmul(attn_weights, value_states)
  %p3 = tensor.collapse_shape %p [[0, 1], [2], [3]] : tensor<{B}x{Hq}x{S}x{S}x{t}> into tensor<{BH}x{S}x{S}x{t}>
  %v3 = tensor.collapse_shape %vr [[0, 1], [2], [3]] : tensor<{B}x{Hq}x{S}x{D}x{t}> into tensor<{BH}x{S}x{D}x{t}>
  %oe = tensor.empty() : tensor<{BH}x{S}x{D}x{t}>
  %of = linalg.fill ins(%zero : {t}) outs(%oe : tensor<{BH}x{S}x{D}x{t}>) -> tensor<{BH}x{S}x{D}x{t}>
  %o3 = linalg.batch_matmul ins(%p3, %v3 : tensor<{BH}x{S}x{S}x{t}>, tensor<{BH}x{S}x{D}x{t}>) outs(%of : tensor<{BH}x{S}x{D}x{t}>) -> tensor<{BH}x{S}x{D}x{t}>
  %o = tensor.expand_shape %o3 [[0, 1], [2], [3]] output_shape [{B}, {Hq}, {S}, {D}] : tensor<{BH}x{S}x{D}x{t}> into tensor<{B}x{Hq}x{S}x{D}x{t}>
  // attn_output.transpose(1, 2).reshape(bsz, q_len, hidden)
  %ote = tensor.empty() : tensor<{B}x{S}x{Hq}x{D}x{t}>
  %ot = linalg.transpose ins(%o : tensor<{B}x{Hq}x{S}x{D}x{t}>) outs(%ote : tensor<{B}x{S}x{Hq}x{D}x{t}>) permutation = [0, 2, 1, 3]
  %out = tensor.collapse_shape %ot [[0], [1], [2, 3]] : tensor<{B}x{S}x{Hq}x{D}x{t}> into tensor<{B}x{S}x{Hq*D}x{t}>
  return %out : tensor<{B}x{S}x{Hq*D}x{t}>
}}
'''

causal = '''    // torch.full((S, S), -inf).triu(1): -inf where j > i
    %future = arith.cmpi ugt, %j, %i : index
    %ninf_t = arith.constant 0xFF80 : {t}
    %zero_t = arith.constant 0.000000e+00 : {t}
    %m = arith.select %future, %ninf_t, %zero_t : {t}
    linalg.yield %m : {t}'''
window = '''    // causal and within the sliding window: keep i - 4096 < j <= i
    %past = arith.cmpi ule, %j, %i : index
    %d = arith.subi %i, %j : index
    %w = arith.constant 4096 : index
    %near = arith.cmpi slt, %d, %w : index
    %keep = arith.andi %past, %near : i1
    %ninf_t = arith.constant 0xFC00 : {t}
    %zero_t = arith.constant 0.000000e+00 : {t}
    %m = arith.select %keep, %zero_t, %ninf_t : {t}
    linalg.yield %m : {t}'''


def llama3_8b(small=False):
    b, hq, hkv, s, d = (1, 8, 2, 40, 32) if small else (1, 32, 8, 2048, 128)
    return hf_attention(
        "examples/frontend/llama3_8b_attention.mlir",
        "Llama-3.1-8B self-attention, prefill of 2048 tokens (bf16).",
        b, hq, hkv, s, d, "bf16", causal.replace("{t}", "bf16"),
        "32 query heads share 8 KV heads (GQA, repeat_kv), head dim 128, causal.")


def mistral_7b(small=False):
    b, hq, hkv, s, d = (1, 8, 2, 48, 32) if small else (1, 32, 8, 8192, 128)
    w = 16 if small else 4096
    return hf_attention(
        "examples/frontend/mistral_7b_attention.mlir",
        "Mistral-7B self-attention with its 4096-token sliding window, 8192 tokens (f16).",
        b, hq, hkv, s, d, "f16", window.replace("{t}", "f16").replace("4096", str(w)),
        "32 query heads over 8 KV heads, head dim 128; each token attends to itself and the 4095 before it.")


EXAMPLES = {"llama3_8b": llama3_8b, "mistral_7b": mistral_7b}

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    for name, fn in EXAMPLES.items():
        file = {"llama3_8b": "llama3_8b_attention.mlir", "mistral_7b": "mistral_7b_attention.mlir"}[name]
        with open(os.path.join(here, file), "w") as f:
            f.write(fn())
