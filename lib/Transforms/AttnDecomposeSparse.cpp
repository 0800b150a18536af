//===- AttnDecomposeSparse.cpp - sparse attention to dense + bias ---------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The reference lowerings of the sparse attention ops, which the CPU
// pipeline runs:
//
// * attn.sparse_attention becomes attn.attention over all keys with an
//   additive f32 bias that is 0 at the keys a row's index list selects and
//   -inf elsewhere (the mask, scale, softcap, sinks and LSE carry over):
//
//     bias[b, h, i, n * bs + r] = 0   for n in indices[b, i, h / G, :],
//                                      0 <= n < ceil(Sk / bs), 0 <= r < bs,
//                                      n * bs + r < Sk
//
//   The bias is written by loops over the index lists (B·Sq·Hq·N·bs
//   stores), so a negative or out-of-range index is skipped without being
//   read further; a row with nothing selected gets attn.attention's empty
//   row (zeros, LSE -inf or the sink alone).
// * attn.lightning_indexer becomes linalg generics for the scores (f32:
//   Σ_h w·relu(q_h · k), -inf where the mask does not admit the key) and,
//   per row, top_k passes of an argmax over the remaining scores (strictly
//   greater, scanning keys upwards: ties go to the lower index; a taken
//   score becomes NaN, which never compares greater; -1 once no admitted
//   key is left).
// * attn.nsa becomes its branches: compressed attention (attn.attention with
//   a visibility bias, and its LSE), the compressed probabilities recomputed
//   from that LSE, block scores summed over the GQA group and the compressed
//   tokens overlapping each selection block, the always-selected blocks,
//   the top num_selected per (token, KV head) through the same top-k,
//   attn.sparse_attention over them, a windowed attn.attention, and the
//   gated sum.
//
// All materialize dense [.., Sq, Sk] tensors: reference semantics for any
// backend, not fast kernels.
//
//===----------------------------------------------------------------------===//

#include "attn/IR/AttnOps.h"
#include "attn/IR/MaskUtils.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"

#include "RewriteUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNDECOMPOSESPARSE
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

