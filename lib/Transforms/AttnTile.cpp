//===- AttnTile.cpp - attn.attention to FlashAttention loops --------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The FlashAttention-2 algorithm, as generated here for one (batch b, query
// head h, query block [q0, q0 + bm)):
//
//   0. g = h / (Hq / Hkv) is the KV head (GQA/MQA by index arithmetic).
//      m = -inf, l = 0, acc = 0 per row (with sinks: m = sink·log2 e, l = 1:
//      the sink is a key with logit `sink` and value 0).
//      The key blocks visited are those intersecting the band of admitted
//      keys of the block's rows: [lo(q0), hi(q0 + bm - 1)).
//   For each key block [k0, k0 + bn):
//   1. S = Q·Kᵀ (f32 accumulation).
//   2. S = S · scale · log2 e; with softcap c: S = c · log2 e ·
//      tanh(S · scale / c); with bias: S += bias · log2 e. log2 e is folded
//      into the constants so that the softmax runs on exp2.
//   3. Only if the block is on the band's edge: S = -inf outside the band.
//   4. m' = max(m, rowmax S); ms = (m' == -inf ? 0 : m') keeps fully masked
//      rows finite.
//   5. P = exp2(S - ms); alpha = exp2(m - ms).
//   6. l' = l · alpha + rowsum P.
//   7. acc' = acc · alpha + P·V.
//   8. After the loop: O = acc / l, 0 where l = 0 (no admissible key);
//      lse = (m + log2 l) · ln 2, -inf where l = 0.
//
//===----------------------------------------------------------------------===//

#include "attn/IR/AttnOps.h"
#include "attn/IR/MaskUtils.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

#include <cmath>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNTILE
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

namespace {

using utils::IteratorType;

/// Builds the loops for one attention op.
class AttentionTiler {
public:
  AttentionTiler(RewriterBase &b, AttentionOp op,
                 const AttentionTileOptions &options)
      : b(b), op(op), loc(op.getLoc()), options(options), f32(b.getF32Type()) {}

  LogicalResult run();

private:
  // Scalar helpers.
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value f32c(double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  Value dimOf(Value t, unsigned d) {
    auto type = cast<RankedTensorType>(t.getType());
    if (!type.isDynamicDim(d))
      return idx(type.getDimSize(d));
    return tensor::DimOp::create(b, loc, t, d);
  }
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
  /// Element-wise generic over a [rows] or [rows, cols] space.
  Value elementwise(ArrayRef<Value> inputs, ArrayRef<AffineMap> maps,
                    Value init,
                    function_ref<Value(OpBuilder &, Location, ValueRange)> fn);
  /// Row reduction of a [rows, cols] f32 tile into `init` [rows].
  Value rowReduce(Value tile, Value init, bool isMax);
  /// out[i, j] += sum_k lhs[i, k] * rhs[.., ..] with the given maps.
  Value contract(Value lhs, Value rhs, Value init, AffineMap lhsMap,
                 AffineMap rhsMap);

  /// Slices a [rows, cols] tile out of a 4-D Q/K/V tensor.
  Value sliceQKV(Value t, Value batch, Value head, Value seq0, Value seqLen);

  /// Keys admitted for the row at query position `row`: [lo, hi).
  std::pair<Value, Value> band(Value row);

  RewriterBase &b;
  AttentionOp op;
  Location loc;
  const AttentionTileOptions &options;
  Type f32;

  Layout layout;
  MaskAttr mask;
  Value sq, sk, off;
};

Value AttentionTiler::filled(ArrayRef<Value> sizes,
                             ArrayRef<int64_t> staticSizes, Value value) {
  SmallVector<Value> dyn;
  for (auto [s, st] : llvm::zip(sizes, staticSizes))
    if (ShapedType::isDynamic(st))
      dyn.push_back(s);
  Value empty = tensor::EmptyOp::create(b, loc, staticSizes, f32, dyn);
  return linalg::FillOp::create(b, loc, value, empty).getResult(0);
}

Value AttentionTiler::elementwise(
    ArrayRef<Value> inputs, ArrayRef<AffineMap> maps, Value init,
    function_ref<Value(OpBuilder &, Location, ValueRange)> fn) {
  unsigned rank = cast<RankedTensorType>(init.getType()).getRank();
  SmallVector<AffineMap> all(maps);
  all.push_back(b.getMultiDimIdentityMap(rank));
  SmallVector<IteratorType> iters(rank, IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, init.getType(), inputs, init, all, iters,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        linalg::YieldOp::create(nb, nloc, fn(nb, nloc, args));
      });
  return generic.getResult(0);
}

Value AttentionTiler::rowReduce(Value tile, Value init, bool isMax) {
  MLIRContext *ctx = b.getContext();
  AffineExpr i, j;
  bindDims(ctx, i, j);
  auto generic = linalg::GenericOp::create(
      b, loc, init.getType(), tile, init,
      {AffineMap::get(2, 0, {i, j}, ctx), AffineMap::get(2, 0, {i}, ctx)},
      {IteratorType::parallel, IteratorType::reduction},
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        Value r =
            isMax ? (Value)arith::MaximumFOp::create(nb, nloc, args[0], args[1])
                  : (Value)arith::AddFOp::create(nb, nloc, args[0], args[1]);
        linalg::YieldOp::create(nb, nloc, r);
      });
  return generic.getResult(0);
}

