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
// FP8 (f8E4M3FN Q, K, V with descales dq, dk, dv of (b, g)), as
// FlashAttention-3's FP8 forward:
//   0. scale · dq · dk is the factor of Q·Kᵀ (per query block: the descales
//      may be per KV head); with sinks, l = 2^8.
//   1. Q and K are widened to f32 element by element (exact).
//   5. P = exp2(S - ms + 8): the exponent offset puts P in [0, 256] instead
//      of [0, 1], where e4m3 has more precision (no subnormals above 2^-6).
//   6. l sums P before rounding.
//   7. acc' = acc · alpha + e4m3(P)·V: P rounded to e4m3 (to nearest
//      even), as the FP8 tensor-core product takes it.
//   8. O = dv · acc / l; lse = (m + log2 l - 8) · ln 2.
//
//===----------------------------------------------------------------------===//

#include "attn/IR/AttnOps.h"
#include "attn/IR/MaskUtils.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"

#include "TileBuilder.h"

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

/// Builds the loops for one attention op.
class AttentionTiler : public tiling::TileBuilder {
public:
  AttentionTiler(RewriterBase &b, AttentionOp op,
                 const AttentionTileOptions &options)
      : TileBuilder(b, op.getLoc(), op.getLayout(), op.getMaskOrNone()), op(op),
        options(options) {}

  LogicalResult run();

private:
  /// One query block of the scf.forall: where it is and what its key loop
  /// reads without changing.
  struct QueryBlock {
    Value batch, head, q0, bm, kvHead, qTile;
    /// The score transform, with FP8's dq · dk in its factor.
    tiling::ScoreTransform scores;
    /// FP8's dv (null otherwise).
    Value vDescale;
    /// The bands of the block's first and last rows (bands are monotone in
    /// the row, so these bound the whole block).
    Value firstLo, firstHi, lastLo, lastHi;
  };
  /// The running state of steps 4-7: row maximum, row sum, accumulator.
  struct RowState {
    Value m, l, acc;
  };

  /// The sizes, the score transform and the tile counts.
  void setUp();
  /// The tensor.empty destinations of O (and the LSE).
  SmallVector<Value> createDestinations();
  /// Step 0: the query tile, the KV head, the band and the initial state.
  RowState buildQueryBlock(scf::ForallOp forall, QueryBlock &qb);
  /// FP8's descale `i` (0: Q, 1: K, 2: V) of the block's (batch, KV head).
  Value loadDescale(const QueryBlock &qb, unsigned i);
  /// Step 7 for FP8: P rounded to e4m3, as the [bm, bn] P·V operand.
  Value quantizeP(Value pTile, Value bm, Value bn);
  /// Steps 1-7 for key block `kb`.
  RowState buildKeyBlock(const QueryBlock &qb, Value kb, const RowState &st);
  /// Step 8: O and the LSE of the block.
  std::pair<Value, Value> normalize(const QueryBlock &qb, const RowState &st);
  /// Writes the block's O (and LSE) tiles into the forall's outputs.
  void writeTiles(scf::ForallOp forall, const QueryBlock &qb, Value oTile,
                  Value lseTile);

  AttentionOp op;
  const AttentionTileOptions &options;

  tiling::ScoreTransform scores;
  RankedTensorType outType, lseType;
  Type elt;
  Value batch, hq, group, bq, bkv, numQBlocks, zeroF, dvSize;
  /// FP8: P = exp2(S - ms + kFp8POffset) (0 otherwise).
  double pOffset = 0;
};

/// FlashAttention-3's exponent offset of FP8's P (its `Max_offset`): P lies
/// in [0, 2^8].
constexpr double kFp8POffset = 8.0;