namespace {
/// Dimension `i` of `v`: an index attribute when static.
OpFoldResult dimOf(OpBuilder &b, Location loc, Value v, int64_t i) {
  auto t = cast<RankedTensorType>(v.getType());
  if (!t.isDynamicDim(i))
    return b.getIndexAttr(t.getDimSize(i));
  return tensor::DimOp::create(b, loc, v, i).getResult();
}

Value valueOf(OpBuilder &b, Location loc, OpFoldResult r) {
  return getValueOrCreateConstantIndexOp(b, loc, r);
}

/// `v` as f32 (extended if narrower).
Value extToF32(OpBuilder &b, Location loc, Value v) {
  return v.getType().isF32()
             ? v
             : arith::ExtFOp::create(b, loc, b.getF32Type(), v).getResult();
}

/// for (i = 0; i < n; ++i) carrying `init`; `body` returns the next values.
ValueRange
forLoop(OpBuilder &b, Location loc, Value n, ValueRange init,
        function_ref<SmallVector<Value>(OpBuilder &, Value, ValueRange)> body) {
  Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(b, loc, 1);
  auto forOp = scf::ForOp::create(
      b, loc, c0, n, c1, init,
      [&](OpBuilder &nb, Location, Value i, ValueRange args) {
        scf::YieldOp::create(nb, loc, body(nb, i, args));
      });
  return forOp.getResults();
}

/// The top `topK` entries of every row of `scores` ([B, R, N] f32) as
/// [B, R, topK] i32 indices: topK passes of a strict argmax over the
/// remaining scores, scanning upwards (ties to the lower index; -inf is
/// never taken, a taken score becomes NaN, which never compares greater),
/// -1 once nothing is left.
Value buildTopK(OpBuilder &rewriter, Location loc, Value scores, int64_t topK) {
  Type f32 = rewriter.getF32Type(), i32 = rewriter.getI32Type();
  OpFoldResult batchD = dimOf(rewriter, loc, scores, 0),
               rowsD = dimOf(rewriter, loc, scores, 1),
               nD = dimOf(rewriter, loc, scores, 2);
  Value batch = valueOf(rewriter, loc, batchD),
        rows = valueOf(rewriter, loc, rowsD), n = valueOf(rewriter, loc, nD);
  Value topKV = arith::ConstantIndexOp::create(rewriter, loc, topK);
  Value indicesInit = tensor::EmptyOp::create(
      rewriter, loc,
      SmallVector<OpFoldResult>{batchD, rowsD, rewriter.getIndexAttr(topK)},
      i32);
  Value nan = arith::ConstantOp::create(
      rewriter, loc, rewriter.getF32FloatAttr(std::nanf("")));
  Value ninf = arith::ConstantOp::create(rewriter, loc,
                                         rewriter.getF32FloatAttr(-INFINITY));
  Value none = arith::ConstantIndexOp::create(rewriter, loc, -1);
  Value rowInit = tensor::EmptyOp::create(rewriter, loc,
                                          SmallVector<OpFoldResult>{nD}, f32);
  return forLoop(
      rewriter, loc, batch, indicesInit,
      [&](OpBuilder &b, Value bi, ValueRange t0) {
        return SmallVector<Value>(forLoop(
            b, loc, rows, t0, [&](OpBuilder &b, Value t, ValueRange t1) {
              // The row's scores, copied (taken entries become NaN).
              Value row = forLoop(
                  b, loc, n, rowInit, [&](OpBuilder &b, Value s, ValueRange r) {
                    Value x = tensor::ExtractOp::create(b, loc, scores,
                                                        ValueRange{bi, t, s});
                    return SmallVector<Value>{
                        tensor::InsertOp::create(b, loc, x, r[0], ValueRange{s})
                            .getResult()};
                  })[0];
              ValueRange done = forLoop(
                  b, loc, topKV, ValueRange{t1[0], row},
                  [&](OpBuilder &b, Value kk, ValueRange st) {
                    ValueRange best = forLoop(
                        b, loc, n, ValueRange{ninf, none},
                        [&](OpBuilder &b, Value s, ValueRange cur) {
                          Value x = tensor::ExtractOp::create(b, loc, st[1],
                                                              ValueRange{s});
                          Value better = arith::CmpFOp::create(
                              b, loc, arith::CmpFPredicate::OGT, x, cur[0]);
                          return SmallVector<Value>{
                              arith::SelectOp::create(b, loc, better, x,
                                                      cur[0]),
                              arith::SelectOp::create(b, loc, better, s,
                                                      cur[1])};
                        });
                    Value found = arith::CmpIOp::create(
                        b, loc, arith::CmpIPredicate::ne, best[1], none);
                    auto take = scf::IfOp::create(
                        b, loc, found,
                        [&](OpBuilder &tb, Location) {
                          Value next = tensor::InsertOp::create(
                              tb, loc, nan, st[1], ValueRange{best[1]});
                          scf::YieldOp::create(tb, loc, next);
                        },
                        [&](OpBuilder &eb, Location) {
                          scf::YieldOp::create(eb, loc, st[1]);
                        });
                    Value idx =
                        arith::IndexCastOp::create(b, loc, i32, best[1]);
                    Value out = tensor::InsertOp::create(b, loc, idx, st[0],
                                                         ValueRange{bi, t, kk});
                    return SmallVector<Value>{out, take.getResult(0)};
                  });
              return SmallVector<Value>{done[0]};
            }));
      })[0];
}

struct DecomposeSparseAttention : OpRewritePattern<SparseAttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(SparseAttentionOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value q = op.getQuery(), k = op.getKey(), indices = op.getIndices();
    Type f32 = rewriter.getF32Type();
    OpFoldResult batchD = dimOf(rewriter, loc, q, 0),
                 sqD = dimOf(rewriter, loc, q, 1),
                 hqD = dimOf(rewriter, loc, q, 2),
                 skD = dimOf(rewriter, loc, k, 1);
    Value batch = valueOf(rewriter, loc, batchD),
          sq = valueOf(rewriter, loc, sqD), hq = valueOf(rewriter, loc, hqD),
          sk = valueOf(rewriter, loc, skD),
          hkv = valueOf(rewriter, loc, dimOf(rewriter, loc, k, 2)),
          n = valueOf(rewriter, loc, dimOf(rewriter, loc, indices, 3));
    Value group = arith::DivUIOp::create(rewriter, loc, hq, hkv);
    Value bs = arith::ConstantIndexOp::create(rewriter, loc,
                                              op.getBlockSizeAttr().getInt());
    // Index values 0 .. ceil(Sk / bs) - 1 name (partly) existing blocks.
    Value blocks = arith::CeilDivUIOp::create(rewriter, loc, sk, bs);

    Value init = tensor::EmptyOp::create(
        rewriter, loc, SmallVector<OpFoldResult>{batchD, hqD, sqD, skD}, f32);
    Value ninf = arith::ConstantOp::create(rewriter, loc,
                                           rewriter.getF32FloatAttr(-INFINITY));
    Value zero =
        arith::ConstantOp::create(rewriter, loc, rewriter.getF32FloatAttr(0.0));
    Value bias = linalg::FillOp::create(rewriter, loc, ninf, init).getResult(0);

    bias = forLoop(
        rewriter, loc, batch, bias, [&](OpBuilder &b, Value bi, ValueRange t0) {
          return SmallVector<Value>(forLoop(
              b, loc, sq, t0, [&](OpBuilder &b, Value i, ValueRange t1) {
                return SmallVector<Value>(forLoop(
                    b, loc, hq, t1, [&](OpBuilder &b, Value h, ValueRange t2) {
                      Value g = arith::DivUIOp::create(b, loc, h, group);
                      return SmallVector<Value>(forLoop(
                          b, loc, n, t2,
                          [&](OpBuilder &b, Value e, ValueRange t3) {
                            Value raw = tensor::ExtractOp::create(
                                b, loc, indices, ValueRange{bi, i, g, e});
                            Value zeroI = arith::ConstantOp::create(
                                b, loc, b.getIntegerAttr(raw.getType(), 0));
                            Value nonNeg = arith::CmpIOp::create(
                                b, loc, arith::CmpIPredicate::sge, raw, zeroI);
                            // The index as an index value (negative ones clamp
                            // to 0 and are skipped by `nonNeg`).
                            Value idx = arith::IndexCastOp::create(
                                b, loc, b.getIndexType(),
                                arith::SelectOp::create(b, loc, nonNeg, raw,
                                                        zeroI));
                            Value inRange = arith::AndIOp::create(
                                b, loc, nonNeg,
                                arith::CmpIOp::create(b, loc,
                                                      arith::CmpIPredicate::ult,
                                                      idx, blocks));
                            auto ifOp = scf::IfOp::create(
                                b, loc, inRange,
                                [&](OpBuilder &tb, Location) {
                                  Value first =
                                      arith::MulIOp::create(tb, loc, idx, bs);
                                  Value out = forLoop(
                                      tb, loc, bs, t3[0],
                                      [&](OpBuilder &b, Value r,
                                          ValueRange t4) {
                                        Value j = arith::AddIOp::create(
                                            b, loc, first, r);
                                        Value inside = arith::CmpIOp::create(
                                            b, loc, arith::CmpIPredicate::ult,
                                            j, sk);
                                        auto set = scf::IfOp::create(
                                            b, loc, inside,
                                            [&](OpBuilder &sb, Location) {
                                              Value next =
                                                  tensor::InsertOp::create(
                                                      sb, loc, zero, t4[0],
                                                      ValueRange{bi, h, i, j});
                                              scf::YieldOp::create(sb, loc,
                                                                   next);
                                            },
                                            [&](OpBuilder &eb, Location) {
                                              scf::YieldOp::create(eb, loc,
                                                                   t4[0]);
                                            });
                                        return SmallVector<Value>{
                                            set.getResult(0)};
                                      })[0];
                                  scf::YieldOp::create(tb, loc, out);
                                },
                                [&](OpBuilder &eb, Location) {
                                  scf::YieldOp::create(eb, loc, t3[0]);
                                });
                            return SmallVector<Value>{ifOp.getResult(0)};
                          }));
                    }));
              }));
        })[0];

    Type lseType = op.getLse() ? op.getLse().getType() : Type();
    auto attention = AttentionOp::create(
        rewriter, loc, op.getOutput().getType(), lseType, q, k, op.getValue(),
        bias, op.getSinks(), /*positionOffset=*/Value(),
        /*descale=*/ValueRange(), Layout::BSHD, op.getMaskOrNone(),
        op.getScaleAttr(), op.getSoftcapAttr());
    replaceOpWithCasts(rewriter, op, attention->getResults());
    return success();
  }
};