Value AttentionTiler::contract(Value lhs, Value rhs, Value init,
                               AffineMap lhsMap, AffineMap rhsMap) {
  MLIRContext *ctx = b.getContext();
  AffineExpr i, j, k;
  bindDims(ctx, i, j, k);
  auto generic = linalg::GenericOp::create(
      b, loc, init.getType(), ValueRange{lhs, rhs}, init,
      {lhsMap, rhsMap, AffineMap::get(3, 0, {i, j}, ctx)},
      {IteratorType::parallel, IteratorType::parallel, IteratorType::reduction},
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        auto toF32 = [&](Value v) -> Value {
          if (v.getType() == f32)
            return v;
          return arith::ExtFOp::create(nb, nloc, f32, v);
        };
        Value p =
            arith::MulFOp::create(nb, nloc, toF32(args[0]), toF32(args[1]));
        linalg::YieldOp::create(
            nb, nloc, arith::AddFOp::create(nb, nloc, args[2], p).getResult());
      });
  return generic.getResult(0);
}

Value AttentionTiler::sliceQKV(Value t, Value batch, Value head, Value seq0,
                               Value seqLen) {
  auto type = cast<RankedTensorType>(t.getType());
  unsigned hPos = getHeadDimPos(layout), sPos = getSeqDimPos(layout);
  SmallVector<OpFoldResult> offsets(4, b.getIndexAttr(0));
  SmallVector<OpFoldResult> sizes(4, b.getIndexAttr(1));
  SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
  offsets[0] = batch;
  offsets[hPos] = head;
  offsets[sPos] = seq0;
  sizes[sPos] = seqLen;
  sizes[3] = type.isDynamicDim(3)
                 ? OpFoldResult(dimOf(t, 3))
                 : OpFoldResult(b.getIndexAttr(type.getDimSize(3)));
  auto resultType = RankedTensorType::get(
      {ShapedType::kDynamic, type.getDimSize(3)}, type.getElementType());
  return tensor::ExtractSliceOp::create(b, loc, resultType, t, offsets, sizes,
                                        strides);
}

std::pair<Value, Value> AttentionTiler::band(Value row) {
  // Query row i sits at key position p = i + Sk - Sq (bottom-right).
  return buildAdmittedKeys(b, loc, mask, add(row, off), sk);
}