void AttentionTiler::setUp() {
  unsigned hPos = getHeadDimPos(layout);
  Value q = op.getQuery(), k = op.getKey();
  outType = op.getOutput().getType();
  elt = outType.getElementType();
  std::optional<double> softcap;
  if (std::optional<APFloat> c = op.getSoftcap())
    softcap = c->convertToDouble();
  scores =
      buildScoreTransform(op.getEffectiveScale(), softcap, q, op.getBias());
  batch = dimOf(q, 0);
  hq = dimOf(q, hPos);
  Value hkv = dimOf(k, hPos);
  setSequenceLengths(q, k, op.getPositionOffset());
  group = arith::DivUIOp::create(b, loc, hq, hkv);
  bq = idx(options.blockQ);
  bkv = idx(options.blockKV);
  numQBlocks = ceilDiv(sq, bq);
  if (op.isFp8())
    pOffset = kFp8POffset;
}

Value AttentionTiler::loadDescale(const QueryBlock &qb, unsigned i) {
  Value d = op.getDescaleAt(i);
  SmallVector<Value> at;
  if (cast<RankedTensorType>(d.getType()).getRank() == 2)
    at = {qb.batch, qb.kvHead};
  return tensor::ExtractOp::create(b, loc, d, at);
}

Value AttentionTiler::quantizeP(Value pTile, Value bm, Value bn) {
  Type f8 = Float8E4M3FNType::get(b.getContext());
  Value empty = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{ShapedType::kDynamic, ShapedType::kDynamic}, f8,
      ValueRange{bm, bn});
  return elementwise({pTile}, {mapId2()}, empty,
                     [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                       return arith::TruncFOp::create(nb, nl, f8, a[0]);
                     });
}

SmallVector<Value> AttentionTiler::createDestinations() {
  Value q = op.getQuery(), v = op.getValue();
  SmallVector<Value> outDyn;
  for (unsigned d = 0; d < 4; ++d)
    if (outType.isDynamicDim(d))
      outDyn.push_back(d == 3 ? dimOf(v, 3) : dimOf(q, d));
  SmallVector<Value> outputs = {
      tensor::EmptyOp::create(b, loc, outType.getShape(), elt, outDyn)};
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
  return outputs;
}

AttentionTiler::RowState AttentionTiler::buildQueryBlock(scf::ForallOp forall,
                                                         QueryBlock &qb) {
  qb.batch = forall.getInductionVar(0);
  qb.head = forall.getInductionVar(1);
  Value qbIv = forall.getInductionVar(2);
  qb.q0 = mul(qbIv, bq);
  qb.bm = min(bq, sub(sq, qb.q0));
  qb.kvHead = arith::DivUIOp::create(b, loc, qb.head, group);
  qb.qTile = sliceQKV(op.getQuery(), qb.batch, qb.head, qb.q0, qb.bm);
  qb.scores = scores;
  if (op.isFp8()) {
    // FP8 step 0: dq · dk joins the factor of Q·Kᵀ (inside tanh too).
    Value qk =
        arith::MulFOp::create(b, loc, loadDescale(qb, 0), loadDescale(qb, 1));
    qb.scores.factor = arith::MulFOp::create(b, loc, scores.factor, qk);
    qb.vDescale = loadDescale(qb, 2);
  }
  Value negInf = f32c(-INFINITY);
  zeroF = f32c(0.0);
  RowState st;
  if (Value sinks = op.getSinks()) {
    // The sink is a key with logit `sink` and value 0.
    Value s = tensor::ExtractOp::create(b, loc, sinks, qb.head);
    if (s.getType() != f32)
      s = arith::ExtFOp::create(b, loc, f32, s);
    s = arith::MulFOp::create(b, loc, s, f32c(1.4426950408889634));
    st.m = filled({qb.bm}, {ShapedType::kDynamic}, s);
    st.l = filled({qb.bm}, {ShapedType::kDynamic}, f32c(std::exp2(pOffset)));
  } else {
    st.m = filled({qb.bm}, {ShapedType::kDynamic}, negInf);
    st.l = filled({qb.bm}, {ShapedType::kDynamic}, zeroF);
  }
  int64_t dv = outType.getDimSize(3);
  dvSize = dimOf(op.getValue(), 3);
  st.acc = filled({qb.bm, dvSize}, {ShapedType::kDynamic, dv}, zeroF);
  std::pair<Value, Value> first = band(qb.q0);
  std::pair<Value, Value> last = band(add(qb.q0, sub(qb.bm, idx(1))));
  std::tie(qb.firstLo, qb.firstHi) = first;
  std::tie(qb.lastLo, qb.lastHi) = last;
  return st;
}

