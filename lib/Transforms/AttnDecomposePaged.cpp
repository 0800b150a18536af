//===- AttnDecomposePaged.cpp - paged attention to gather + attention -----===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Rewrites attn.paged_attention into the gather of each sequence's keys and
// values out of the paged caches (zero past the sequence's length, the pages
// not read there) and one attn.attention over them, in the bshd layout, with
// an additive f32 bias of 0 / -inf that carries the per-sequence length and
// the mask at each sequence's own bottom-right alignment:
//
//   K[b, j, g, :] = j < L_b ? Kcache[table[b, j / page], j % page, g, :] : 0
//   bias[b, 0, i, j] = (j < L_b and mask admits j at p = i + L_b - Sq) ? 0
//                                                                    : -inf
//
// with j < Lmax = max_pages * page_size and L_b = clamp(seq_lens[b], 0,
// Lmax). The table entries of keys past L_b are never read (so they may be
// -1 or out of range) and neither are the cache slots past L_b: their
// values, NaN included, cannot reach an output. This is the reference lowering
// (any backend, and the CPU pipeline); it materializes B x max_pages x
// page_size keys, which a paged GPU kernel avoids.
//
//===----------------------------------------------------------------------===//

#include "attn/IR/AttnOps.h"
#include "attn/IR/MaskUtils.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"

#include "RewriteUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNDECOMPOSEPAGED
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

namespace {
struct DecomposePagedAttention : OpRewritePattern<PagedAttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(PagedAttentionOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    bool hnd = op.getCacheLayout() == CacheLayout::HND;
    unsigned slotPos = hnd ? 2 : 1, headPos = hnd ? 1 : 2;
    Value q = op.getQuery(), kc = op.getKeyCache(), vc = op.getValueCache();
    Value table = op.getBlockTable(), lens = op.getSeqLens();
    auto qType = cast<RankedTensorType>(q.getType());
    Type elt = qType.getElementType(), f32 = rewriter.getF32Type();

    auto dim = [&](Value v, int64_t i) -> OpFoldResult {
      auto t = cast<RankedTensorType>(v.getType());
      if (!t.isDynamicDim(i))
        return rewriter.getIndexAttr(t.getDimSize(i));
      return tensor::DimOp::create(rewriter, loc, v, i).getResult();
    };
    auto value = [&](OpFoldResult r) {
      return getValueOrCreateConstantIndexOp(rewriter, loc, r);
    };
    // Sizes: B, max_pages x page = Lmax, Sq, Hkv, D, Dv.
    OpFoldResult batch = dim(q, 0), sq = dim(q, 1), hkv = dim(kc, headPos);
    OpFoldResult d = dim(kc, 3), dv = dim(vc, 3);
    OpFoldResult page = dim(kc, slotPos), maxPages = dim(table, 1);
    OpFoldResult lmax;
    {
      std::optional<int64_t> p = getConstantIntValue(page),
                             m = getConstantIntValue(maxPages);
      if (p && m)
        lmax = rewriter.getIndexAttr(*p * *m);
      else
        lmax =
            arith::MulIOp::create(rewriter, loc, value(page), value(maxPages))
                .getResult();
    }
    Value pageV = value(page), lmaxV = value(lmax);

    // The keys of sequence `b`: its length, clamped to [0, Lmax].
    auto seqLen = [&](OpBuilder &b, Value bi) -> Value {
      Value l = tensor::ExtractOp::create(b, loc, lens, ValueRange{bi});
      l = arith::IndexCastOp::create(b, loc, b.getIndexType(), l);
      return buildPagedSequenceLength(b, loc, l, lmaxV);
    };

    // Gathers [B, Lmax, Hkv, dim] out of `cache`.
    auto gather = [&](Value cache, OpFoldResult width) -> Value {
      SmallVector<OpFoldResult> sizes = {batch, lmax, hkv, width};
      Value init = tensor::EmptyOp::create(rewriter, loc, sizes, elt);
      auto map = AffineMap::getMultiDimIdentityMap(4, ctx);
      auto gen = linalg::GenericOp::create(
          rewriter, loc, init.getType(), ValueRange{}, ValueRange{init},
          ArrayRef<AffineMap>{map},
          SmallVector<utils::IteratorType>(4, utils::IteratorType::parallel),
          [&](OpBuilder &b, Location, ValueRange) {
            Value bi = linalg::IndexOp::create(b, loc, 0);
            Value j = linalg::IndexOp::create(b, loc, 1);
            Value g = linalg::IndexOp::create(b, loc, 2);
            Value e = linalg::IndexOp::create(b, loc, 3);
            Value valid = arith::CmpIOp::create(
                b, loc, arith::CmpIPredicate::slt, j, seqLen(b, bi));
            // Keys past the length read nothing (their page may not exist).
            auto ifOp = scf::IfOp::create(
                b, loc, valid,
                [&](OpBuilder &tb, Location) {
                  Value slot = arith::RemUIOp::create(tb, loc, j, pageV);
                  Value pi = arith::DivUIOp::create(tb, loc, j, pageV);
                  Value pg = tensor::ExtractOp::create(tb, loc, table,
                                                       ValueRange{bi, pi});
                  pg = arith::IndexCastOp::create(tb, loc, tb.getIndexType(),
                                                  pg);
                  SmallVector<Value> at =
                      hnd ? SmallVector<Value>{pg, g, slot, e}
                          : SmallVector<Value>{pg, slot, g, e};
                  Value x = tensor::ExtractOp::create(tb, loc, cache, at);
                  scf::YieldOp::create(tb, loc, x);
                },
                [&](OpBuilder &eb, Location) {
                  Value zero =
                      arith::ConstantOp::create(eb, loc, eb.getZeroAttr(elt));
                  scf::YieldOp::create(eb, loc, zero);
                });
            linalg::YieldOp::create(b, loc, ifOp.getResult(0));
          });
      return gen.getResult(0);
    };
    Value k = gather(kc, d), v = gather(vc, dv);

    // The bias [B, 1, Sq, Lmax]: 0 where admitted, -inf elsewhere.
    SmallVector<OpFoldResult> biasSizes = {batch, rewriter.getIndexAttr(1), sq,
                                           lmax};
    Value biasInit = tensor::EmptyOp::create(rewriter, loc, biasSizes, f32);
    MaskAttr mask = op.getMaskOrNone();
    Value sqV = value(sq);
    auto map = AffineMap::getMultiDimIdentityMap(4, ctx);
    auto biasGen = linalg::GenericOp::create(
        rewriter, loc, biasInit.getType(), ValueRange{}, ValueRange{biasInit},
        ArrayRef<AffineMap>{map},
        SmallVector<utils::IteratorType>(4, utils::IteratorType::parallel),
        [&](OpBuilder &b, Location, ValueRange) {
          Value bi = linalg::IndexOp::create(b, loc, 0);
          Value i = linalg::IndexOp::create(b, loc, 2);
          Value j = linalg::IndexOp::create(b, loc, 3);
          Value len = seqLen(b, bi);
          Value ok =
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, j, len);
          Value pos = arith::SubIOp::create(
              b, loc, arith::AddIOp::create(b, loc, i, len), sqV);
          if (Value inBand = buildAdmitsKey(b, loc, mask, pos, j))
            ok = arith::AndIOp::create(b, loc, ok, inBand);
          Value zero =
              arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0));
          Value ninf =
              arith::ConstantOp::create(b, loc, b.getF32FloatAttr(-INFINITY));
          linalg::YieldOp::create(
              b, loc,
              arith::SelectOp::create(b, loc, ok, zero, ninf).getResult());
        });

    Type lseType = op.getLse() ? op.getLse().getType() : Type();
    auto attention = AttentionOp::create(
        rewriter, loc, op.getOutput().getType(), lseType, q, k, v,
        biasGen.getResult(0), op.getSinks(), /*positionOffset=*/Value(),
        /*descale=*/ValueRange(), Layout::BSHD, MaskAttr(), op.getScaleAttr(),
        op.getSoftcapAttr());
    replaceOpWithCasts(rewriter, op, attention->getResults());
    return success();
  }
};

