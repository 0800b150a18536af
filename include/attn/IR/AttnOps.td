//===- AttnOps.td - attn operations ------------------------*- tablegen -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Operations of the attn dialect.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_IR_ATTNOPS_TD
#define ATTN_IR_ATTNOPS_TD

include "attn/IR/AttnBase.td"
include "attn/IR/AttnAttrs.td"
include "attn/IR/KernelSpecOpInterface.td"
include "mlir/IR/OpAsmInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

def Attn_AttentionOp : Attn_Op<"attention",
    [Pure, AttrSizedOperandSegments,
     DeclareOpInterfaceMethods<Attn_KernelSpecOpInterface>,
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
    | `query` | `[B, Hq, Sq, D]` | f16, bf16, f32 or f8E4M3FN |
    | `key` | `[B, Hkv, Sk, D]` | as `query` |
    | `value` | `[B, Hkv, Sk, Dv]` | as `query` |
    | `bias` (optional) | broadcastable to `[B, Hq, Sq, Sk]` | as `query`, or f32 (FP8: f32) |
    | `sinks` (optional) | `[Hq]` | as `query`, or f32 (FP8: f32) |
    | `descale` (FP8 only) | three of `[]` or `[B, Hkv]` | f32 |
    | `output` | `[B, Hq, Sq, Dv]` | as `query` (FP8: bf16, f16 or f32) |
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
    * `position_offset`: an `index` added to every query row's key position
      before the mask is applied: row `i` sits at `p = i + Sk - Sq + offset`.
      It places a block of a longer sequence (a query or key shard of
      sequence-parallel attention, see docs/sharding.md) where the mask of
      the whole sequence puts it, so a causal or window mask of the block
      admits exactly the keys the whole problem's mask admits. It takes a
      causal or window mask (a mask of none admits every key whatever the
      offset) and is a value, computed at run time from the device's
      position. Only the CPU lowering (`attn-tile`) takes it so far.

    D and Dv may differ (DeepSeek MLA prefill uses D = 192, Dv = 128).

    **FP8 (e4m3).** `query`, `key` and `value` may all be `f8E4M3FN`
    (FlashAttention-3's FP8 forward). Such an op takes three descale
    operands, `descale(%dq, %dk, %dv)`, the factors that turn the stored
    e4m3 values back into real ones; they are required (there is no
    implicit 1: pass a constant one), and only FP8 inputs take them. Each
    is an f32 tensor, all three of one shape:

    * `tensor<f32>`: one factor per tensor;
    * `tensor<B x Hkv x f32>`: one factor per batch and KV head, as
      FlashAttention-3's `descale_q/k/v` (query heads of one GQA group share
      `descale_q[b, g]`).

    With `dq`, `dk`, `dv` the factors of (b, g):

    ```
    s[j]    = scale * dq * dk * dot(Q[b, h, i, :], K[b, g, j, :])  // f32 sum
    s[j]    = softcap, bias, mask as above
    m       = the running maximum of s over the key blocks seen so far
    p[j]    = exp(s[j] - m) * 2^8                   // in [0, 256], f32
    l       = sum_j p[j] + 2^8 * exp(sinks[h] - m)  // the unrounded p
    P8[j]   = e4m3(p[j])                            // round to nearest even
    O[b, h, i, :] = dv * sum_j P8[j] * V[b, g, j, :] / l
    lse[b, h, i]  = m + log(l / 2^8)
    ```

    P is quantized to e4m3 before P·V, as FlashAttention-3 does: its FP8
    kernels offset the softmax's exponent by 8 (`Max_offset`), so that P
    lies in [0, 256] rather than [0, 1] and fewer of its values fall into
    e4m3's subnormals; the row sum uses P before rounding. When the maximum
    grows, earlier blocks' sums are rescaled in f32 (as without FP8); so
    the rounding of P, and nothing else, depends on the key-block size. Up
    to that rounding the result is the attention of the dequantized inputs.
    The output is bf16 (FlashAttention-3's FP8 output), f16 or f32; the LSE
    f32; `bias` and `sinks` are f32. Masks, scale, softcap, GQA, `bshd`
    and `position_offset` work as without FP8. `attn-tile` (and so
    `attn-to-cpu`) lowers FP8 attention, and `attn-lower-to-gpu` on sm_90a
    (the wgmma kernel, head dims 128 and 256; key blocks of 128, or 64 at
    Dv = 256) for scales it knows or takes at run time; other chips, kernel
    bodies and head dims are located errors. There is no FP8
    `attn.attention_grad`.

    ```mlir
    %o = attn.attention %q, %k, %v descale(%dq, %dk, %dv) mask = <causal>
        : (tensor<2x32x4096x128xf8E4M3FN>, tensor<2x8x4096x128xf8E4M3FN>,
           tensor<2x8x4096x128xf8E4M3FN>, tensor<2x8xf32>, tensor<2x8xf32>,
           tensor<2x8xf32>)
        -> tensor<2x32x4096x128xbf16>
    ```

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
    Optional<Index>:$position_offset,
    Variadic<AnyRankedTensor>:$descale,
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
    (`position_offset` `(` $position_offset^ `)`)?
    (`descale` `(` $descale^ `)`)?
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

    /// Whether query, key and value are f8E4M3FN (and so take descales).
    bool isFp8();
    /// The descale of query, key or value (null without descales).
    ::mlir::Value getDescaleQ() { return getDescaleAt(0); }
    ::mlir::Value getDescaleK() { return getDescaleAt(1); }
    ::mlir::Value getDescaleV() { return getDescaleAt(2); }
    ::mlir::Value getDescaleAt(unsigned i) {
      return getDescale().size() == 3 ? getDescale()[i] : ::mlir::Value();
    }
  }];

  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// AttentionGradOp
