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

#endif // ATTN_IR_ATTNOPS_TD
