//===- AttnBase.td - attn dialect definition ---------------*- tablegen -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The attn dialect: attention as one op with variant attributes.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_IR_ATTNBASE_TD
#define ATTN_IR_ATTNBASE_TD

include "mlir/IR/OpBase.td"

def Attn_Dialect : Dialect {
  let name = "attn";
  let cppNamespace = "::mlir::attn";
  let summary = "Attention and its variants as first-class operations";
  let description = [{
    The `attn` dialect represents attention as a single operation whose
    *variant attributes* state what distinguishes one attention from another:
    head grouping, masking, scaling, logit soft-capping, additive bias, sink
    logits and the optional log-sum-exp result. Passes recognize attention in
    unfused frontend graphs (`attn-fuse`), tile it into FlashAttention loops
    (`attn-tile`) and lower it through the GPU, NVGPU and NVVM dialects to PTX;
    every variant becomes its own specialized kernel.

    ### Conventions

    * Tensors are 4-D. The default layout `bhsd` is `[batch, heads, sequence,
      head_dim]`; `layout = bshd` states `[batch, sequence, heads, head_dim]`
      for all of query, key, value and output (the layout FlashAttention and
      most frontends use). Bias, log-sum-exp and sinks are layout-independent.
    * Computation is in f32 whatever the element type (f16, bf16 or f32):
      scores, softmax statistics and the output accumulator are f32; only the
      final output is rounded to the element type.
    * Query position `i` (0 <= i < Sq) is aligned *bottom-right* with key
      position `j` (0 <= j < Sk): query `i` sits at key position
      `i + Sk - Sq`, as in FlashAttention 2.1+. Masks are defined in these
      coordinates, so decoding one token against a cache of Sk keys is causal
      without any offset.
    * A query row with no admissible key produces an output row of zeros and a
      log-sum-exp of `-inf` (never NaN).

    ### How the later variants fit

    The attributes are designed so that the serving and research variants
    extend the dialect rather than replace it:

    * **Paged KV cache** (vLLM PagedAttention): a separate op,
      `attn.paged_attention`, takes K/V as page pools
      `[num_pages, page_size, Hkv, D]` plus a block table `[B, max_pages]` and
      per-sequence lengths `[B]`. Masks (`#attn.mask`), `scale`, `softcap`,
      sinks and the optional LSE carry over unchanged; only the way a key
      position maps to memory differs. Split-KV (flash-decoding) is a lowering
      choice that produces partial outputs with their LSE, which is why the
      LSE result exists on every attention op.
    * **DeepSeek MLA**: prefill is `attn.attention` with D = 192 and Dv = 128
      (D != Dv is allowed). Absorbed decode reads one latent KV head of 576
      (512 latent + 64 rope) where V is the first 512 channels of K: it is
      `attn.attention` (or `attn.paged_attention`) with Hkv = 1, an explicit
      `scale`, and V given as a slice of K that lowerings recognize and do
      not load twice.
    * **Linear attention** (Gated DeltaNet, KDA): a different recurrence, so a
      different op, `attn.gated_delta_rule`, with its own gate attribute
      (`gate_kind`: per-head or per-channel decay), separate key/value head
      counts (value heads grouped over key heads) and a `chunk_size`. Its
      tensors are `[batch, sequence, heads, head_dim]`, the `bshd` layout.
    * **Sparse attention** (NSA, DeepSeek Sparse Attention): softmax
      attention over a subset of keys, expressed as an extra index operand
      (block indices or token indices, `-1` = skip) on
      `attn.sparse_attention`; the mask, scale, softcap and LSE semantics are
      those of this op, applied to the selected keys only.
      `attn.lightning_indexer` computes DSA's token selections and `attn.nsa`
      composes NSA's compressed, selected and window branches.
  }];
  let useDefaultAttributePrinterParser = 1;
}

class Attn_Op<string mnemonic, list<Trait> traits = []>
    : Op<Attn_Dialect, mnemonic, traits>;

#endif // ATTN_IR_ATTNBASE_TD