//===----------------------------------------------------------------------===//

def Attn_AttentionGradOp : Attn_Op<"attention_grad",
    [Pure, AttrSizedOperandSegments,
     DeclareOpInterfaceMethods<Attn_KernelSpecOpInterface>,
     DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "the gradient of attn.attention (its backward pass)";
  let description = [{
    The gradients of an `attn.attention` with the same operands and variant
    attributes, given its output `O`, the gradient `dO` of a loss with
    respect to `O`, and the forward's log-sum-exp `lse` (the forward with
    its `lse` result). With `s[j]` the final score of key `j` for query row
    `i` as `attn.attention` defines it (after scale, softcap, bias and
    mask), for every batch `b`, query head `h` (KV head `g = h / (Hq / Hkv)`)
    and row `i`:

    ```
    P[i, j]   = exp(s[j] - lse[b, h, i])            // 0 for masked keys
    dP[i, j]  = dot(dO[b, h, i, :], V[b, g, j, :])
    Delta[i]  = dot(dO[b, h, i, :], O[b, h, i, :])  // = sum_j P[i, j] dP[i, j]
    dS[i, j]  = P[i, j] * (dP[i, j] - Delta[i])     // d loss / d s[j]
    dS[i, j] *= 1 - tanh(r[j] / softcap)^2          // if softcap is set;
                                                    // r[j] = scale * dot(Q, K)
    dQ[b, h, i, :]  = scale * sum_j dS[i, j] K[b, g, j, :]
    dK[b, g, j, :]  = scale * sum_{h in g} sum_i dS[i, j] Q[b, h, i, :]
    dV[b, g, j, :]  =         sum_{h in g} sum_i P[i, j] dO[b, h, i, :]
    dsinks[h]       = - sum_{b, i} exp(sinks[h] - lse[b, h, i]) Delta[i]
    ```

    dK and dV are summed over the query heads of each KV head (GQA, MQA).
    The sink logit only enlarges the softmax's denominator, hence its
    gradient: the sink's probability times -Delta, summed over batch and
    rows. Rows whose `lse` is `-inf` (no admissible key, no sink) contribute
    nothing. The bias gets no gradient here (it is treated as a constant, as
    ALiBi and padding masks are).

    | operand / result | shape (`bhsd`; `bshd` swaps H and S) | element type |
    |---|---|---|
    | `query`, `grad_query` | `[B, Hq, Sq, D]` | f16, bf16 or f32 |
    | `key`, `grad_key` | `[B, Hkv, Sk, D]` | as `query` |
    | `value`, `grad_value` | `[B, Hkv, Sk, Dv]` | as `query` |
    | `output`, `grad_output` | `[B, Hq, Sq, Dv]` | as `query` |
    | `lse` | `[B, Hq, Sq]` | f32 |
    | `bias` (optional) | broadcastable to `[B, Hq, Sq, Sk]` | as `query`, or f32 |
    | `sinks` (optional) | `[Hq]` | as `query`, or f32 |
    | `grad_sinks` (result iff `sinks` is given) | as `sinks` | as `sinks` |

    Example: the backward of a causal GQA attention with sinks.

    ```mlir
    %dq, %dk, %dv, %dsinks = attn.attention_grad %q, %k, %v, %o, %do, %lse
        sinks(%sinks) mask = <causal>
        : (tensor<2x32x1024x128xbf16>, tensor<2x8x1024x128xbf16>,
           tensor<2x8x1024x128xbf16>, tensor<2x32x1024x128xbf16>,
           tensor<2x32x1024x128xbf16>, tensor<2x32x1024xf32>, tensor<32xf32>)
        -> (tensor<2x32x1024x128xbf16>, tensor<2x8x1024x128xbf16>,
            tensor<2x8x1024x128xbf16>, tensor<32xf32>)
    ```

    `attn-tile` lowers it to FlashAttention-2's backward loops (and so
    `attn-to-cpu` runs it); `attn-lower-to-gpu` and `attn-to-ptx` generate
    its kernels from an `attention_grad` spec (docs/kernel-spec.md), which
    `attn.gpu.attention_backward` launches. In `attn-to-llvm` programs the
    host code launches them in the same order (dQ, which writes the Delta
    workspace; dK/dV; the sink gradient), as it does the forward's.

    `deterministic = false` (in the attribute dictionary) allows the
    gradients' sums in any order: on sm_90a, at head dims 64 and 128, dQ is
    then added up by the dK/dV kernel with f32 atomics (FlashAttention-3's
    backward: a prep kernel that also zeroes the `dq_accum` workspace, dK/dV,
    a convert kernel), so dQ's last bits may differ from run to run. The
    math is the same; elsewhere the deterministic kernels run.
  }];

  let arguments = (ins
    AnyRankedTensor:$query,
    AnyRankedTensor:$key,
    AnyRankedTensor:$value,
    AnyRankedTensor:$output,
    AnyRankedTensor:$grad_output,
    AnyRankedTensor:$lse,
    Optional<AnyRankedTensor>:$bias,
    Optional<AnyRankedTensor>:$sinks,
    DefaultValuedAttr<Attn_LayoutAttr, "::mlir::attn::Layout::BHSD">:$layout,
    OptionalAttr<Attn_MaskAttr>:$mask,
    OptionalAttr<F32Attr>:$scale,
    OptionalAttr<F32Attr>:$softcap,
    DefaultValuedAttr<BoolAttr, "true">:$deterministic);
  let results = (outs
    AnyRankedTensor:$grad_query,
    AnyRankedTensor:$grad_key,
    AnyRankedTensor:$grad_value,
    Optional<AnyRankedTensor>:$grad_sinks);

  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $output `,` $grad_output `,` $lse
    (`bias` `(` $bias^ `)`)?
    (`sinks` `(` $sinks^ `)`)?
    (`layout` `=` `` $layout^)?
    (`mask` `=` $mask^)?
    (`scale` `=` $scale^)?
    (`softcap` `=` $softcap^)?
    attr-dict `:` functional-type(operands, results)
  }];

  let extraClassDeclaration = [{
    /// The problem sizes, read through the layout (as attn.attention's).
    AttentionShape getAttentionShape();

    /// The mask, with an absent attribute meaning `#attn.mask<none>`.
    MaskAttr getMaskOrNone();

    /// The scale applied to Q·Kᵀ (as attn.attention's): the attribute, or
    /// 1/sqrt(D) when absent; std::nullopt for a dynamic D without one.
    std::optional<double> getEffectiveScale();
  }];

  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// PagedAttentionOp