struct DecomposeLightningIndexer : OpRewritePattern<LightningIndexerOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LightningIndexerOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    Value q = op.getQuery(), k = op.getKey(), w = op.getWeights();
    Type f32 = rewriter.getF32Type();
    OpFoldResult batchD = dimOf(rewriter, loc, q, 0),
                 sqD = dimOf(rewriter, loc, q, 1),
                 headsD = dimOf(rewriter, loc, q, 2),
                 skD = dimOf(rewriter, loc, k, 1);
    Value sq = valueOf(rewriter, loc, sqD), sk = valueOf(rewriter, loc, skD);
    auto toF32 = [&](OpBuilder &b, Value v) { return extToF32(b, loc, v); };
    auto par = utils::IteratorType::parallel,
         red = utils::IteratorType::reduction;
    Value zero =
        arith::ConstantOp::create(rewriter, loc, rewriter.getF32FloatAttr(0.0));

    // logits[b, t, h, s] = Σ_d q[b, t, h, d] k[b, s, d]   (dims b t h s d)
    Value logitsInit =
        linalg::FillOp::create(
            rewriter, loc, zero,
            tensor::EmptyOp::create(
                rewriter, loc,
                SmallVector<OpFoldResult>{batchD, sqD, headsD, skD}, f32)
                .getResult())
            .getResult(0);
    auto d5 = [&](ArrayRef<unsigned> dims) {
      SmallVector<AffineExpr> exprs;
      for (unsigned d : dims)
        exprs.push_back(getAffineDimExpr(d, ctx));
      return AffineMap::get(5, 0, exprs, ctx);
    };
    Value logits =
        linalg::GenericOp::create(
            rewriter, loc, logitsInit.getType(), ValueRange{q, k},
            ValueRange{logitsInit},
            ArrayRef<AffineMap>{d5({0, 1, 2, 4}), d5({0, 3, 4}),
                                d5({0, 1, 2, 3})},
            SmallVector<utils::IteratorType>{par, par, par, par, red},
            [&](OpBuilder &b, Location, ValueRange args) {
              Value p = arith::MulFOp::create(b, loc, toF32(b, args[0]),
                                              toF32(b, args[1]));
              linalg::YieldOp::create(
                  b, loc,
                  arith::AddFOp::create(b, loc, args[2], p).getResult());
            })
            .getResult(0);

    // scores[b, t, s] = Σ_h w[b, t, h] relu(logits[b, t, h, s]) (dims b t s
    // h), then -inf where the mask does not admit s at t + Sk - Sq.
    auto d4 = [&](ArrayRef<unsigned> dims) {
      SmallVector<AffineExpr> exprs;
      for (unsigned d : dims)
        exprs.push_back(getAffineDimExpr(d, ctx));
      return AffineMap::get(4, 0, exprs, ctx);
    };
    Value scoresInit =
        linalg::FillOp::create(
            rewriter, loc, zero,
            tensor::EmptyOp::create(
                rewriter, loc, SmallVector<OpFoldResult>{batchD, sqD, skD}, f32)
                .getResult())
            .getResult(0);
    Value summed =
        linalg::GenericOp::create(
            rewriter, loc, scoresInit.getType(), ValueRange{w, logits},
            ValueRange{scoresInit},
            ArrayRef<AffineMap>{d4({0, 1, 3}), d4({0, 1, 3, 2}), d4({0, 1, 2})},
            SmallVector<utils::IteratorType>{par, par, par, red},
            [&](OpBuilder &b, Location, ValueRange args) {
              Value relu = arith::MaximumFOp::create(b, loc, args[1], zero);
              Value p = arith::MulFOp::create(b, loc, toF32(b, args[0]), relu);
              linalg::YieldOp::create(
                  b, loc,
                  arith::AddFOp::create(b, loc, args[2], p).getResult());
            })
            .getResult(0);
    MaskAttr mask = op.getMaskOrNone();
    auto id3 = AffineMap::getMultiDimIdentityMap(3, ctx);
    Value scores =
        linalg::GenericOp::create(
            rewriter, loc, summed.getType(), ValueRange{}, ValueRange{summed},
            ArrayRef<AffineMap>{id3}, SmallVector<utils::IteratorType>(3, par),
            [&](OpBuilder &b, Location, ValueRange args) {
              Value t = linalg::IndexOp::create(b, loc, 1);
              Value s = linalg::IndexOp::create(b, loc, 2);
              Value pos = arith::SubIOp::create(
                  b, loc, arith::AddIOp::create(b, loc, t, sk), sq);
              Value out = args[0];
              if (Value ok = buildAdmitsKey(b, loc, mask, pos, s)) {
                Value ninf = arith::ConstantOp::create(
                    b, loc, b.getF32FloatAttr(-INFINITY));
                out = arith::SelectOp::create(b, loc, ok, out, ninf);
              }
              linalg::YieldOp::create(b, loc, out);
            })
            .getResult(0);

    Value indices = buildTopK(rewriter, loc, scores, op.getTopKAttr().getInt());
    SmallVector<Value> results{indices};
    if (op.getScores())
      results.push_back(scores);
    replaceOpWithCasts(rewriter, op, results);
    return success();
  }
};

