//===- AttnAttrs.td - attn enums and attributes ------------*- tablegen -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Variant attributes of attention: tensor layout and mask.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_IR_ATTNATTRS_TD
#define ATTN_IR_ATTNATTRS_TD

include "attn/IR/AttnBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Layout
//===----------------------------------------------------------------------===//

def Attn_LayoutBHSD : I32EnumAttrCase<"BHSD", 0, "bhsd">;
def Attn_LayoutBSHD : I32EnumAttrCase<"BSHD", 1, "bshd">;

def Attn_Layout : I32EnumAttr<"Layout",
    "order of the dimensions of query, key, value and output",
    [Attn_LayoutBHSD, Attn_LayoutBSHD]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::attn";
}

def Attn_LayoutAttr : EnumAttr<Attn_Dialect, Attn_Layout, "layout"> {
  let summary = "dimension order of the attention tensors";
  let description = [{
    `bhsd`: `[batch, heads, sequence, head_dim]` (the default).
    `bshd`: `[batch, sequence, heads, head_dim]`.
  }];
}

//===----------------------------------------------------------------------===//
// KV cache layout
//===----------------------------------------------------------------------===//

def Attn_CacheLayoutNHD : I32EnumAttrCase<"NHD", 0, "nhd">;
def Attn_CacheLayoutHND : I32EnumAttrCase<"HND", 1, "hnd">;

def Attn_CacheLayout : I32EnumAttr<"CacheLayout",
    "order of the dimensions of a paged KV cache",
    [Attn_CacheLayoutNHD, Attn_CacheLayoutHND]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::attn";
}

def Attn_CacheLayoutAttr : EnumAttr<Attn_Dialect, Attn_CacheLayout,
                                    "cache_layout"> {
  let summary = "dimension order of a paged KV cache";
  let description = [{
    `nhd`: `[num_pages, page_size, kv_heads, head_dim]` (vLLM's and
    FlashInfer's default). `hnd`: `[num_pages, kv_heads, page_size, head_dim]`.
  }];
}

//===----------------------------------------------------------------------===//
// Gate of linear attention
//===----------------------------------------------------------------------===//

def Attn_GateHead : I32EnumAttrCase<"Head", 0, "head">;
def Attn_GateChannel : I32EnumAttrCase<"Channel", 1, "channel">;

def Attn_GateKind : I32EnumAttr<"GateKind",
    "granularity of the decay gate of gated delta attention",
    [Attn_GateHead, Attn_GateChannel]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::attn";
}

def Attn_GateKindAttr : EnumAttr<Attn_Dialect, Attn_GateKind, "gate"> {
  let summary = "decay gate granularity of gated delta attention";
  let description = [{
    `head`: one log-space decay per token and value head (Gated DeltaNet,
    gate `[B, T, Hv]`). `channel`: one per token, value head and key channel
    (Kimi Delta Attention, gate `[B, T, Hv, Dk]`).
  }];
}

//===----------------------------------------------------------------------===//
// Mask
//===----------------------------------------------------------------------===//

def Attn_MaskNone : I32EnumAttrCase<"None", 0, "none">;
def Attn_MaskCausal : I32EnumAttrCase<"Causal", 1, "causal">;
def Attn_MaskWindow : I32EnumAttrCase<"Window", 2, "window">;

def Attn_MaskKind : I32EnumAttr<"MaskKind", "kind of structural mask",
    [Attn_MaskNone, Attn_MaskCausal, Attn_MaskWindow]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::attn";
}

def Attn_MaskAttr : AttrDef<Attn_Dialect, "Mask"> {
  let mnemonic = "mask";
  let summary = "which keys each query may attend to";
  let description = [{
    A structural mask, defined on bottom-right aligned positions: query row
    `i` of `Sq` sits at key position `p = i + Sk - Sq`.

    * `#attn.mask<none>`: every key `0 <= j < Sk` is admitted.
    * `#attn.mask<causal>`: key `j` is admitted iff `j <= p`.
    * `#attn.mask<window, left = L, right = R>`: key `j` is admitted iff
      `p - L <= j <= p + R` (and `0 <= j < Sk`). A window admits at most
      `L + R + 1` keys. Mistral's causal sliding window of W tokens is
      `left = W - 1, right = 0`; FlashAttention's `window_size=(L, R)` is
      `left = L, right = R`. Both extents are non-negative integers.

    When Sq > Sk, causal and window masks leave the first rows with no
    admissible key; such rows produce zeros (and a log-sum-exp of `-inf`).
  }];
  let parameters = (ins
    EnumParameter<Attn_MaskKind>:$kind,
    DefaultValuedParameter<"int64_t", "0">:$left,
    DefaultValuedParameter<"int64_t", "0">:$right);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let builders = [
    AttrBuilder<(ins "MaskKind":$kind), [{
      return $_get($_ctxt, kind, 0, 0);
    }]>
  ];
  let extraClassDeclaration = [{
    /// A mask that admits every key.
    static MaskAttr getNone(::mlir::MLIRContext *ctx) {
      return get(ctx, MaskKind::None);
    }
    /// The bottom-right aligned causal mask.
    static MaskAttr getCausal(::mlir::MLIRContext *ctx) {
      return get(ctx, MaskKind::Causal);
    }
    /// A sliding window admitting keys in [p - left, p + right].
    static MaskAttr getWindow(::mlir::MLIRContext *ctx, int64_t left,
                              int64_t right) {
      return get(ctx, MaskKind::Window, left, right);
    }

    bool isNone() const { return getKind() == MaskKind::None; }
    bool isCausal() const { return getKind() == MaskKind::Causal; }
    bool isWindow() const { return getKind() == MaskKind::Window; }

    /// The half-open range [lo, hi) of keys admitted for query row `i` of a
    /// problem with `sq` queries and `sk` keys, clamped to [0, sk). The range
    /// is empty (lo >= hi) when no key is admitted. Every mask of this
    /// attribute admits a contiguous range, which is what lets tiled
    /// lowerings restrict their key loops to a band.
    std::pair<int64_t, int64_t> getAdmittedKeys(int64_t i, int64_t sq,
                                                int64_t sk) const;

    /// Whether key `j` is admitted for query row `i`.
    bool admits(int64_t i, int64_t j, int64_t sq, int64_t sk) const {
      auto [lo, hi] = getAdmittedKeys(i, sq, sk);
      return lo <= j && j < hi;
    }
  }];
}

#endif // ATTN_IR_ATTNATTRS_TD