//===----------------------------------------------------------------------===//

def Attn_PagedAttentionOp : Attn_Op<"paged_attention",
    [Pure,
     DeclareOpInterfaceMethods<Attn_KernelSpecOpInterface>,
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
    an LSE of `-inf`, or the sink alone). A length outside `[0, max_pages *
    page_size]` counts as the nearer end of that range (`L` is clamped): no
    lowering reads past a sequence's row of `block_table`. The entries of
    that row past `ceil(L / page_size)` are never read, so they may hold
    anything (-1, an index past the cache, a page of NaN), and neither are
    the cache slots of a page past `L`: whatever they hold cannot reach an
    output. The entries before must be valid page indices (`0 <= index <
    P`) — the op's inputs are data, so this is the caller's obligation,
    like an index into a tensor.

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

//===----------------------------------------------------------------------===//
// GatedDeltaRuleOp
//===----------------------------------------------------------------------===//

def Attn_GatedDeltaRuleOp : Attn_Op<"gated_delta_rule",
    [Pure,
     DeclareOpInterfaceMethods<Attn_KernelSpecOpInterface>,
     DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "linear attention with the gated delta rule (Gated DeltaNet, KDA)";
  let description = [{
    Linear attention whose state, a `[Dk, Dv]` matrix per sequence and value
    head, is updated token by token by the gated delta rule (Gated DeltaNet;
    Qwen3-Next interleaves it with full attention) or its per-channel-gated
    form (Kimi Delta Attention). For every batch `b` and value head `h`
    (key head `hk = h / (Hv / Hk)`, so that several value heads can share a
    key head):

    ```
    S = initial_state[b, h]            // [Dk, Dv]; zeros if not given
    for t in 0 .. T-1:
      q = Q[b, t, hk, :], k = K[b, t, hk, :]
      q, k = q / sqrt(|q|² + 1e-6), k / sqrt(|k|² + 1e-6)   // if qk_l2norm
      S = exp(g[b, t, h]) * S                    // gate = head
      S = diag(exp(g[b, t, h, :])) * S           // gate = channel
      u = beta[b, t, h] * (V[b, t, h, :] - Sᵀ k)  // [Dv]: the delta
      S = S + k uᵀ
      O[b, t, h, :] = Sᵀ (scale * q)
    final_state[b, h] = S
    ```

    that is `S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ`,
    `o_t = S_tᵀ q_t`. The gates `g` are log-space decays (`α = exp(g)`,
    normally `g <= 0`). `chunk_size` is the length of the chunks of the
    chunked (WY / UT-transform) evaluation that lowerings use for prefill:
    within a chunk the updates become matrix products, across chunks the
    state is carried; it does not change the result.

    | operand / result | shape | element type |
    |---|---|---|
    | `query`, `key` | `[B, T, Hk, Dk]` | f16, bf16 or f32 |
    | `value` | `[B, T, Hv, Dv]` (`Hv` a multiple of `Hk`) | as `query` |
    | `gate` | `[B, T, Hv]` (`head`) or `[B, T, Hv, Dk]` (`channel`) | f32 or as `query` |
    | `beta` | `[B, T, Hv]` | f32 or as `query` |
    | `initial_state` (optional) | `[B, Hv, Dk, Dv]` | f32 |
    | `output` | `[B, T, Hv, Dv]` | as `query` |
    | `final_state` | `[B, Hv, Dk, Dv]` | f32 |

    `scale` defaults to `1/sqrt(Dk)`. With `T = 1` this is the recurrent
    decode step.

    Example: a Qwen3-Next Gated DeltaNet layer (16 key heads, 32 value heads,
    head dim 128) over 4096 tokens:

    ```mlir
    %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %beta qk_l2norm
        : (tensor<1x4096x16x128xbf16>, tensor<1x4096x16x128xbf16>,
           tensor<1x4096x32x128xbf16>, tensor<1x4096x32xf32>,
           tensor<1x4096x32xf32>)
        -> (tensor<1x4096x32x128xbf16>, tensor<1x32x128x128xf32>)
    ```
  }];

  let arguments = (ins
    AnyRankedTensor:$query,
    AnyRankedTensor:$key,
    AnyRankedTensor:$value,
    AnyRankedTensor:$gate,
    AnyRankedTensor:$beta,
    Optional<AnyRankedTensor>:$initial_state,
    DefaultValuedAttr<Attn_GateKindAttr, "::mlir::attn::GateKind::Head">:$gate_kind,
    UnitAttr:$qk_l2norm,
    OptionalAttr<F32Attr>:$scale,
    DefaultValuedAttr<I64Attr, "64">:$chunk_size);
  let results = (outs
    AnyRankedTensor:$output,
    AnyRankedTensor:$final_state);

  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $gate `,` $beta
    (`initial_state` `(` $initial_state^ `)`)?
    (`gate_kind` `=` `` $gate_kind^)?
    (`qk_l2norm` $qk_l2norm^)?
    (`scale` `=` $scale^)?
    (`chunk_size` `=` $chunk_size^)?
    attr-dict `:` functional-type(operands, results)
  }];

  let extraClassDeclaration = [{
    /// The scale: the attribute, or 1/sqrt(Dk) when absent (needs a static
    /// Dk).
    std::optional<double> getEffectiveScale();
  }];

  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// SparseAttentionOp