/// attn.nsa as its branches (see the op's description): compressed
/// attention (attn.attention with a visibility bias, and its LSE), its
/// probabilities from the LSE, block scores by overlap, the always-selected
/// blocks, the per-row top num_selected, attn.sparse_attention over them,
/// windowed attn.attention, and the gated sum.
struct DecomposeNsa : OpRewritePattern<NsaOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(NsaOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    Value q = op.getQuery(), k = op.getKey(), v = op.getValue(),
          kc = op.getKeyCmp(), vc = op.getValueCmp(), gates = op.getGates();
    auto qType = cast<RankedTensorType>(q.getType());
    auto outType = cast<RankedTensorType>(op.getOutput().getType());
    Type f32 = rewriter.getF32Type();
    const int64_t hq = qType.getDimSize(2),
                  hkv = cast<RankedTensorType>(k.getType()).getDimSize(2);
    const int64_t group = hq / hkv;
    const int64_t l = op.getCmpBlockAttr().getInt(),
                  d = op.getCmpStrideAttr().getInt(),
                  lsel = op.getSelBlockAttr().getInt(),
                  numSel = op.getNumSelectedAttr().getInt(),
                  initial = op.getInitialBlocksAttr().getInt(),
                  local = op.getLocalBlocksAttr().getInt();
    const double scale = *op.getEffectiveScale();
    OpFoldResult batchD = dimOf(rewriter, loc, q, 0),
                 sqD = dimOf(rewriter, loc, q, 1),
                 skD = dimOf(rewriter, loc, k, 1),
                 tcD = dimOf(rewriter, loc, kc, 1);
    Value sq = valueOf(rewriter, loc, sqD), sk = valueOf(rewriter, loc, skD);
    auto par = utils::IteratorType::parallel,
         red = utils::IteratorType::reduction;
    auto cst = [&](OpBuilder &b, int64_t x) -> Value {
      return arith::ConstantIndexOp::create(b, loc, x);
    };
    auto fconst = [&](OpBuilder &b, double x) -> Value {
      return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(x));
    };
    auto toF32 = [&](OpBuilder &b, Value x) { return extToF32(b, loc, x); };
    auto maps = [&](unsigned dims, ArrayRef<ArrayRef<AffineExpr>> results) {
      SmallVector<AffineMap> out;
      for (ArrayRef<AffineExpr> r : results)
        out.push_back(AffineMap::get(dims, 0, r, ctx));
      return out;
    };
    auto dimE = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    // The row's key position p = t + Sk - Sq.
    auto position = [&](OpBuilder &b, Value t) -> Value {
      return arith::SubIOp::create(b, loc, arith::AddIOp::create(b, loc, t, sk),
                                   sq);
    };
    // Compressed token c is visible at position p: c·d + l <= p + 1.
    auto visible = [&](OpBuilder &b, Value c, Value pos) -> Value {
      Value end = arith::AddIOp::create(
          b, loc, arith::MulIOp::create(b, loc, c, cst(b, d)), cst(b, l));
      return arith::CmpIOp::create(
          b, loc, arith::CmpIPredicate::sle, end,
          arith::AddIOp::create(b, loc, pos, cst(b, 1)));
    };
    auto empty = [&](ArrayRef<OpFoldResult> sizes) -> Value {
      return tensor::EmptyOp::create(rewriter, loc, sizes, f32);
    };
    auto zeros = [&](ArrayRef<OpFoldResult> sizes) -> Value {
      return linalg::FillOp::create(rewriter, loc, fconst(rewriter, 0.0),
                                    empty(sizes))
          .getResult(0);
    };
    FloatAttr scaleAttr = rewriter.getF32FloatAttr(scale);

    // 1. Compressed attention with a visibility bias [1, 1, Sq, Tc].
    OpFoldResult one = rewriter.getIndexAttr(1);
    Value visBias =
        linalg::GenericOp::create(
            rewriter, loc, empty({one, one, sqD, tcD}).getType(), ValueRange{},
            ValueRange{empty({one, one, sqD, tcD})},
            ArrayRef<AffineMap>{AffineMap::getMultiDimIdentityMap(4, ctx)},
            SmallVector<utils::IteratorType>(4, par),
            [&](OpBuilder &b, Location, ValueRange) {
              Value t = linalg::IndexOp::create(b, loc, 2);
              Value c = linalg::IndexOp::create(b, loc, 3);
              Value ok = visible(b, c, position(b, t));
              linalg::YieldOp::create(
                  b, loc,
                  arith::SelectOp::create(b, loc, ok, fconst(b, 0.0),
                                          fconst(b, -INFINITY))
                      .getResult());
            })
            .getResult(0);
    auto lseType = RankedTensorType::get(
        {qType.getDimSize(0), hq, qType.getDimSize(1)}, f32);
    auto cmpAttention = AttentionOp::create(
        rewriter, loc, outType, lseType, q, kc, vc, visBias, Value(),
        /*positionOffset=*/Value(), /*descale=*/ValueRange(), Layout::BSHD,
        MaskAttr::getNone(ctx), scaleAttr, FloatAttr());
    Value oCmp = cmpAttention.getOutput(), lse = cmpAttention.getLse();

    // 2a. P[b, h, t, c] = exp(scale q·kc - lse) where visible (dims b h t c
    // e, e the head dim).
    OpFoldResult hqD = rewriter.getIndexAttr(hq);
    Value dots =
        linalg::GenericOp::create(
            rewriter, loc, zeros({batchD, hqD, sqD, tcD}).getType(),
            ValueRange{q, kc}, ValueRange{zeros({batchD, hqD, sqD, tcD})},
            maps(5, {{dimE(0), dimE(2), dimE(1), dimE(4)},
                     {dimE(0), dimE(3), dimE(1).floorDiv(group), dimE(4)},
                     {dimE(0), dimE(1), dimE(2), dimE(3)}}),
            SmallVector<utils::IteratorType>{par, par, par, par, red},
            [&](OpBuilder &b, Location, ValueRange args) {
              Value p = arith::MulFOp::create(b, loc, toF32(b, args[0]),
                                              toF32(b, args[1]));
              linalg::YieldOp::create(
                  b, loc,
                  arith::AddFOp::create(b, loc, args[2], p).getResult());
            })
            .getResult(0);
    Value probs =
        linalg::GenericOp::create(
            rewriter, loc, dots.getType(), ValueRange{lse}, ValueRange{dots},
            maps(4, {{dimE(0), dimE(1), dimE(2)},
                     {dimE(0), dimE(1), dimE(2), dimE(3)}}),
            SmallVector<utils::IteratorType>(4, par),
            [&](OpBuilder &b, Location, ValueRange args) {
              Value t = linalg::IndexOp::create(b, loc, 2);
              Value c = linalg::IndexOp::create(b, loc, 3);
              Value x = arith::SubFOp::create(
                  b, loc,
                  arith::MulFOp::create(b, loc, args[1], fconst(b, scale)),
                  args[0]);
              Value p = math::ExpOp::create(b, loc, x);
              // Rows with nothing visible have an LSE of -inf.
              Value ok = arith::AndIOp::create(
                  b, loc, visible(b, c, position(b, t)),
                  arith::CmpFOp::create(b, loc, arith::CmpFPredicate::ONE,
                                        args[0], fconst(b, -INFINITY)));
              linalg::YieldOp::create(
                  b, loc,
                  arith::SelectOp::create(b, loc, ok, p, fconst(b, 0.0))
                      .getResult());
            })
            .getResult(0);

    // 2b. score[b, t, g, j] = Σ_{h in g} Σ_{c overlapping block j} P (dims b
    // t g j hh c), NB = ceil(Sk / l') blocks.
    OpFoldResult nbD;
    if (std::optional<int64_t> skC = getConstantIntValue(skD))
      nbD = rewriter.getIndexAttr(llvm::divideCeil(*skC, lsel));
    else
      nbD = arith::CeilDivUIOp::create(rewriter, loc, sk, cst(rewriter, lsel))
                .getResult();
    OpFoldResult hkvD = rewriter.getIndexAttr(hkv);
    Value scoreInit = zeros({batchD, sqD, hkvD, nbD});
    // P as [B, Hkv, G, Sq, Tc]: every loop dim a plain dim of some operand.
    auto groupedType = RankedTensorType::get(
        {qType.getDimSize(0), hkv, group, qType.getDimSize(1),
         cast<RankedTensorType>(kc.getType()).getDimSize(1)},
        f32);
    Value grouped = tensor::ExpandShapeOp::create(
        rewriter, loc, groupedType, probs,
        SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}, {4}});
    Value summed =
        linalg::GenericOp::create(
            rewriter, loc, scoreInit.getType(), ValueRange{grouped},
            ValueRange{scoreInit},
            maps(6, {{dimE(0), dimE(2), dimE(4), dimE(1), dimE(5)},
                     {dimE(0), dimE(1), dimE(2), dimE(3)}}),
            SmallVector<utils::IteratorType>{par, par, par, par, red, red},
            [&](OpBuilder &b, Location, ValueRange args) {
              Value j = linalg::IndexOp::create(b, loc, 3);
              Value c = linalg::IndexOp::create(b, loc, 5);
              // [c·d, c·d + l) overlaps [j·l', (j + 1)·l').
              Value start = arith::MulIOp::create(b, loc, c, cst(b, d));
              Value blockStart = arith::MulIOp::create(b, loc, j, cst(b, lsel));
              Value overlap = arith::AndIOp::create(
                  b, loc,
                  arith::CmpIOp::create(
                      b, loc, arith::CmpIPredicate::slt, start,
                      arith::AddIOp::create(b, loc, blockStart, cst(b, lsel))),
                  arith::CmpIOp::create(
                      b, loc, arith::CmpIPredicate::sgt,
                      arith::AddIOp::create(b, loc, start, cst(b, l)),
                      blockStart));
              Value sum = arith::AddFOp::create(b, loc, args[1], args[0]);
              linalg::YieldOp::create(
                  b, loc,
                  arith::SelectOp::create(b, loc, overlap, sum, args[1])
                      .getResult());
            })
            .getResult(0);
    // 2c. Blocks past p's are -inf; the initial and local ones +inf.
    Value scores =
        linalg::GenericOp::create(
            rewriter, loc, summed.getType(), ValueRange{}, ValueRange{summed},
            ArrayRef<AffineMap>{AffineMap::getMultiDimIdentityMap(4, ctx)},
            SmallVector<utils::IteratorType>(4, par),
            [&](OpBuilder &b, Location, ValueRange args) {
              Value t = linalg::IndexOp::create(b, loc, 1);
              Value j = linalg::IndexOp::create(b, loc, 3);
              Value last = arith::FloorDivSIOp::create(b, loc, position(b, t),
                                                       cst(b, lsel));
              Value future = arith::CmpIOp::create(
                  b, loc, arith::CmpIPredicate::sgt, j, last);
              Value forced = arith::OrIOp::create(
                  b, loc,
                  arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, j,
                                        cst(b, initial)),
                  arith::CmpIOp::create(
                      b, loc, arith::CmpIPredicate::sgt,
                      arith::AddIOp::create(b, loc, j, cst(b, local)), last));
              Value x = arith::SelectOp::create(b, loc, forced,
                                                fconst(b, INFINITY), args[0]);
              linalg::YieldOp::create(
                  b, loc,
                  arith::SelectOp::create(b, loc, future, fconst(b, -INFINITY),
                                          x)
                      .getResult());
            })
            .getResult(0);
    // 2d. The top num_selected blocks per (token, KV head).
    SmallVector<ReassociationIndices> reassoc{{0}, {1, 2}, {3}};
    Value flat =
        tensor::CollapseShapeOp::create(rewriter, loc, scores, reassoc);
    Value picked = buildTopK(rewriter, loc, flat, numSel);
    auto idxType = RankedTensorType::get(
        {qType.getDimSize(0), qType.getDimSize(1), hkv, numSel},
        rewriter.getI32Type());
    Value indices =
        tensor::ExpandShapeOp::create(rewriter, loc, idxType, picked, reassoc);

    // 3. Selected and 4. window branches.
    Value oSel = SparseAttentionOp::create(
                     rewriter, loc, outType, Type(), q, k, v, indices, Value(),
                     rewriter.getI64IntegerAttr(lsel), MaskAttr::getCausal(ctx),
                     scaleAttr, FloatAttr())
                     .getOutput();
    Value oWin =
        AttentionOp::create(
            rewriter, loc, outType, Type(), q, k, v, Value(), Value(),
            /*positionOffset=*/Value(), /*descale=*/ValueRange(), Layout::BSHD,
            MaskAttr::getWindow(ctx, op.getWindowAttr().getInt() - 1, 0),
            scaleAttr, FloatAttr())
            .getOutput();

    // 5. The gated sum (f32, then the output type).
    Value outInit = tensor::EmptyOp::create(
        rewriter, loc, tensor::getMixedSizes(rewriter, loc, oCmp),
        outType.getElementType());
    auto gateMap = [&](int64_t branch) {
      return AffineMap::get(
          4, 0, {dimE(0), dimE(1), dimE(2), getAffineConstantExpr(branch, ctx)},
          ctx);
    };
    auto id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
    Value out = linalg::GenericOp::create(
                    rewriter, loc, outType,
                    ValueRange{gates, gates, gates, oCmp, oSel, oWin},
                    ValueRange{outInit},
                    ArrayRef<AffineMap>{gateMap(0), gateMap(1), gateMap(2), id4,
                                        id4, id4, id4},
                    SmallVector<utils::IteratorType>(4, par),
                    [&](OpBuilder &b, Location, ValueRange args) {
                      Value acc = fconst(b, 0.0);
                      for (int64_t i = 0; i < 3; ++i)
                        acc = math::FmaOp::create(b, loc, toF32(b, args[i]),
                                                  toF32(b, args[3 + i]), acc);
                      if (!outType.getElementType().isF32())
                        acc = arith::TruncFOp::create(
                            b, loc, outType.getElementType(), acc);
                      linalg::YieldOp::create(b, loc, acc);
                    })
                    .getResult(0);
    replaceOpWithCasts(rewriter, op, out);
    return success();
  }
};