// Over 150 lines: the tiled loop nest is built in one place so that its
// induction variables and iter_args stay in scope. (Issue 19 split the GPU
// kernel bodies of lib/Conversion into phases; this CPU tiler was not part
// of it and is the one function of lib/ still over the limit.)
LogicalResult AttentionTiler::run() {
  MLIRContext *ctx = b.getContext();
  layout = op.getLayout();
  mask = op.getMaskOrNone();
  unsigned hPos = getHeadDimPos(layout), sPos = getSeqDimPos(layout);
  Value q = op.getQuery(), k = op.getKey(), v = op.getValue();
  Value bias = op.getBias(), sinks = op.getSinks();
  auto outType = op.getOutput().getType();
  Type elt = outType.getElementType();
  const double log2e = 1.4426950408889634, ln2 = 0.6931471805599453;
  std::optional<double> softcap;
  if (std::optional<APFloat> c = op.getSoftcap())
    softcap = c->convertToDouble();

  b.setInsertionPoint(op);
  // The factor applied to Q·Kᵀ inside tanh (softcap) or overall, log2(e)
  // folded in when there is no softcap: scale / cap, or scale · log2 e.
  // The default scale 1/sqrt(D) of a dynamic head dim is computed at run
  // time.
  double factor = softcap ? 1.0 / *softcap : log2e;
  Value scoreFactor;
  if (std::optional<double> scale = op.getEffectiveScale()) {
    scoreFactor = f32c(*scale * factor);
  } else {
    Value d = arith::IndexCastUIOp::create(b, loc, b.getI64Type(), dimOf(q, 3));
    Value df = arith::UIToFPOp::create(b, loc, f32, d);
    scoreFactor = arith::MulFOp::create(
        b, loc, math::RsqrtOp::create(b, loc, df), f32c(factor));
  }
  Value batch = dimOf(q, 0), hq = dimOf(q, hPos), hkv = dimOf(k, hPos);
  sq = dimOf(q, sPos);
  sk = dimOf(k, sPos);
  off = sub(sk, sq);
  Value group = arith::DivUIOp::create(b, loc, hq, hkv);
  Value bq = idx(options.blockQ), bkv = idx(options.blockKV);
  Value numQBlocks = ceilDiv(sq, bq);

  // Destination tensors.
  SmallVector<Value> outDyn;
  for (unsigned d = 0; d < 4; ++d)
    if (outType.isDynamicDim(d))
      outDyn.push_back(d == 3 ? dimOf(v, 3) : dimOf(q, d));
  SmallVector<Value> outputs = {
      tensor::EmptyOp::create(b, loc, outType.getShape(), elt, outDyn)};
  RankedTensorType lseType;
  if (Value lse = op.getLse()) {
    lseType = cast<RankedTensorType>(lse.getType());
    SmallVector<Value> lseDyn;
    Value sizes[3] = {batch, hq, sq};
    for (unsigned d = 0; d < 3; ++d)
      if (lseType.isDynamicDim(d))
        lseDyn.push_back(sizes[d]);
    outputs.push_back(
        tensor::EmptyOp::create(b, loc, lseType.getShape(), f32, lseDyn));
  }

  auto forall = scf::ForallOp::create(
      b, loc, ArrayRef<OpFoldResult>{batch, hq, numQBlocks}, outputs,
      std::nullopt);
  b.setInsertionPointToStart(forall.getBody());
  Value bIv = forall.getInductionVar(0), hIv = forall.getInductionVar(1);
  Value qbIv = forall.getInductionVar(2);

  // Step 0: the query tile, the KV head, the band and the initial state.
  Value q0 = mul(qbIv, bq);
  Value bm = min(bq, sub(sq, q0));
  Value kvHead = arith::DivUIOp::create(b, loc, hIv, group);
  Value qTile = sliceQKV(q, bIv, hIv, q0, bm);
  Value negInf = f32c(-INFINITY), zeroF = f32c(0.0);
  Value m0, l0;
  if (sinks) {
    Value s = tensor::ExtractOp::create(b, loc, sinks, hIv);
    if (s.getType() != f32)
      s = arith::ExtFOp::create(b, loc, f32, s);
    s = arith::MulFOp::create(b, loc, s, f32c(log2e));
    m0 = filled({bm}, {ShapedType::kDynamic}, s);
    l0 = filled({bm}, {ShapedType::kDynamic}, f32c(1.0));
  } else {
    m0 = filled({bm}, {ShapedType::kDynamic}, negInf);
    l0 = filled({bm}, {ShapedType::kDynamic}, zeroF);
  }
  int64_t dv = outType.getDimSize(3);
  Value dvSize = dimOf(v, 3);
  Value acc0 = filled({bm, dvSize}, {ShapedType::kDynamic, dv}, zeroF);

  // The band of the block's first and last rows (bands are monotone in the
  // row, so these bound the whole block).
  std::pair<Value, Value> first = band(q0);
  std::pair<Value, Value> last = band(add(q0, sub(bm, idx(1))));
  Value firstLo = first.first, firstHi = first.second;
  Value lastLo = last.first, lastHi = last.second;
  Value kbBegin = floorDiv(firstLo, bkv);
  Value kbEnd = ceilDiv(lastHi, bkv);

  AffineExpr di, dj, dk;
  bindDims(ctx, di, dj, dk);
  AffineMap id2 = AffineMap::get(2, 0, {di, dj}, ctx);
  AffineMap row2 = AffineMap::get(2, 0, {di}, ctx);
  AffineMap id1 = AffineMap::get(1, 0, {di}, ctx);

  auto loop = scf::ForOp::create(
      b, loc, kbBegin, max(kbBegin, kbEnd), idx(1), ValueRange{m0, l0, acc0},
      [&](OpBuilder &, Location, Value kb, ValueRange iter) {
        Value m = iter[0], l = iter[1], acc = iter[2];
        Value k0 = mul(kb, bkv);
        Value bn = min(bkv, sub(sk, k0));
        Value kTile = sliceQKV(k, bIv, kvHead, k0, bn);
        Value vTile = sliceQKV(v, bIv, kvHead, k0, bn);

        // Step 1: S = Q·Kᵀ.
        Value sInit = filled(
            {bm, bn}, {ShapedType::kDynamic, ShapedType::kDynamic}, zeroF);
        Value s =
            contract(qTile, kTile, sInit, AffineMap::get(3, 0, {di, dk}, ctx),
                     AffineMap::get(3, 0, {dj, dk}, ctx));

        // Step 2: scale, softcap and bias, log2(e) folded in.
        SmallVector<Value> inputs = {s};
        SmallVector<AffineMap> maps = {id2};
        if (bias) {
          auto biasType = cast<RankedTensorType>(bias.getType());
          bool bcast[4];
          for (unsigned d = 0; d < 4; ++d)
            bcast[d] = biasType.getDimSize(d) == 1;
          SmallVector<OpFoldResult> offsets = {
              bcast[0] ? b.getIndexAttr(0) : OpFoldResult(bIv),
              bcast[1] ? b.getIndexAttr(0) : OpFoldResult(hIv),
              bcast[2] ? b.getIndexAttr(0) : OpFoldResult(q0),
              bcast[3] ? b.getIndexAttr(0) : OpFoldResult(k0)};
          SmallVector<OpFoldResult> sizes = {
              b.getIndexAttr(1), b.getIndexAttr(1),
              bcast[2] ? b.getIndexAttr(1) : OpFoldResult(bm),
              bcast[3] ? b.getIndexAttr(1) : OpFoldResult(bn)};
          SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
          auto tileType =
              RankedTensorType::get({bcast[2] ? 1 : ShapedType::kDynamic,
                                     bcast[3] ? 1 : ShapedType::kDynamic},
                                    biasType.getElementType());
          inputs.push_back(tensor::ExtractSliceOp::create(
              b, loc, tileType, bias, offsets, sizes, strides));
          maps.push_back(
              AffineMap::get(2, 0,
                             {bcast[2] ? getAffineConstantExpr(0, ctx) : di,
                              bcast[3] ? getAffineConstantExpr(0, ctx) : dj},
                             ctx));
        }
        auto logits = [&](bool masked) {
          Value init = tensor::EmptyOp::create(
              b, loc,
              ArrayRef<int64_t>{ShapedType::kDynamic, ShapedType::kDynamic},
              f32, ValueRange{bm, bn});
          return elementwise(
              inputs, maps, init,
              [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                auto cst = [&](double x) -> Value {
                  return arith::ConstantOp::create(nb, nl,
                                                   nb.getF32FloatAttr(x));
                };
                Value t;
                t = arith::MulFOp::create(nb, nl, a[0], scoreFactor);
                if (softcap) {
                  t = math::TanhOp::create(nb, nl, t);
                  t = arith::MulFOp::create(nb, nl, t, cst(*softcap * log2e));
                }
                if (bias) {
                  Value bv = a[1];
                  if (bv.getType() != f32)
                    bv = arith::ExtFOp::create(nb, nl, f32, bv);
                  bv = arith::MulFOp::create(nb, nl, bv, cst(log2e));
                  t = arith::AddFOp::create(nb, nl, t, bv);
                }
                if (!masked)
                  return t;
                // Step 3: the elementwise mask of an edge block.
                Value i = arith::AddIOp::create(
                    nb, nl, q0, linalg::IndexOp::create(nb, nl, 0));
                Value j = arith::AddIOp::create(
                    nb, nl, k0, linalg::IndexOp::create(nb, nl, 1));
                Value p = arith::AddIOp::create(nb, nl, i, off);
                Value ok = buildAdmitsKey(nb, nl, mask, p, j);
                return arith::SelectOp::create(nb, nl, ok, t, cst(-INFINITY));
              });
        };
        Value logitsTile;
        if (mask.isNone()) {
          logitsTile = logits(false);
        } else {
          // Interior blocks are admitted for every row of the query block.
          Value k1 = add(k0, bn);
          Value interior = arith::AndIOp::create(
              b, loc,
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, k0,
                                    lastLo),
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, k1,
                                    firstHi));
          auto ifOp =
              scf::IfOp::create(b, loc, TypeRange{sInit.getType()}, interior,
                                /*withElseRegion=*/true);
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPointToStart(&ifOp.getThenRegion().front());
          scf::YieldOp::create(b, loc, logits(false));
          b.setInsertionPointToStart(&ifOp.getElseRegion().front());
          scf::YieldOp::create(b, loc, logits(true));
          logitsTile = ifOp.getResult(0);
        }

        // Step 4: the new running maximum, kept finite for masked rows.
        Value mNew = rowReduce(logitsTile, m, /*isMax=*/true);
        Value mEmpty = tensor::EmptyOp::create(
            b, loc, ArrayRef<int64_t>{ShapedType::kDynamic}, f32,
            ValueRange{bm});
        Value mSafe = elementwise(
            {mNew}, {id1}, mEmpty,
            [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
              Value ninf = arith::ConstantOp::create(
                  nb, nl, nb.getF32FloatAttr(-INFINITY));
              Value zero =
                  arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0));
              Value isNinf = arith::CmpFOp::create(
                  nb, nl, arith::CmpFPredicate::OEQ, a[0], ninf);
              return arith::SelectOp::create(nb, nl, isNinf, zero, a[0]);
            });
        // Step 5: P = exp2(S - ms), alpha = exp2(m - ms).
        Value pEmpty = tensor::EmptyOp::create(
            b, loc,
            ArrayRef<int64_t>{ShapedType::kDynamic, ShapedType::kDynamic}, f32,
            ValueRange{bm, bn});
        Value pTile = elementwise(
            {logitsTile, mSafe}, {id2, row2}, pEmpty,
            [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
              return math::Exp2Op::create(
                  nb, nl, arith::SubFOp::create(nb, nl, a[0], a[1]));
            });
        Value alpha = elementwise(
            {m, mSafe}, {id1, id1}, mEmpty,
            [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
              return math::Exp2Op::create(
                  nb, nl, arith::SubFOp::create(nb, nl, a[0], a[1]));
            });
        // Step 6: l' = l · alpha + rowsum P.
        Value lScaled =
            elementwise({l, alpha}, {id1, id1}, mEmpty,
                        [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                          return arith::MulFOp::create(nb, nl, a[0], a[1]);
                        });
        Value lNew = rowReduce(pTile, lScaled, /*isMax=*/false);
        // Step 7: acc' = acc · alpha + P·V.
        Value accScaled =
            elementwise({acc, alpha}, {id2, row2}, acc,
                        [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                          return arith::MulFOp::create(nb, nl, a[0], a[1]);
                        });
        Value accNew = contract(pTile, vTile, accScaled,
                                AffineMap::get(3, 0, {di, dk}, ctx),
                                AffineMap::get(3, 0, {dk, dj}, ctx));
        scf::YieldOp::create(b, loc, ValueRange{mNew, lNew, accNew});
      });

  // Step 8: normalize; rows without admissible keys give 0 and lse -inf.
  Value mFinal = loop.getResult(0), lFinal = loop.getResult(1);
  Value accFinal = loop.getResult(2);
  Value oEmpty = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{ShapedType::kDynamic, dv}, elt,
      outType.isDynamicDim(3) ? ValueRange{bm, dvSize} : ValueRange{bm});
  Value oTile = elementwise(
      {accFinal, lFinal}, {id2, row2}, oEmpty,
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0));
        Value empty = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ,
                                            a[1], zero);
        Value o = arith::DivFOp::create(nb, nl, a[0], a[1]);
        o = arith::SelectOp::create(nb, nl, empty, zero, o);
        if (elt != f32)
          o = arith::TruncFOp::create(nb, nl, elt, o);
        return o;
      });
  Value lseTile;
  if (lseType) {
    Value lseEmpty = tensor::EmptyOp::create(
        b, loc, ArrayRef<int64_t>{ShapedType::kDynamic}, f32, ValueRange{bm});
    lseTile = elementwise(
        {mFinal, lFinal}, {id1, id1}, lseEmpty,
        [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
          auto cst = [&](double x) -> Value {
            return arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(x));
          };
          Value empty = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ,
                                              a[1], cst(0.0));
          Value r = arith::AddFOp::create(nb, nl, a[0],
                                          math::Log2Op::create(nb, nl, a[1]));
          r = arith::MulFOp::create(nb, nl, r, cst(ln2));
          return arith::SelectOp::create(nb, nl, empty, cst(-INFINITY), r);
        });
  }

  // Write the tiles.
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  {
    SmallVector<OpFoldResult> offsets(4, b.getIndexAttr(0));
    SmallVector<OpFoldResult> sizes(4, b.getIndexAttr(1));
    SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
    offsets[0] = bIv;
    offsets[hPos] = hIv;
    offsets[sPos] = q0;
    sizes[sPos] = bm;
    sizes[3] = outType.isDynamicDim(3) ? OpFoldResult(dvSize)
                                       : OpFoldResult(b.getIndexAttr(dv));
    tensor::ParallelInsertSliceOp::create(
        b, loc, oTile, forall.getRegionIterArgs()[0], offsets, sizes, strides);
  }
  if (lseType) {
    SmallVector<OpFoldResult> offsets = {bIv, hIv, q0};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), b.getIndexAttr(1),
                                       bm};
    SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
    tensor::ParallelInsertSliceOp::create(b, loc, lseTile,
                                          forall.getRegionIterArgs()[1],
                                          offsets, sizes, strides);
  }
  b.replaceOp(op, forall.getResults());
  return success();
}