//===----------------------------------------------------------------------===//

def Attn_SparseAttentionOp : Attn_Op<"sparse_attention",
    [Pure,
     DeclareOpInterfaceMethods<Attn_KernelSpecOpInterface>,
     DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "softmax attention over selected keys (NSA selection, DSA)";
  let description = [{
    Softmax attention in which every query row reads only the keys its
    index list selects: DeepSeek Sparse Attention's token-sparse attention
    (`block_size = 1`, the indices from `attn.lightning_indexer`) and Native
    Sparse Attention's selection branch (`block_size` = the selection block,
    the indices the selected blocks). Query row `i` of sequence `b` sits at
    position `p = i + Sk - Sq` (bottom-right aligned, as in `attn.attention`).
    For every query head `h` (KV head `g = h / (Hq / Hkv)`; the query heads
    of a KV head share its index list):

    ```
    sel     = { n * block_size + r : n in indices[b, i, g, :], n >= 0,
                0 <= r < block_size, n * block_size + r < Sk }
    s[j]    = scale * dot(Q[b, i, h, :], K[b, j, g, :])          j in sel
    s[j]    = softcap * tanh(s[j] / softcap)     // if softcap is set
    s[j]    = -inf  unless mask admits key j at position p
    O[b, i, h, :] = softmax over j in sel (and the sink, if given) · V rows
    ```

    | operand / result | shape | element type |
    |---|---|---|
    | `query` | `[B, Sq, Hq, D]` | f16, bf16 or f32 |
    | `key` | `[B, Sk, Hkv, D]` | as `query` |
    | `value` | `[B, Sk, Hkv, Dv]` | as `query` |
    | `indices` | `[B, Sq, Hkv, N]` | i32 or i64 |
    | `sinks` (optional) | `[Hq]` | as `query`, or f32 |
    | `output` | `[B, Sq, Hq, Dv]` | as `query` |
    | `lse` (optional result) | `[B, Hq, Sq]` | f32 |

    Invalid indices are data, not errors: `-1` (any negative index) skips
    its entry, and so do blocks or tokens at or past `Sk` and keys the mask
    does not admit at the row's position. A row whose entries are all
    skipped gives zeros (an LSE of `-inf`, or the sink alone). An index
    list must not name a key twice (top-k selections never do); the result
    of one that does is unspecified. `mask`, `scale`, `softcap` and `sinks`
    mean what they mean for `attn.attention`.

    DSA's attention (DeepSeek-V3.2) is this op over the MLA latent cache
    with one KV head: `D = 576`, `Dv = 512`, the value the first 512
    columns of the key (a `tensor.extract_slice`), top-k 2048 indices per
    token, the scale given explicitly.

    Example: NSA's selection branch, 16 query heads per KV head, 16 selected
    blocks of 64 keys per token:

    ```mlir
    %o = attn.sparse_attention %q, %k, %v, %blocks block_size = 64
        mask = <causal>
        : (tensor<1x4096x64x128xbf16>, tensor<1x4096x4x128xbf16>,
           tensor<1x4096x4x128xbf16>, tensor<1x4096x4x16xi32>)
        -> tensor<1x4096x64x128xbf16>
    ```
  }];

  let arguments = (ins
    AnyRankedTensor:$query,
    AnyRankedTensor:$key,
    AnyRankedTensor:$value,
    AnyRankedTensor:$indices,
    Optional<AnyRankedTensor>:$sinks,
    DefaultValuedAttr<I64Attr, "1">:$block_size,
    OptionalAttr<Attn_MaskAttr>:$mask,
    OptionalAttr<F32Attr>:$scale,
    OptionalAttr<F32Attr>:$softcap);
  let results = (outs
    AnyRankedTensor:$output,
    Optional<AnyRankedTensor>:$lse);

  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $indices
    (`sinks` `(` $sinks^ `)`)?
    (`block_size` `=` $block_size^)?
    (`mask` `=` $mask^)?
    (`scale` `=` $scale^)?
    (`softcap` `=` $softcap^)?
    attr-dict `:` functional-type(operands, results)
  }];

  let extraClassDeclaration = [{
    /// The mask, with an absent attribute meaning `#attn.mask<none>`.
    MaskAttr getMaskOrNone();

    /// The scale: the attribute, or 1/sqrt(D) when absent (needs a static D).
    std::optional<double> getEffectiveScale();
  }];

  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// LightningIndexerOp