struct AttnDecomposeSparsePass
    : public attn::impl::AttnDecomposeSparseBase<AttnDecomposeSparsePass> {
  void runOnOperation() override {
    // The dense reference forms materialize [B, Hq, Sq, Sk] scores: sizes
    // past attn's bounds are a located error here, not an attn.attention
    // that fails verification after the pass.
    WalkResult bounded = getOperation()->walk([](Operation *op) {
      if (!isa<SparseAttentionOp, LightningIndexerOp, NsaOp>(op))
        return WalkResult::advance();
      auto q = cast<RankedTensorType>(op->getOperand(0).getType());
      auto k = cast<RankedTensorType>(op->getOperand(1).getType());
      // Query [B, Sq, H, D] and keys [B, Sk, ...] for all three ops.
      SmallVector<int64_t> scores = {q.getDimSize(0), q.getDimSize(2),
                                     q.getDimSize(1), k.getDimSize(1)};
      if (isWithinSizeBounds(scores))
        return WalkResult::advance();
      op->emitOpError("the dense reference lowering would materialize scores ")
          << RankedTensorType::get(scores, Float32Type::get(op->getContext()))
          << ", beyond the sizes attn takes (dims up to 2^31 - 1, 2^48 "
             "elements)";
      return WalkResult::interrupt();
    });
    if (bounded.wasInterrupted())
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    populateAttnDecomposeSparsePatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace

void mlir::attn::populateAttnDecomposeSparsePatterns(
    RewritePatternSet &patterns) {
  patterns
      .add<DecomposeSparseAttention, DecomposeLightningIndexer, DecomposeNsa>(
          patterns.getContext());
}
