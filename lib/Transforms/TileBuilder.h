//===- TileBuilder.h - IR builders shared by attn-tile's loops --*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// What the forward (AttnTile.cpp) and the backward (AttnTileGrad.cpp)
// FlashAttention loops share: index arithmetic, f32 tiles (fills,
// element-wise maps, row reductions, contractions), Q/K/V tiles sliced
// through the layout, and the logits of one (query block, key block) tile.
// Both directions build their logits here, so the backward recomputes
// exactly the P that the forward normalized.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_TILEBUILDER_H
#define ATTN_LIB_TRANSFORMS_TILEBUILDER_H

#include "attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/PatternMatch.h"

#include <optional>

namespace mlir {
namespace attn {
namespace tiling {

/// What turns a tile of Q·Kᵀ into logits in log2 units.
struct ScoreTransform {
  /// Multiplies Q·Kᵀ: scale · log2 e, or scale / softcap under softcap
  /// (where log2 e is folded into the cap instead).
  Value factor;
  std::optional<double> softcap;
  /// [B|1, Hq|1, Sq|1, Sk|1] or null.
  Value bias;
};

/// Builders for one op's loops. `sq`, `sk` and `off` (= Sk - Sq, the
/// bottom-right alignment, plus the op's position offset if it has one) are
/// set by `setSequenceLengths`.
class TileBuilder {
public:
  TileBuilder(RewriterBase &b, Location loc, Layout layout, MaskAttr mask)
      : b(b), loc(loc), layout(layout), mask(mask), f32(b.getF32Type()) {}

protected:
  // Scalar helpers.
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value f32c(double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  Value dimOf(Value t, unsigned d);
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }
  Value max(Value x, Value y) { return arith::MaxSIOp::create(b, loc, x, y); }
  Value ceilDiv(Value x, Value y) {
    return arith::CeilDivSIOp::create(b, loc, x, y);
  }
  Value floorDiv(Value x, Value y) {
    return arith::FloorDivSIOp::create(b, loc, x, y);
  }

  /// A 1-D or 2-D f32 tensor of dynamic sizes filled with `value`.
  Value filled(ArrayRef<Value> sizes, ArrayRef<int64_t> staticSizes,
               Value value);
  /// An uninitialized [rows] or [rows, cols] f32 tensor of dynamic sizes.
  Value emptyF32(ArrayRef<Value> sizes);
  /// Element-wise generic over a [rows] or [rows, cols] space.
  Value elementwise(ArrayRef<Value> inputs, ArrayRef<AffineMap> maps,
                    Value init,
                    function_ref<Value(OpBuilder &, Location, ValueRange)> fn);
  /// Row reduction of a [rows, cols] f32 tile into `init` [rows].
  Value rowReduce(Value tile, Value init, bool isMax);
  /// out[i, j] += sum_k lhs[..] * rhs[..] with the given maps over (i, j, k),
  /// in f32.
  Value contract(Value lhs, Value rhs, Value init, AffineMap lhsMap,
                 AffineMap rhsMap);
  /// Element-wise maps: (i) -> (i), (i, j) -> (i, j), (i, j) -> (i).
  AffineMap mapId1();
  AffineMap mapId2();
  AffineMap mapRow2();
  /// The maps of `contract` for A·B, A·Bᵀ and Aᵀ·B.
  std::pair<AffineMap, AffineMap> mapsAB();
  std::pair<AffineMap, AffineMap> mapsABt();
  std::pair<AffineMap, AffineMap> mapsAtB();

  /// Where a [rows, cols] tile of rows [seq0, seq0 + seqLen) of (batch,
  /// head) sits in a 4-D tensor of the op's layout.
  struct TilePlacement {
    SmallVector<OpFoldResult> offsets, sizes, strides;
  };
  TilePlacement placeTile(Value batch, Value head, Value seq0, Value seqLen,
                          OpFoldResult cols);
  /// Slices a [rows, cols] tile out of a 4-D tensor in the op's layout
  /// (Q, K, V, O and their gradients).
  Value sliceQKV(Value t, Value batch, Value head, Value seq0, Value seqLen);
  /// Slices the [rows] of a [B, H, S] f32 tensor (the LSE, Delta).
  Value sliceRows(Value t, Value batch, Value head, Value seq0, Value seqLen);
  /// Inserts a [rows, cols] tile into the 4-D shared output `dest` of an
  /// scf.forall (at the terminator's insertion point).
  void insertTile(Value tile, Value dest, Value batch, Value head, Value seq0,
                  Value seqLen, RankedTensorType destType, Value cols);
  /// Converts an f32 [rows, cols] tile to `elt`.
  Value truncTile(Value tile, Type elt, Value rows, Value cols, int64_t cols0);

  /// Sets `sq`, `sk` and `off` from the query and key tensors; a non-null
  /// `positionOffset` (attn.attention's) is added to `off`.
  void setSequenceLengths(Value q, Value k, Value positionOffset = Value());
  /// Keys admitted for the row at query position `row`: [lo, hi).
  std::pair<Value, Value> band(Value row);

  /// The score transform of an op with these attributes; the default scale
  /// 1/sqrt(D) of a dynamic head dim is computed at run time from `q`.
  ScoreTransform buildScoreTransform(std::optional<double> scale,
                                     std::optional<double> softcap, Value q,
                                     Value bias);
  /// The logits (log2 units) of the tile `s` = Q·Kᵀ of rows [q0, q0 + bm)
  /// and keys [k0, k0 + bn) of (batch, head), -inf outside the mask's band.
  /// The element-wise mask is built only for edge blocks: those not inside
  /// every row's band (`lastLo` is the last row's first key, `firstHi` the
  /// first row's end).
  Value buildLogits(const ScoreTransform &st, Value s, Value batch, Value head,
                    Value q0, Value bm, Value k0, Value bn, Value lastLo,
                    Value firstHi);

  RewriterBase &b;
  Location loc;
  Layout layout;
  MaskAttr mask;
  Type f32;
  Value sq, sk, off;

private:
  Value sliceBias(Value bias, Value batch, Value head, Value q0, Value bm,
                  Value k0, Value bn, AffineMap &map);
  Value logitsTile(const ScoreTransform &st, ArrayRef<Value> inputs,
                   ArrayRef<AffineMap> maps, Value q0, Value bm, Value k0,
                   Value bn, bool masked);
};

} // namespace tiling
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_TILEBUILDER_H