//===----------------------------------------------------------------------===//

def Attn_LightningIndexerOp : Attn_Op<"lightning_indexer",
    [Pure,
     DeclareOpInterfaceMethods<Attn_KernelSpecOpInterface>,
     DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "DeepSeek Sparse Attention's lightning indexer and top-k";
  let description = [{
    Scores every key for every query token with DeepSeek-V3.2's lightning
    indexer and selects the `top_k` best, the index lists of DSA's
    `attn.sparse_attention`. Query token `t` of sequence `b` sits at
    position `p = t + Sk - Sq` (bottom-right aligned):

    ```
    score[b, t, s] = Σ_h weights[b, t, h] * relu(dot(Q[b, t, h, :], K[b, s, :]))
                     for keys s the mask admits at position p, else -inf
    indices[b, t, :] = the top_k keys s by score (ties: lower s first);
                       -1 after the admitted keys run out
    ```

    | operand / result | shape | element type |
    |---|---|---|
    | `query` | `[B, Sq, Hi, Di]` (DeepSeek-V3.2: 64 heads x 128) | f16, bf16 or f32 |
    | `key` | `[B, Sk, Di]` (one head) | as `query` |
    | `weights` | `[B, Sq, Hi]` | as `query`, or f32 |
    | `indices` | `[B, Sq, top_k]` | i32 |
    | `scores` (optional result) | `[B, Sq, Sk]` | f32 |

    The scores are accumulated in f32 (DeepSeek's kernels take q and k in
    fp8; the op takes them as given). `mask` is `attn.attention`'s
    (default `none`; causal for prefill).

    Example: DSA prefill over 4096 tokens, top-2048:

    ```mlir
    %idx = attn.lightning_indexer %q, %k, %w top_k = 2048 mask = <causal>
        : (tensor<1x4096x64x128xbf16>, tensor<1x4096x128xbf16>,
           tensor<1x4096x64xf32>) -> tensor<1x4096x2048xi32>
    ```
  }];

  let arguments = (ins
    AnyRankedTensor:$query,
    AnyRankedTensor:$key,
    AnyRankedTensor:$weights,
    I64Attr:$top_k,
    OptionalAttr<Attn_MaskAttr>:$mask);
  let results = (outs
    AnyRankedTensor:$indices,
    Optional<AnyRankedTensor>:$scores);

  let assemblyFormat = [{
    $query `,` $key `,` $weights
    `top_k` `=` $top_k
    (`mask` `=` $mask^)?
    attr-dict `:` functional-type(operands, results)
  }];

  let extraClassDeclaration = [{
    /// The mask, with an absent attribute meaning `#attn.mask<none>`.
    MaskAttr getMaskOrNone();
  }];

  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// NsaOp
//===----------------------------------------------------------------------===//

def Attn_NsaOp : Attn_Op<"nsa",
    [Pure,
     DeclareOpInterfaceMethods<Attn_KernelSpecOpInterface>,
     DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "Native Sparse Attention: compressed, selected and window "
                "branches, gated";
  let description = [{
    Native Sparse Attention (Yuan et al., 2025) for causal models: every
    query row attends three ways and mixes the results with its gates.
    Query row `t` sits at position `p = t + Sk - Sq`; `G = Hq / Hkv` query
    heads share a KV head `g`; `l = cmp_block`, `d = cmp_stride`,
    `l' = sel_block`:

    ```
    // 1. compressed: compressed token c summarizes raw keys [c·d, c·d + l)
    //    and is visible once its block is complete (c·d + l <= p + 1)
    o_cmp, P = attention(q, key_cmp, value_cmp) over the visible c
               // P[b, h, t, c]: its probabilities (0 where not visible)
    // 2. selection scores of the raw blocks [j·l', (j + 1)·l'), j <= p / l'
    score[b, t, g, j] = Σ_{h in g} Σ_{c: [c·d, c·d + l) overlaps block j} P
    score = +inf for the initial_blocks first blocks and the local_blocks
            blocks ending at p's block (always selected)
    idx[b, t, g, :] = the num_selected best blocks (ties: lower j; -1 past
                      the blocks that exist up to p)
    // 3. selected: attn.sparse_attention(q, key, value, idx,
    //                                    block_size = l', mask = causal)
    // 4. window: attn.attention(q, key, value,
    //                           mask = <window, left = window - 1, right = 0>)
    O = gates[..., 0] · o_cmp + gates[..., 1] · o_slc + gates[..., 2] · o_win
    ```

    | operand / result | shape | element type |
    |---|---|---|
    | `query` | `[B, Sq, Hq, D]` | f16, bf16 or f32 |
    | `key` | `[B, Sk, Hkv, D]` | as `query` |
    | `value` | `[B, Sk, Hkv, Dv]` | as `query` |
    | `key_cmp` | `[B, Tc, Hkv, D]` | as `query` |
    | `value_cmp` | `[B, Tc, Hkv, Dv]` | as `query` |
    | `gates` | `[B, Sq, Hq, 3]` (compressed, selected, window) | as `query`, or f32 |
    | `output` | `[B, Sq, Hq, Dv]` | as `query` |

    NSA's compression is a learned MLP over each block of `l` keys (with a
    position encoding): that is the frontend's computation, whose results
    the op takes as `key_cmp`/`value_cmp`, compressed token `c` covering raw
    keys `[c·d, c·d + l)` (`Tc` of them, however many the frontend made).
    The gates are the frontend's too (a sigmoid of a linear map, in NSA).
    `scale` (default `1/sqrt(D)`) applies to all three branches. Head counts
    must be static.

    Example: the NSA paper's 27B model's configuration (GQA groups of 16,
    `l = 32`, `d = 16`, `l' = 64`, 16 selected blocks, a 512-token window)
    over 4096 tokens:

    ```mlir
    %o = attn.nsa %q, %k, %v, %kc, %vc, %gates cmp_block = 32 cmp_stride = 16
        sel_block = 64 num_selected = 16 window = 512
        : (tensor<1x4096x64x192xbf16>, tensor<1x4096x4x192xbf16>,
           tensor<1x4096x4x128xbf16>, tensor<1x255x4x192xbf16>,
           tensor<1x255x4x128xbf16>, tensor<1x4096x64x3xbf16>)
        -> tensor<1x4096x64x128xbf16>
    ```
  }];

  let arguments = (ins
    AnyRankedTensor:$query,
    AnyRankedTensor:$key,
    AnyRankedTensor:$value,
    AnyRankedTensor:$key_cmp,
    AnyRankedTensor:$value_cmp,
    AnyRankedTensor:$gates,
    I64Attr:$cmp_block,
    I64Attr:$cmp_stride,
    I64Attr:$sel_block,
    I64Attr:$num_selected,
    I64Attr:$window,
    DefaultValuedAttr<I64Attr, "1">:$initial_blocks,
    DefaultValuedAttr<I64Attr, "2">:$local_blocks,
    OptionalAttr<F32Attr>:$scale);
  let results = (outs AnyRankedTensor:$output);

  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $key_cmp `,` $value_cmp `,` $gates
    `cmp_block` `=` $cmp_block `cmp_stride` `=` $cmp_stride
    `sel_block` `=` $sel_block `num_selected` `=` $num_selected
    `window` `=` $window
    (`initial_blocks` `=` $initial_blocks^)?
    (`local_blocks` `=` $local_blocks^)?
    (`scale` `=` $scale^)?
    attr-dict `:` functional-type(operands, results)
  }];

  let extraClassDeclaration = [{
    /// The scale: the attribute, or 1/sqrt(D) when absent (needs a static D).
    std::optional<double> getEffectiveScale();
  }];

  let hasVerifier = 1;
}

#endif // ATTN_IR_ATTNOPS_TD