struct AttnDecomposePagedPass
    : public attn::impl::AttnDecomposePagedBase<AttnDecomposePagedPass> {
  void runOnOperation() override {
    // The reference form gathers [B, max_pages * page_size, Hkv, D] keys
    // and attends over them: sizes past attn's bounds are a located error
    // here, not an attn.attention that fails verification after the pass.
    WalkResult bounded = getOperation()->walk([](PagedAttentionOp op) {
      PagedAttentionShape shape = op.getPagedShape();
      auto table = cast<RankedTensorType>(op.getBlockTable().getType());
      int64_t maxPages = table.getDimSize(1), keys = ShapedType::kDynamic;
      if (!ShapedType::isDynamic(maxPages) &&
          !ShapedType::isDynamic(shape.pageSize))
        keys = maxPages * shape.pageSize; // both <= 2^31 - 1: no overflow
      auto q = cast<RankedTensorType>(op.getQuery().getType());
      SmallVector<int64_t> gathered = {q.getDimSize(0), keys, shape.kvHeads,
                                       shape.headDim};
      SmallVector<int64_t> scores = {q.getDimSize(0), shape.queryHeads,
                                     q.getDimSize(1), keys};
      if (isWithinSizeBounds(gathered) && isWithinSizeBounds(scores))
        return WalkResult::advance();
      op.emitOpError("the reference lowering would gather ")
          << keys
          << " keys per sequence into tensors beyond the sizes attn "
             "takes (dims up to 2^31 - 1, 2^48 elements)";
      return WalkResult::interrupt();
    });
    if (bounded.wasInterrupted())
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    populateAttnDecomposePagedPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace

void mlir::attn::populateAttnDecomposePagedPatterns(
    RewritePatternSet &patterns) {
  patterns.add<DecomposePagedAttention>(patterns.getContext());
}
