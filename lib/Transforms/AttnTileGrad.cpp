//===- AttnTileGrad.cpp - attn.attention_grad to FlashAttention loops -----===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The FlashAttention-2 backward pass, as generated for attn.attention_grad.
// The logits come from TileBuilder::buildLogits, the forward's own code, so
// P is recomputed from the LSE exactly as the forward normalized it.
//
//   0. Pre-pass over every row: Delta[b, h, i] = rowsum(dO ⊙ O) in f32.
//      Per query tile: lse2 = lse · log2 e, 0 where lse = -inf (a row with
//      no mass has only -inf logits, so P = exp2(-inf) = 0 there).
//   For one (query block, key block) tile of query head h, KV head g:
//   1. S = Q·Kᵀ; t = logits(S) in log2 units, -inf outside the band.
//   2. P = exp2(t - lse2).
//   3. dP = dO·Vᵀ.
//   4. dS = P ⊙ (dP - Delta) · scale, times 1 - tanh²(S · scale / cap)
//      under softcap: the gradient with respect to Q·Kᵀ.
//   dQ pass: scf.forall over (b, h, query block); over the key blocks of
//   the block's band (as the forward):
//   5. dQ += dS·K.
//   dK/dV pass: scf.forall over (b, g, key block); over the query heads of
//   g's group and the query blocks whose rows admit a key of the block:
//   6. dV += Pᵀ·dO; dK += dSᵀ·Q (dK and dV summed over the group).
//   Sinks: dsinks[h] = -Σ_{b,i} exp(sink[h] - lse[b, h, i]) · Delta[b, h, i].
//
// dQ has a pass of its own (recomputing P and dS) instead of FlashAttention-
// 2's atomic accumulation into dQ: each loop nest writes disjoint tiles, so
// the result is deterministic and stays a parallel scf.forall on tensors.
// A pass whose results are unused is not built.
//
//===----------------------------------------------------------------------===//

#include "attn/IR/AttnOps.h"
#include "attn/IR/MaskUtils.h"
#include "attn/Transforms/Transforms.h"

#include "TileBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;

namespace {

using utils::IteratorType;

constexpr double kLog2e = 1.4426950408889634;

/// Builds the backward loops for one attn.attention_grad.
class AttentionGradTiler : public tiling::TileBuilder {
public:
  AttentionGradTiler(RewriterBase &b, AttentionGradOp op,
                     const AttentionTileOptions &options)
      : TileBuilder(b, op.getLoc(), op.getLayout(), op.getMaskOrNone()), op(op),
        options(options) {}

  LogicalResult run();

private:
  /// The query rows [q0, q0 + bm) of (batch, head) and what every key block
  /// reads of them.
  struct QueryTile {
    Value batch, head, q0, bm;
    Value q, dO, lse2, delta;
    /// Bounds of the rows' bands (see TileBuilder::buildLogits).
    Value firstLo, firstHi, lastLo, lastHi;
  };
  /// The keys [k0, k0 + bn) of (batch, KV head).
  struct KeyTile {
    Value k0, bn, k, v;
  };

  void setUp();
  /// Step 0's pre-pass: Delta [B, Hq, Sq] in f32.
  Value buildDelta();
  QueryTile loadQueryTile(Value batch, Value head, Value qBlock);
  KeyTile loadKeyTile(Value batch, Value kvHead, Value kBlock);
  /// Steps 1-4: P and dS of one tile.
  std::pair<Value, Value> buildTileGradients(const QueryTile &qt,
                                             const KeyTile &kt);
  /// The dQ pass (step 5).
  Value buildGradQuery();
  /// The dK/dV pass (step 6).
  std::pair<Value, Value> buildGradKeyValue();
  /// One query block's contribution to the key block's dK and dV.
  std::pair<Value, Value> accumulateKeyValue(Value batch, Value head,
                                             Value qBlock, const KeyTile &kt,
                                             Value dk, Value dv);
  /// The sink gradient [Hq] (in the sinks' element type).
  Value buildGradSinks();
  /// tensor.empty of `type`, its dynamic sizes read from `like`.
  Value emptyLike(RankedTensorType type, Value like);

