//===- AttnOps.td - attn operations ------------------------*- tablegen -*-===//
//
// Operations of the attn dialect.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_IR_ATTNOPS_TD
#define ATTN_IR_ATTNOPS_TD

include "attn/IR/AttnBase.td"
include "attn/IR/AttnAttrs.td"
include "mlir/IR/OpAsmInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

def Attn_AttentionOp : Attn_Op<"attention",
    [Pure, AttrSizedOperandSegments,
     DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "scaled dot-product attention with variant attributes";
  let description = [{
    Computes, for every batch `b`, query head `h` and query row `i`:

    ```
    g       = h / (Hq / Hkv)                       // KV head of query head h
    s[j]    = scale * dot(Q[b, h, i, :], K[b, g, j, :])
    s[j]    = softcap * tanh(s[j] / softcap)       // if softcap is set
    s[j]    = s[j] + bias[b, h, i, j]              // if bias is given
    s[j]    = -inf  unless mask admits key j for row i
    m       = max(max_j s[j], sinks[h])            // sinks[h] only if given
    l       = sum_j exp(s[j] - m) + exp(sinks[h] - m)
    O[b, h, i, :] = sum_j exp(s[j] - m) / l * V[b, g, j, :]
    lse[b, h, i]  = m + log(l)
    ```

    with shapes, in the default `bhsd` layout:

    | operand / result | shape | element type |
    |---|---|---|
    | `query` | `[B, Hq, Sq, D]` | f16, bf16 or f32 |
    | `key` | `[B, Hkv, Sk, D]` | as `query` |
    | `value` | `[B, Hkv, Sk, Dv]` | as `query` |
    | `bias` (optional) | broadcastable to `[B, Hq, Sq, Sk]` | as `query`, or f32 |
    | `sinks` (optional) | `[Hq]` | as `query`, or f32 |
    | `output` | `[B, Hq, Sq, Dv]` | as `query` |
    | `lse` (optional result) | `[B, Hq, Sq]` | f32 |

    `layout = bshd` swaps the head and sequence dimensions of `query`, `key`,
    `value` and `output` (`[B, Sq, Hq, D]` etc.); `bias`, `sinks` and `lse`
    keep the shapes above.

    Variant attributes:

    * **Head grouping** follows from the shapes: multi-head (Hq = Hkv),
      multi-query (Hkv = 1) or grouped-query (Hq a multiple of Hkv, any group
      size such as 7 or 71). Query head `h` reads KV head `h / (Hq / Hkv)`.
    * `mask`: `#attn.mask<none>` (the default), `<causal>` or
      `<window, left = L, right = R>`; see `#attn.mask` for exactly which keys
      each admits. Positions are aligned bottom-right when Sq != Sk.
    * `scale`: multiplies Q·Kᵀ; defaults to `1/sqrt(D)`. Must be positive.
    * `softcap`: logit soft-capping `c · tanh(s / c)` (Gemma 2, Grok),
      applied to the scaled scores before bias and mask. Must be positive.
    * `bias`: an additive bias (ALiBi, relative position, padding masks as
      0/-inf), broadcast over any dimension of size 1. Its dimension order is
      always `[B, Hq, Sq, Sk]`.
    * `sinks`: per-head sink logits (GPT-OSS): a virtual key per head that
      takes part in the softmax denominator but contributes no value. The
      sink logit is compared with the final scores (after scale, softcap and
      bias) and is not itself scaled.
    * `lse`: when the second result is present, the natural-log
      log-sum-exp of every row's admitted scores (including the sink) is
      returned; rows with no admissible key and no sink give `-inf`.

    D and Dv may differ (DeepSeek MLA prefill uses D = 192, Dv = 128).

    Example: Llama-3-8B grouped-query attention with a 4096-token causal
    sliding window, in the `[B, S, H, D]` layout, returning the LSE:

    ```mlir
    %o, %lse = attn.attention %q, %k, %v layout = bshd
        mask = <window, left = 4095, right = 0>
        : (tensor<1x8192x32x128xbf16>, tensor<1x8192x8x128xbf16>,
           tensor<1x8192x8x128xbf16>)
        -> (tensor<1x8192x32x128xbf16>, tensor<1x32x8192xf32>)
    ```
  }];

  let arguments = (ins
    AnyRankedTensor:$query,
    AnyRankedTensor:$key,
    AnyRankedTensor:$value,
    Optional<AnyRankedTensor>:$bias,
    Optional<AnyRankedTensor>:$sinks,
    DefaultValuedAttr<Attn_LayoutAttr, "::mlir::attn::Layout::BHSD">:$layout,
    OptionalAttr<Attn_MaskAttr>:$mask,
    OptionalAttr<F32Attr>:$scale,
    OptionalAttr<F32Attr>:$softcap);
  let results = (outs
    AnyRankedTensor:$output,
    Optional<AnyRankedTensor>:$lse);

  let assemblyFormat = [{
    $query `,` $key `,` $value
    (`bias` `(` $bias^ `)`)?
    (`sinks` `(` $sinks^ `)`)?
    (`layout` `=` `` $layout^)?
    (`mask` `=` $mask^)?
    (`scale` `=` $scale^)?
    (`softcap` `=` $softcap^)?
    attr-dict `:` functional-type(operands, results)
  }];

  let builders = [
    OpBuilder<(ins "::mlir::Value":$query, "::mlir::Value":$key,
                   "::mlir::Value":$value,
                   CArg<"::mlir::attn::MaskAttr", "{}">:$mask)>
  ];

  let extraClassDeclaration = [{
    /// The problem sizes, read through the layout. Dynamic sizes are
    /// ShapedType::kDynamic.
    AttentionShape getAttentionShape();

    /// The mask, with an absent attribute meaning `#attn.mask<none>`.
    MaskAttr getMaskOrNone();

    /// The scale to apply to Q·Kᵀ: the attribute, or 1/sqrt(D) when absent.
    /// Requires a static head dimension when the attribute is absent.
    std::optional<double> getEffectiveScale();

    /// Number of query heads sharing one KV head (1 for MHA, Hq for MQA), or
    /// std::nullopt when a head count is dynamic.
    std::optional<int64_t> getGroupSize();
  }];

  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// PagedAttentionOp
//===----------------------------------------------------------------------===//

def Attn_PagedAttentionOp : Attn_Op<"paged_attention",
    [Pure,
     DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "attention over a paged KV cache (PagedAttention)";
  let description = [{
    Attention of a batch of sequences against their KV caches, stored in
    fixed-size pages (vLLM's PagedAttention): the decode and multi-token
    decode (speculative, chunked prefill) step of serving.

    Sequence `b` has `L = seq_lens[b]` cached tokens, its `Sq` query tokens
    being the last of them. Its key `j` (`0 <= j < L`) lives in page
    `block_table[b, j / page_size]` at slot `j % page_size`; query row `i`
    sits at position `p = i + L - Sq` (bottom-right aligned, as in
    `attn.attention` with `Sk = L`). For every query head `h`:

    ```
    g       = h / (Hq / Hkv)
    s[j]    = scale * dot(Q[b, i, h, :], Kcache[page(j), slot(j), g, :])
    s[j]    = softcap * tanh(s[j] / softcap)     // if softcap is set
    s[j]    = -inf  unless mask admits key j at position p (Sk = L)
    O[b, i, h, :] = softmax over j (and the sink, if given) · V rows
    ```

    | operand / result | shape | element type |
    |---|---|---|
    | `query` | `[B, Sq, Hq, D]` | f16, bf16 or f32 |
    | `key_cache` | `[P, page_size, Hkv, D]` (`nhd`) or `[P, Hkv, page_size, D]` (`hnd`) | as `query` |
    | `value_cache` | as `key_cache`, with `Dv` | as `query` |
    | `block_table` | `[B, max_pages]` | i32 or i64 |
    | `seq_lens` | `[B]` | as `block_table` |
    | `sinks` (optional) | `[Hq]` | as `query`, or f32 |
    | `output` | `[B, Sq, Hq, Dv]` | as `query` |
    | `lse` (optional result) | `[B, Hq, Sq]` | f32 |

    Head grouping (MHA/MQA/GQA), `mask`, `scale`, `softcap` and `sinks` mean
    what they mean for `attn.attention`. Any page size from 1 to 256 is
    valid (not only powers of two). A sequence of length 0 gives zeros (and
    an LSE of `-inf`, or the sink alone). `block_table` entries past
    `ceil(L / page_size)` are never read; the ones before must be valid page
    indices (`0 <= index < P`), `seq_lens[b] <= max_pages * page_size` and
    `seq_lens[b] >= 0` — the op's inputs are data, so these are the caller's
    obligations, like an index into a tensor.

    DeepSeek MLA's absorbed decode is this op with one KV head over the
    latent cache: `D = 576` (512 latent + 64 rope), `Dv = 512` (the value
    cache being the latent part of the same cache, e.g. a
    `tensor.extract_slice` of its first 512 columns), 16 to 128 query heads
    and the scale given explicitly.

    Example: Llama-3-8B decode, one new token per sequence, 16-token pages:

    ```mlir
    %o = attn.paged_attention %q, %kc, %vc, %table, %lens mask = <causal>
        : (tensor<8x1x32x128xbf16>, tensor<4096x16x8x128xbf16>,
           tensor<4096x16x8x128xbf16>, tensor<8x512xi32>, tensor<8xi32>)
        -> tensor<8x1x32x128xbf16>
    ```
  }];

  let arguments = (ins
    AnyRankedTensor:$query,
    AnyRankedTensor:$key_cache,
    AnyRankedTensor:$value_cache,
    AnyRankedTensor:$block_table,
    AnyRankedTensor:$seq_lens,
    Optional<AnyRankedTensor>:$sinks,
    DefaultValuedAttr<Attn_CacheLayoutAttr,
                      "::mlir::attn::CacheLayout::NHD">:$cache_layout,
    OptionalAttr<Attn_MaskAttr>:$mask,
    OptionalAttr<F32Attr>:$scale,
    OptionalAttr<F32Attr>:$softcap);
  let results = (outs
    AnyRankedTensor:$output,
    Optional<AnyRankedTensor>:$lse);

  let assemblyFormat = [{
    $query `,` $key_cache `,` $value_cache `,` $block_table `,` $seq_lens
    (`sinks` `(` $sinks^ `)`)?
    (`cache_layout` `=` `` $cache_layout^)?
    (`mask` `=` $mask^)?
    (`scale` `=` $scale^)?
    (`softcap` `=` $softcap^)?
    attr-dict `:` functional-type(operands, results)
  }];

  let extraClassDeclaration = [{
    /// The static sizes: batch, query heads, KV heads, query tokens per
    /// sequence, head dims, page size and page counts (kDynamic if dynamic).
    PagedAttentionShape getPagedShape();

    /// The mask, with an absent attribute meaning `#attn.mask<none>`.
    MaskAttr getMaskOrNone();

    /// The scale: the attribute, or 1/sqrt(D) when absent (needs a static D).
    std::optional<double> getEffectiveScale();
  }];

  let hasVerifier = 1;
}

#endif // ATTN_IR_ATTNOPS_TD