AttentionTiler::RowState AttentionTiler::buildKeyBlock(const QueryBlock &qb,
                                                       Value kb,
                                                       const RowState &st) {
  AffineMap id2 = mapId2(), row2 = mapRow2(), id1 = mapId1();
  Value k0 = mul(kb, bkv);
  Value bn = min(bkv, sub(sk, k0));
  Value kTile = sliceQKV(op.getKey(), qb.batch, qb.kvHead, k0, bn);
  Value vTile = sliceQKV(op.getValue(), qb.batch, qb.kvHead, k0, bn);

  // Step 1: S = Q·Kᵀ.
  Value sInit =
      filled({qb.bm, bn}, {ShapedType::kDynamic, ShapedType::kDynamic}, zeroF);
  auto [qMap, kMap] = mapsABt();
  Value s = contract(qb.qTile, kTile, sInit, qMap, kMap);

  // Steps 2-3: scale, softcap and bias, log2(e) folded in; -inf outside
  // the band on edge blocks.
  Value logitsTile = buildLogits(qb.scores, s, qb.batch, qb.head, qb.q0, qb.bm,
                                 k0, bn, qb.lastLo, qb.firstHi);

  // Step 4: the new running maximum, kept finite for masked rows.
  Value mNew = rowReduce(logitsTile, st.m, /*isMax=*/true);
  Value mEmpty = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{ShapedType::kDynamic}, f32, ValueRange{qb.bm});
  Value mSafe = elementwise(
      {mNew}, {id1}, mEmpty,
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        Value ninf =
            arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(-INFINITY));
        Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0));
        Value isNinf = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ,
                                             a[0], ninf);
        return arith::SelectOp::create(nb, nl, isNinf, zero, a[0]);
      });
  // Step 5: P = exp2(S - ms) (FP8: exp2(S - ms + 8)), alpha = exp2(m - ms).
  auto exp2Diff = [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
    return math::Exp2Op::create(nb, nl,
                                arith::SubFOp::create(nb, nl, a[0], a[1]));
  };
  Value pEmpty = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{ShapedType::kDynamic, ShapedType::kDynamic},
      f32, ValueRange{qb.bm, bn});
  Value pTile = elementwise(
      {logitsTile, mSafe}, {id2, row2}, pEmpty,
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        Value x = arith::SubFOp::create(nb, nl, a[0], a[1]);
        if (pOffset != 0)
          x = arith::AddFOp::create(
              nb, nl, x,
              arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(pOffset)));
        return math::Exp2Op::create(nb, nl, x);
      });
  Value alpha = elementwise({st.m, mSafe}, {id1, id1}, mEmpty, exp2Diff);
  auto times = [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
    return arith::MulFOp::create(nb, nl, a[0], a[1]);
  };
  // Step 6: l' = l · alpha + rowsum P.
  Value lScaled = elementwise({st.l, alpha}, {id1, id1}, mEmpty, times);
  Value lNew = rowReduce(pTile, lScaled, /*isMax=*/false);
  // Step 7: acc' = acc · alpha + P·V (FP8: e4m3(P)·V).
  Value accScaled = elementwise({st.acc, alpha}, {id2, row2}, st.acc, times);
  auto [pMap, vMap] = mapsAB();
  Value pOperand = qb.vDescale ? quantizeP(pTile, qb.bm, bn) : pTile;
  Value accNew = contract(pOperand, vTile, accScaled, pMap, vMap);
  return {mNew, lNew, accNew};
}