  AttentionGradOp op;
  const AttentionTileOptions &options;

  tiling::ScoreTransform scores;
  /// The effective scale, for the chain rule through `S · scale`.
  Value scale;
  Value batch, hq, hkv, group, bq, bkv, zeroF, delta;
};

void AttentionGradTiler::setUp() {
  unsigned hPos = getHeadDimPos(layout);
  Value q = op.getQuery(), k = op.getKey();
  std::optional<double> softcap;
  if (std::optional<APFloat> c = op.getSoftcap())
    softcap = c->convertToDouble();
  std::optional<double> effective = op.getEffectiveScale();
  scores = buildScoreTransform(effective, softcap, q, op.getBias());
  if (effective) {
    scale = f32c(*effective);
  } else {
    Value d = arith::IndexCastUIOp::create(b, loc, b.getI64Type(), dimOf(q, 3));
    scale =
        math::RsqrtOp::create(b, loc, arith::UIToFPOp::create(b, loc, f32, d));
  }
  batch = dimOf(q, 0);
  hq = dimOf(q, hPos);
  hkv = dimOf(k, hPos);
  setSequenceLengths(q, k);
  group = arith::DivUIOp::create(b, loc, hq, hkv);
  bq = idx(options.blockQ);
  bkv = idx(options.blockKV);
  zeroF = f32c(0.0);
}

Value AttentionGradTiler::emptyLike(RankedTensorType type, Value like) {
  SmallVector<Value> dyn;
  for (unsigned d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      dyn.push_back(dimOf(like, d));
  return tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType(),
                                 dyn);
}

Value AttentionGradTiler::buildDelta() {
  MLIRContext *ctx = b.getContext();
  Value o = op.getOutput(), dO = op.getGradOutput();
  // Iterate over O's own dims; the result is [B, H, S] whatever the layout.
  AffineExpr d0, d1, d2, d3;
  bindDims(ctx, d0, d1, d2, d3);
  AffineExpr dims[4] = {d0, d1, d2, d3};
  unsigned hPos = getHeadDimPos(layout), sPos = getSeqDimPos(layout);
  AffineMap in = AffineMap::getMultiDimIdentityMap(4, ctx);
  AffineMap out = AffineMap::get(4, 0, {d0, dims[hPos], dims[sPos]}, ctx);
  Value init =
      filled({batch, hq, sq},
             {ShapedType::kDynamic, ShapedType::kDynamic, ShapedType::kDynamic},
             zeroF);
  auto generic = linalg::GenericOp::create(
      b, loc, init.getType(), ValueRange{dO, o}, init, {in, in, out},
      {IteratorType::parallel, IteratorType::parallel, IteratorType::parallel,
       IteratorType::reduction},
      [&](OpBuilder &nb, Location nl, ValueRange a) {
        auto toF32 = [&](Value v) -> Value {
          return v.getType() == f32 ? v : arith::ExtFOp::create(nb, nl, f32, v);
        };
        Value p = arith::MulFOp::create(nb, nl, toF32(a[0]), toF32(a[1]));
        linalg::YieldOp::create(
            nb, nl, arith::AddFOp::create(nb, nl, a[2], p).getResult());
      });
  return generic.getResult(0);
}

AttentionGradTiler::QueryTile
AttentionGradTiler::loadQueryTile(Value batchIv, Value head, Value qBlock) {
  QueryTile qt;
  qt.batch = batchIv;
  qt.head = head;
  qt.q0 = mul(qBlock, bq);
  qt.bm = min(bq, sub(sq, qt.q0));
  qt.q = sliceQKV(op.getQuery(), batchIv, head, qt.q0, qt.bm);
  qt.dO = sliceQKV(op.getGradOutput(), batchIv, head, qt.q0, qt.bm);
  qt.delta = sliceRows(delta, batchIv, head, qt.q0, qt.bm);
  Value lse = sliceRows(op.getLse(), batchIv, head, qt.q0, qt.bm);
  MLIRContext *ctx = b.getContext();
  AffineMap id1 = AffineMap::getMultiDimIdentityMap(1, ctx);
  qt.lse2 = elementwise(
      {lse}, {id1}, emptyF32({qt.bm}),
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        auto cst = [&](double x) -> Value {
          return arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(x));
        };
        Value empty = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ,
                                            a[0], cst(-INFINITY));
        Value l2 = arith::MulFOp::create(nb, nl, a[0], cst(kLog2e));
        return arith::SelectOp::create(nb, nl, empty, cst(0.0), l2);
      });
  std::tie(qt.firstLo, qt.firstHi) = band(qt.q0);
  std::tie(qt.lastLo, qt.lastHi) = band(add(qt.q0, sub(qt.bm, idx(1))));
  return qt;
}

