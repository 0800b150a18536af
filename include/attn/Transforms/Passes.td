//===- Passes.td - attn transformation passes --------------*- tablegen -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_PASSES_TD
#define ATTN_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnFuse : Pass<"attn-fuse", "func::FuncOp"> {
  let summary = "Recognize unfused attention graphs (and their backward) and "
                "rewrite them into attn.attention (and attn.attention_grad)";
  let description = [{
    Finds softmax(scale · Q·Kᵀ [softcapped] [+ bias] [masked]) · V spelled as
    separate ops -- as torch-mlir (linalg on tensors), TOSA and hand-written
    linalg emit it -- and replaces it by one `attn.attention` with the
    inferred variant attributes. Everything it does not recognize is left
    untouched. Before:

    ```mlir
    %s  = linalg.batch_matmul ins(%q, %kT) ...           // Q·Kᵀ
    %ss = linalg.generic {mulf %s, 0.125} ...             // scale
    %m  = linalg.generic {select(j <= i, %ss, -inf)} ...  // causal mask
    %p  = linalg.softmax dimension(2) ins(%m) ...
    %o  = linalg.batch_matmul ins(%p, %v) ...             // P·V
    ```

    After:

    ```mlir
    %o4 = attn.attention %q4, %k4, %v4 mask = <causal> scale = 1.250000e-01 ...
    %o  = tensor.collapse_shape %o4 ...
    ```

    Recognized spellings:
    * Q·Kᵀ and P·V as any linalg contraction (`linalg.matmul`,
      `linalg.batch_matmul`, with or without transposing `indexing_maps`, or a
      `linalg.generic` contraction) or `tosa.matmul`; operands reached
      through transposes (`linalg.transpose`, `tosa.transpose`, permuting
      generics), reshapes between [B, H, S, D] and [B·H, S, D]
      (`tensor.collapse_shape`/`expand_shape`, `tosa.reshape`) and element
      type extensions.
    * the scale as a multiply or divide by a constant, on the scores or on Q.
    * softmax as `linalg.softmax`, as the stable decomposition (max-reduce,
      subtract, exp, sum-reduce, divide or multiply by the reciprocal) and as
      the unstable one (exp, sum, divide), in linalg, arith-on-tensors or tosa.
    * masks: `select(pred, s, -inf)` and `s + select(pred, 0, -inf)` whose
      predicate compares `linalg.index` values as a band `lo <= j - i <= hi`
      (→ `causal` or a sliding `window`, bottom-right aligned), constant mask
      tensors that are exactly causal or banded (→ the attribute), and any
      other additive tensor (→ the `bias` operand, unchanged).
    * GQA/MQA: K and V repeated across heads (`repeat_kv`: expand_shape →
      broadcast → collapse_shape, or a broadcast of a missing head dim): the
      repetition is removed and Hkv inferred.
    * logit softcap `c · tanh(s / c)`.
    * dynamic batch, head and sequence sizes (`?`, with `tensor.empty(%d)` and
      `tensor.dim`): the fused op gets the dynamic types. A mask must then
      admit the same keys for every runtime size: bottom-right masks written
      with the runtime sizes (`j <= i + Sk - Sq`) fuse; a top-left one
      (`j <= i`) fuses only where the IR proves Sq = Sk (the same size value
      reaches both dims) and is otherwise reported and left alone. Head dims
      stay static.
    * training graphs: the forward above plus the backward autograd builds
      for it become `attn.attention` (with its `lse` result) and
      `attn.attention_grad`. Recognized: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙
      (dP − rowsum(dP ⊙ P)) (also spelled dP ⊙ P − P ⊙ rowsum(dP ⊙ P), or with
      FlashAttention's rowsum(dO ⊙ O)) times the scale and, with a softcap,
      (1 − tanh²), with or without the forward's mask re-applied; dQ = dS·K
      and dK = dSᵀ·Q, each through the same views as the forward, and for GQA
      dK and dV summed over each group of query heads; in linalg or tosa,
      bhsd or bshd (transpose(1, 2)). Gradients of frozen inputs may be
      missing (dQ and dV only, dK and dV only, dQ only, ...) or dead; a
      graph whose P feeds anything else -- another transpose, P, rowsum
      dim, scale or mask -- is left alone, forward included.

    Numerics. The fused op computes in f32 whatever the frontend did: the
    scores, softmax and P·V accumulation are f32 even where the frontend
    rounded them to f16/bf16 (more accurate, not bitwise equal); the softmax
    is always the stable one, so the unstable spelling no longer overflows
    for large scores; a scale applied to Q in the input type is applied to
    the f32 scores instead; a row whose keys are all masked gives 0 (and an
    LSE of -inf) instead of NaN -- or, for masks that use the lowest finite
    float instead of -inf, instead of a uniform average. Which elements are
    masked never changes: a mask is turned into an attribute only when the
    attribute admits exactly the same keys for every row, and otherwise kept
    as a bias or not fused.
  }];
  let options = [
    Option<"reportMisses", "report-misses", "bool", /*default=*/"false",
           "Emit a remark on each contraction that consumes a softmax but "
           "was not fused, saying why">,
    Option<"fuseBackward", "fuse-backward", "bool", /*default=*/"true",
           "Also fuse the backward of a training graph into "
           "attn.attention_grad (the GPU pipelines turn this off until "
           "their host code launches its kernels)">,
  ];
  let dependentDialects = [
    "::mlir::attn::AttnDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def AttnTile : Pass<"attn-tile", "func::FuncOp"> {
  let summary = "Rewrite attn.attention and attn.attention_grad into tiled "
                "FlashAttention loops";
  let description = [{
    Rewrites every `attn.attention` into FlashAttention-2 style loops with an
    online softmax, in upstream dialects (scf, tensor, linalg, arith, math):

    ```mlir
    %o = scf.forall (%b, %h, %qb) in (%B, %Hq, %numQBlocks)
        shared_outs(%out = %init) -> (tensor<...>) {
      // Q tile [bm, D]; K/V of KV head %h / group (GQA by index arithmetic)
      %r:3 = scf.for %kb = %first to %last step %c1     // only the band
          iter_args(%m = %m0, %l = %l0, %acc = %acc0) -> (...) {
        // S = Q·Kᵀ · scale·log2(e) [softcap] [+ bias·log2(e)]
        // scf.if (block on the band's edge) { elementwise mask }
        // m' = max(m, rowmax S); P = exp2(S - m'); alpha = exp2(m - m')
        // l' = l·alpha + rowsum P; acc' = acc·alpha + P·V
      }
      // O = acc / l (0 where l = 0); lse = (m + log2 l) · ln 2
      scf.forall.in_parallel { tensor.parallel_insert_slice ... }
    }
    ```

    The outer `scf.forall` runs over (batch, query head, query block); the
    inner `scf.for` visits only the key/value blocks that intersect the band
    of the query block's mask (causal and windows, bottom-right aligned), and
    only blocks on the band's edges evaluate the elementwise mask: no
    [Sq, Sk] mask is ever materialized. Tails are handled by tiles of
    dynamic size (no out-of-bounds reads); sizes may be static or dynamic.
    A row with no admissible key yields 0 and an LSE of -inf.

    Every `attn.attention_grad` becomes FlashAttention-2's backward loops,
    with P recomputed from the forward's LSE by the same logits code:

    ```mlir
    // Delta[b, h, i] = rowsum(dO ⊙ O)                      (one generic)
    %dq = scf.forall (%b, %h, %qb) in (%B, %Hq, %numQBlocks) ... {
      scf.for %kb = %first to %last ... {   // the block's band, as above
        // P = exp2(logits(Q·Kᵀ) - lse·log2 e); dP = dO·Vᵀ
        // dS = P ⊙ (dP - Delta) · scale [· (1 - tanh²) under softcap]
        // dQ += dS·K
      }
    }
    %dk, %dv = scf.forall (%b, %g, %kb) in (%B, %Hkv, %numKBlocks) ... {
      scf.for %h = %g·group to (%g + 1)·group ... {    // the GQA group
        scf.for %qb = %first to %last ... {   // rows admitting the block
          // P, dS as above; dV += Pᵀ·dO; dK += dSᵀ·Q
        }
      }
    }
    // dsinks[h] = -Σ_{b,i} exp(sinks[h] - lse) · Delta  (one generic)
    ```

    dQ has its own loop nest (no atomics), so every result is written by
    disjoint tiles and is deterministic. Loop nests whose results are
    unused are not built.
  }];
  let options = [
    Option<"blockQ", "block-q", "int64_t", /*default=*/"64",
           "Query rows per tile (the outer loop's block)">,
    Option<"blockKV", "block-kv", "int64_t", /*default=*/"64",
           "Keys per tile (the inner loop's step)">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def AttnDecomposeAggregates : Pass<"attn-decompose-aggregates", "func::FuncOp"> {
  let summary = "Decompose linalg aggregate ops (linalg.softmax) into generics";
  let description = [{
    Replaces every op implementing `linalg::AggregatedOpInterface` (today
    `linalg.softmax`) by its decomposition into `linalg.generic` ops, so that
    unfused attention graphs can be lowered to loops by the CPU pipeline.
    Upstream offers this only through the transform dialect.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def AttnExpandF8E4M3FN : Pass<"attn-expand-f8e4m3fn", "func::FuncOp"> {
  let summary = "Expand f8E4M3FN conversions (arith.extf / arith.truncf) "
                "into integer arithmetic for the CPU";
  let description = [{
    LLVM has no FP8 type, and upstream's arith-to-llvm leaves `arith.extf`
    from and `arith.truncf` to `f8E4M3FN` unconverted (arith-expand expands
    only bf16, f4E2M1FN and f8E8M0FNU; arith-emulate-unsupported-floats
    keeps these two ops; convert-arith-to-apfloat rewrites every float op of
    the module, f16 and bf16 included, into calls to a runtime library).
    This pass rewrites the two conversions on scalars into integer
    arithmetic on the bits, which arith-to-llvm then lowers (the FP8 tensors
    themselves become i8 memory):

    * `extf` (to any float type, through f32): exact; e4m3's NaN (S.1111.111)
      gives NaN.
    * `truncf` (from f16, bf16 or f32): round to nearest, ties to even;
      magnitudes at or above 448 (e4m3's largest finite value), infinities
      included, saturate to ±448, as the GPU's `cvt.rn.satfinite` does;
      NaN gives NaN; results below 2^-6 are e4m3 subnormals (m · 2^-9).

    ```mlir
    %p8 = arith.truncf %p : f32 to f8E4M3FN
    // becomes integer arithmetic on arith.bitcast %p : f32 to i32, ending in
    %p8 = arith.bitcast %bits : i8 to f8E4M3FN
    ```

    `attn-to-cpu` runs it before converting arith to LLVM, for FP8
    attention's P (attn-tile rounds it to e4m3) and inputs.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def AttnDecomposePaged : Pass<"attn-decompose-paged", "func::FuncOp"> {
  let summary = "Rewrite attn.paged_attention into a gather and attn.attention";
  let description = [{
    The reference lowering of paged attention: each sequence's keys and
    values are gathered out of the paged caches into `[B, max_pages *
    page_size, Hkv, D]` tensors (zeros past the sequence's length; pages past
    it are never read), and one `attn.attention` in the `bshd` layout runs
    over them with an additive f32 bias of 0 / -inf that carries each
    sequence's length and the mask at that sequence's bottom-right
    alignment. Softcap, scale, sinks and the LSE carry over unchanged. The
    CPU pipeline uses it; it materializes the gathered keys, which a paged
    GPU kernel avoids.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def AttnDecomposeSparse : Pass<"attn-decompose-sparse", "func::FuncOp"> {
  let summary = "Rewrite attn.sparse_attention, attn.lightning_indexer and "
                "attn.nsa into dense reference forms";
  let description = [{
    The reference lowerings of the sparse attention ops. An
    `attn.sparse_attention` becomes an `attn.attention` over all keys with an
    additive f32 bias of 0 at the keys each row's index list selects (token
    or block granularity; negative and out-of-range indices skipped) and
    -inf elsewhere; mask, scale, softcap, sinks and the LSE carry over. An
    `attn.lightning_indexer` becomes linalg generics for its f32 scores
    (-inf where the mask does not admit a key) and a per-row top-k by
    repeated argmax (ties to the lower index, -1 once no admitted key is
    left). An `attn.nsa` becomes its branches: compressed attention (an
    `attn.attention` with a visibility bias and its LSE), the compressed
    probabilities recomputed from that LSE, block scores by overlap, the
    always-selected blocks, the top `num_selected` per (token, KV head), an
    `attn.sparse_attention` over them, a windowed `attn.attention`, and the
    gated sum. The CPU pipeline uses them; both materialize dense `[Sq, Sk]`
    tensors, which sparse GPU kernels avoid.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def AttnDecomposeGatedDelta : Pass<"attn-decompose-gated-delta", "func::FuncOp"> {
  let summary = "Rewrite attn.gated_delta_rule into its token-by-token recurrence";
  let description = [{
    The reference lowering of linear attention with the gated delta rule:
    loops over batch, value head, token and value column on tensors, each
    column of the `[Dk, Dv]` state decayed, corrected by the delta rule and
    read out in two passes over the key channels (f32 arithmetic; L2
    normalization of q and k if asked). Any backend can run it; the CPU
    pipeline does. It is scalar O(T·Hv·Dk·Dv) work, not the chunked
    matrix-product form of a fast kernel.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

#endif // ATTN_TRANSFORMS_PASSES_TD