std::pair<Value, Value> AttentionTiler::normalize(const QueryBlock &qb,
                                                  const RowState &st) {
  AffineMap id2 = mapId2(), row2 = mapRow2(), id1 = mapId1();
  Value bm = qb.bm;
  int64_t dv = outType.getDimSize(3);
  Value oEmpty = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{ShapedType::kDynamic, dv}, elt,
      outType.isDynamicDim(3) ? ValueRange{bm, dvSize} : ValueRange{bm});
  Value oTile = elementwise(
      {st.acc, st.l}, {id2, row2}, oEmpty,
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0.0));
        Value empty = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ,
                                            a[1], zero);
        Value o = arith::DivFOp::create(nb, nl, a[0], a[1]);
        if (qb.vDescale)
          o = arith::MulFOp::create(nb, nl, o, qb.vDescale);
        o = arith::SelectOp::create(nb, nl, empty, zero, o);
        if (elt != f32)
          o = arith::TruncFOp::create(nb, nl, elt, o);
        return o;
      });
  if (!lseType)
    return {oTile, Value()};
  Value lseEmpty = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{ShapedType::kDynamic}, f32, ValueRange{bm});
  Value lseTile = elementwise(
      {st.m, st.l}, {id1, id1}, lseEmpty,
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        auto cst = [&](double x) -> Value {
          return arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(x));
        };
        Value empty = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ,
                                            a[1], cst(0.0));
        Value r = arith::AddFOp::create(nb, nl, a[0],
                                        math::Log2Op::create(nb, nl, a[1]));
        if (pOffset != 0)
          r = arith::SubFOp::create(nb, nl, r, cst(pOffset));
        r = arith::MulFOp::create(nb, nl, r, cst(0.6931471805599453));
        return arith::SelectOp::create(nb, nl, empty, cst(-INFINITY), r);
      });
  return {oTile, lseTile};
}

void AttentionTiler::writeTiles(scf::ForallOp forall, const QueryBlock &qb,
                                Value oTile, Value lseTile) {
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  insertTile(oTile, forall.getRegionIterArgs()[0], qb.batch, qb.head, qb.q0,
             qb.bm, outType, dvSize);
  if (!lseTile)
    return;
  SmallVector<OpFoldResult> offsets = {qb.batch, qb.head, qb.q0};
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), b.getIndexAttr(1),
                                     qb.bm};
  SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
  tensor::ParallelInsertSliceOp::create(
      b, loc, lseTile, forall.getRegionIterArgs()[1], offsets, sizes, strides);
}

LogicalResult AttentionTiler::run() {
  b.setInsertionPoint(op);
  setUp();
  auto forall = scf::ForallOp::create(
      b, loc, ArrayRef<OpFoldResult>{batch, hq, numQBlocks},
      createDestinations(), std::nullopt);
  b.setInsertionPointToStart(forall.getBody());
  QueryBlock qb;
  RowState init = buildQueryBlock(forall, qb);
  // The key blocks intersecting the band of the block's rows.
  Value kbBegin = floorDiv(qb.firstLo, bkv);
  Value kbEnd = ceilDiv(qb.lastHi, bkv);
  auto loop = scf::ForOp::create(
      b, loc, kbBegin, max(kbBegin, kbEnd), idx(1),
      ValueRange{init.m, init.l, init.acc},
      [&](OpBuilder &, Location, Value kb, ValueRange iter) {
        RowState st = buildKeyBlock(qb, kb, {iter[0], iter[1], iter[2]});
        scf::YieldOp::create(b, loc, ValueRange{st.m, st.l, st.acc});
      });
  RowState final{loop.getResult(0), loop.getResult(1), loop.getResult(2)};
  auto [oTile, lseTile] = normalize(qb, final);
  writeTiles(forall, qb, oTile, lseTile);
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

/// Rewrite attn.attention_grad into FlashAttention-2's backward loops.
struct TileAttentionGrad : public OpRewritePattern<AttentionGradOp> {
  TileAttentionGrad(MLIRContext *ctx, const AttentionTileOptions &options)
      : OpRewritePattern(ctx), options(options) {}
  LogicalResult matchAndRewrite(AttentionGradOp op,
                                PatternRewriter &rewriter) const override {
    return tileAttentionGrad(rewriter, op, options);
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
                      "attn.attention and attn.attention_grad are tiled)");
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
  patterns.add<TileAttention, TileAttentionGrad>(patterns.getContext(),
                                                 options);
}