AttentionGradTiler::KeyTile
AttentionGradTiler::loadKeyTile(Value batchIv, Value kvHead, Value kBlock) {
  KeyTile kt;
  kt.k0 = mul(kBlock, bkv);
  kt.bn = min(bkv, sub(sk, kt.k0));
  kt.k = sliceQKV(op.getKey(), batchIv, kvHead, kt.k0, kt.bn);
  kt.v = sliceQKV(op.getValue(), batchIv, kvHead, kt.k0, kt.bn);
  return kt;
}

std::pair<Value, Value>
AttentionGradTiler::buildTileGradients(const QueryTile &qt, const KeyTile &kt) {
  AffineMap id2 = mapId2(), row2 = mapRow2();
  auto tileInit = [&] {
    return filled({qt.bm, kt.bn}, {ShapedType::kDynamic, ShapedType::kDynamic},
                  zeroF);
  };
  // Step 1: S = Q·Kᵀ and its logits.
  auto [lhsT, rhsT] = mapsABt();
  Value s = contract(qt.q, kt.k, tileInit(), lhsT, rhsT);
  Value t = buildLogits(scores, s, qt.batch, qt.head, qt.q0, qt.bm, kt.k0,
                        kt.bn, qt.lastLo, qt.firstHi);
  // Step 2: P = exp2(t - lse2).
  Value p =
      elementwise({t, qt.lse2}, {id2, row2}, emptyF32({qt.bm, kt.bn}),
                  [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                    return math::Exp2Op::create(
                        nb, nl, arith::SubFOp::create(nb, nl, a[0], a[1]));
                  });
  // Step 3: dP = dO·Vᵀ.
  Value dp = contract(qt.dO, kt.v, tileInit(), lhsT, rhsT);
  // Step 4: dS = P ⊙ (dP - Delta) · scale (· (1 - tanh²) under softcap).
  Value ds = elementwise(
      {p, dp, qt.delta, s}, {id2, id2, row2, id2}, emptyF32({qt.bm, kt.bn}),
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        Value g = arith::MulFOp::create(
            nb, nl, a[0], arith::SubFOp::create(nb, nl, a[1], a[2]));
        g = arith::MulFOp::create(nb, nl, g, scale);
        if (!scores.softcap)
          return g;
        Value th = math::TanhOp::create(
            nb, nl, arith::MulFOp::create(nb, nl, a[3], scores.factor));
        Value one = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(1.0));
        Value d = arith::SubFOp::create(nb, nl, one,
                                        arith::MulFOp::create(nb, nl, th, th));
        return arith::MulFOp::create(nb, nl, g, d);
      });
  return {p, ds};
}