/// Rewrite attn.attention into FlashAttention loops.
struct TileAttention : public OpRewritePattern<AttentionOp> {
  TileAttention(MLIRContext *ctx, const AttentionTileOptions &options)
      : OpRewritePattern(ctx), options(options) {}
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    return AttentionTiler(rewriter, op, options).run();
  }
  AttentionTileOptions options;
};

struct AttnTilePass : public attn::impl::AttnTileBase<AttnTilePass> {
  using AttnTileBase::AttnTileBase;
  void runOnOperation() override {
    if (blockQ <= 0 || blockKV <= 0) {
      getOperation()->emitError("attn-tile: block sizes must be positive");
      return signalPassFailure();
    }
    // Paged attention and linear attention have no tiled lowering yet: say
    // so at the op instead of leaving it to fail later as an op that cannot
    // be bufferized.
    WalkResult paged = getOperation()->walk([](Operation *op) {
      if (!isa<PagedAttentionOp, GatedDeltaRuleOp>(op))
        return WalkResult::advance();
      op->emitOpError("is not supported by attn-tile yet (only "
                      "attn.attention is tiled)");
      return WalkResult::interrupt();
    });
    if (paged.wasInterrupted())
      return signalPassFailure();
    AttentionTileOptions options{blockQ, blockKV};
    RewritePatternSet patterns(&getContext());
    populateAttnTilePatterns(patterns, options);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

LogicalResult mlir::attn::tileAttention(RewriterBase &rewriter, AttentionOp op,
                                        const AttentionTileOptions &options) {
  return AttentionTiler(rewriter, op, options).run();
}

void mlir::attn::populateAttnTilePatterns(RewritePatternSet &patterns,
                                          const AttentionTileOptions &options) {
  patterns.add<TileAttention>(patterns.getContext(), options);
}