Value AttentionGradTiler::buildGradQuery() {
  Value q = op.getQuery();
  auto dqType = op.getGradQuery().getType();
  auto forall = scf::ForallOp::create(
      b, loc, ArrayRef<OpFoldResult>{batch, hq, ceilDiv(sq, bq)},
      ValueRange{emptyLike(dqType, q)}, std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forall.getBody());
  Value batchIv = forall.getInductionVar(0), head = forall.getInductionVar(1);
  QueryTile qt = loadQueryTile(batchIv, head, forall.getInductionVar(2));
  Value kvHead = arith::DivUIOp::create(b, loc, head, group);
  Value dSize = dimOf(q, 3);
  int64_t d = dqType.getDimSize(3);
  Value acc0 = filled({qt.bm, dSize}, {ShapedType::kDynamic, d}, zeroF);
  // The key blocks intersecting the band of the block's rows.
  Value kbBegin = floorDiv(qt.firstLo, bkv);
  Value kbEnd = max(kbBegin, ceilDiv(qt.lastHi, bkv));
  auto loop = scf::ForOp::create(
      b, loc, kbBegin, kbEnd, idx(1), ValueRange{acc0},
      [&](OpBuilder &, Location, Value kb, ValueRange iter) {
        KeyTile kt = loadKeyTile(batchIv, kvHead, kb);
        Value ds = buildTileGradients(qt, kt).second;
        // Step 5: dQ += dS·K.
        auto [lhs, rhs] = mapsAB();
        scf::YieldOp::create(b, loc, contract(ds, kt.k, iter[0], lhs, rhs));
      });
  Value tile =
      truncTile(loop.getResult(0), dqType.getElementType(), qt.bm, dSize, d);
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  insertTile(tile, forall.getRegionIterArgs()[0], batchIv, head, qt.q0, qt.bm,
             dqType, dSize);
  return forall.getResult(0);
}

std::pair<Value, Value>
AttentionGradTiler::accumulateKeyValue(Value batchIv, Value head, Value qBlock,
                                       const KeyTile &kt, Value dk, Value dv) {
  QueryTile qt = loadQueryTile(batchIv, head, qBlock);
  auto [p, ds] = buildTileGradients(qt, kt);
  // Step 6: dV += Pᵀ·dO; dK += dSᵀ·Q.
  auto [lhs, rhs] = mapsAtB();
  Value dvNew = contract(p, qt.dO, dv, lhs, rhs);
  Value dkNew = contract(ds, qt.q, dk, lhs, rhs);
  return {dkNew, dvNew};
}

std::pair<Value, Value> AttentionGradTiler::buildGradKeyValue() {
  Value k = op.getKey(), v = op.getValue();
  auto dkType = op.getGradKey().getType(), dvType = op.getGradValue().getType();
  auto forall = scf::ForallOp::create(
      b, loc, ArrayRef<OpFoldResult>{batch, hkv, ceilDiv(sk, bkv)},
      ValueRange{emptyLike(dkType, k), emptyLike(dvType, v)}, std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forall.getBody());
  Value batchIv = forall.getInductionVar(0), kvHead = forall.getInductionVar(1);
  KeyTile kt = loadKeyTile(batchIv, kvHead, forall.getInductionVar(2));
  Value dSize = dimOf(k, 3), dvSize = dimOf(v, 3);
  int64_t d = dkType.getDimSize(3), dv = dvType.getDimSize(3);
  Value dk0 = filled({kt.bn, dSize}, {ShapedType::kDynamic, d}, zeroF);
  Value dv0 = filled({kt.bn, dvSize}, {ShapedType::kDynamic, dv}, zeroF);
  // The query blocks whose rows admit a key of [k0, k0 + bn): positions
  // p = row + off, so rows [lo - off, hi - off).
  auto [posLo, posHi] = buildAdmittingPositions(
      b, loc, mask, kt.k0, add(kt.k0, kt.bn), off, add(sq, off));
  Value qbBegin = floorDiv(sub(posLo, off), bq);
  Value qbEnd = max(qbBegin, ceilDiv(sub(posHi, off), bq));
  Value hBegin = mul(kvHead, group);
  auto heads = scf::ForOp::create(
      b, loc, hBegin, add(hBegin, group), idx(1), ValueRange{dk0, dv0},
      [&](OpBuilder &, Location, Value head, ValueRange hIter) {
        auto blocks = scf::ForOp::create(
            b, loc, qbBegin, qbEnd, idx(1), hIter,
            [&](OpBuilder &, Location, Value qb, ValueRange iter) {
              auto [dk, dvAcc] =
                  accumulateKeyValue(batchIv, head, qb, kt, iter[0], iter[1]);
              scf::YieldOp::create(b, loc, ValueRange{dk, dvAcc});
            });
        scf::YieldOp::create(b, loc, blocks.getResults());
      });
  Value dkTile =
      truncTile(heads.getResult(0), dkType.getElementType(), kt.bn, dSize, d);
  Value dvTile =
      truncTile(heads.getResult(1), dvType.getElementType(), kt.bn, dvSize, dv);
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  insertTile(dkTile, forall.getRegionIterArgs()[0], batchIv, kvHead, kt.k0,
             kt.bn, dkType, dSize);
  insertTile(dvTile, forall.getRegionIterArgs()[1], batchIv, kvHead, kt.k0,
             kt.bn, dvType, dvSize);
  return {forall.getResult(0), forall.getResult(1)};
}

Value AttentionGradTiler::buildGradSinks() {
  MLIRContext *ctx = b.getContext();
  Value sinks = op.getSinks();
  auto type = cast<RankedTensorType>(sinks.getType());
  AffineExpr h, bb, i;
  bindDims(ctx, h, bb, i);
  Value init = filled({hq}, {type.getDimSize(0)}, zeroF);
  auto generic = linalg::GenericOp::create(
      b, loc, init.getType(), ValueRange{sinks, op.getLse(), delta}, init,
      {AffineMap::get(3, 0, {h}, ctx), AffineMap::get(3, 0, {bb, h, i}, ctx),
       AffineMap::get(3, 0, {bb, h, i}, ctx), AffineMap::get(3, 0, {h}, ctx)},
      {IteratorType::parallel, IteratorType::reduction,
       IteratorType::reduction},
      [&](OpBuilder &nb, Location nl, ValueRange a) {
        auto cst = [&](double x) -> Value {
          return arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(x));
        };
        Value s = a[0].getType() == f32
                      ? a[0]
                      : arith::ExtFOp::create(nb, nl, f32, a[0]).getResult();
        // The sink's probability; a row without mass (lse = -inf, only
        // possible with a -inf sink) contributes nothing.
        Value empty = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ,
                                            a[1], cst(-INFINITY));
        Value ps =
            math::ExpOp::create(nb, nl, arith::SubFOp::create(nb, nl, s, a[1]));
        ps = arith::SelectOp::create(nb, nl, empty, cst(0.0), ps);
        Value g = arith::MulFOp::create(nb, nl, ps, a[2]);
        linalg::YieldOp::create(
            nb, nl, arith::SubFOp::create(nb, nl, a[3], g).getResult());
      });
  Value grad = generic.getResult(0);
  if (type.getElementType() == f32)
    return grad;
  Value empty = emptyLike(type, sinks);
  return elementwise({grad}, {AffineMap::getMultiDimIdentityMap(1, ctx)}, empty,
                     [&](OpBuilder &nb, Location nl, ValueRange a) {
                       return arith::TruncFOp::create(
                                  nb, nl, type.getElementType(), a[0])
                           .getResult();
                     });
}

LogicalResult AttentionGradTiler::run() {
  b.setInsertionPoint(op);
  setUp();
  delta = buildDelta();
  SmallVector<Value> results(op->getNumResults());
  // Results nobody reads are not computed; any value of their type stands
  // in for them.
  if (!op.getGradQuery().use_empty())
    results[0] = buildGradQuery();
  if (!op.getGradKey().use_empty() || !op.getGradValue().use_empty())
    std::tie(results[1], results[2]) = buildGradKeyValue();
  if (op.getSinks())
    results[3] = buildGradSinks();
  for (auto [i, r] : llvm::enumerate(results))
    if (!r)
      r = emptyLike(cast<RankedTensorType>(op->getResult(i).getType()),
                    i == 0 ? op.getQuery()
                           : (i == 1 ? op.getKey() : op.getValue()));
  b.replaceOp(op, results);
  return success();
}

} // namespace

LogicalResult
mlir::attn::tileAttentionGrad(RewriterBase &rewriter, AttentionGradOp op,
                              const AttentionTileOptions &options) {
  return AttentionGradTiler(rewriter, op, options).run();
}
