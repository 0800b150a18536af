//===- AttnDecomposeGatedDelta.cpp - gated delta rule to scalar loops -----===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The reference lowering of attn.gated_delta_rule: the token-by-token
// recurrence as loops on tensors (any backend; the CPU pipeline). Per batch
// b, value head h (key head h / (Hv / Hk)), token t and value column c, the
// column c of the [Dk, Dv] state only depends on itself, so one pass over
// the key channels updates it:
//
//   S[:, c] *= exp(g)                     (g per head, or per key channel)
//   u        = beta * (V[c] - Σ_j S[j, c] k[j])
//   S[:, c] += k u
//   O[c]     = Σ_j S[j, c] q[j] * scale
//
// with q and k L2-normalized first if asked (x / sqrt(|x|² + 1e-6)). The
// arithmetic is f32; the output is rounded to the output's element type.
// This is O(T·Hv·Dk·Dv) scalar work: a correctness path, not the chunked
// (matrix-product) form that a fast lowering uses.
//
//===----------------------------------------------------------------------===//

#include "attn/IR/AttnOps.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"

#include "RewriteUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNDECOMPOSEGATEDDELTA
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;

namespace {
struct DecomposeGatedDelta : OpRewritePattern<GatedDeltaRuleOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GatedDeltaRuleOp op,
                                PatternRewriter &rewriter) const override {
    std::optional<double> scaleValue = op.getEffectiveScale();
    if (!scaleValue)
      return rewriter.notifyMatchFailure(op, "needs a known scale");
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Type f32 = b.getF32Type();
    Value q = op.getQuery(), k = op.getKey(), v = op.getValue(),
          g = op.getGate(), beta = op.getBeta();
    RankedTensorType oType = op.getOutput().getType();
    RankedTensorType sType = op.getFinalState().getType();
    bool channel = op.getGateKind() == GateKind::Channel;
    bool l2 = op.getQkL2norm();

    auto idx = [&](int64_t x) -> Value {
      return arith::ConstantIndexOp::create(b, x);
    };
    auto cf = [&](double x) -> Value {
      return arith::ConstantOp::create(b, b.getF32FloatAttr(x));
    };
    auto dim = [&](Value t, int64_t d) -> Value {
      return tensor::DimOp::create(b, t, d);
    };
    // Element of a tensor as f32.
    auto at = [&](OpBuilder &nb, Value t, ValueRange ix) -> Value {
      Value x = tensor::ExtractOp::create(nb, op.getLoc(), t, ix);
      if (x.getType() != f32)
        x = arith::ExtFOp::create(nb, op.getLoc(), f32, x);
      return x;
    };
    Value c0 = idx(0), c1 = idx(1);
    Value batch = dim(q, 0), tokens = dim(q, 1), hk = dim(q, 2), dk = dim(q, 3);
    Value hv = dim(v, 2), dv = dim(v, 3);
    Value group = arith::DivUIOp::create(b, hv, hk);

    // The output and the state, carried through the loops.
    SmallVector<Value> oDyn, sDyn;
    Value oSizes[4] = {batch, tokens, hv, dv}, sSizes[4] = {batch, hv, dk, dv};
    for (int64_t d = 0; d < 4; ++d) {
      if (oType.isDynamicDim(d))
        oDyn.push_back(oSizes[d]);
      if (sType.isDynamicDim(d))
        sDyn.push_back(sSizes[d]);
    }
    Value out = tensor::EmptyOp::create(b, oType, oDyn);
    Value state;
    if (Value init = op.getInitialState()) {
      // A copy: the loops update the state in place, and the initial state
      // may be read-only (a function argument).
      Value empty = tensor::EmptyOp::create(b, sType, sDyn);
      Value source = tensor::CastOp::create(b, sType, init);
      state = linalg::CopyOp::create(b, ValueRange{source}, ValueRange{empty})
                  .getResult(0);
    } else
      state = tensor::SplatOp::create(b, sType, cf(0.0), sDyn);

    Value scale = cf(*scaleValue);
    auto forLoop =
        [&](OpBuilder &nb, Value ub, ValueRange init,
            function_ref<SmallVector<Value>(OpBuilder &, Value, ValueRange)>
                body) -> scf::ForOp {
      return scf::ForOp::create(
          nb, op.getLoc(), c0, ub, c1, init,
          [&](OpBuilder &bb, Location, Value i, ValueRange iter) {
            scf::YieldOp::create(bb, op.getLoc(), body(bb, i, iter));
          });
    };
    auto add = [&](OpBuilder &nb, Value x, Value y) -> Value {
      return arith::AddFOp::create(nb, op.getLoc(), x, y);
    };
    auto mulf = [&](OpBuilder &nb, Value x, Value y) -> Value {
      return arith::MulFOp::create(nb, op.getLoc(), x, y);
    };

    auto loops = forLoop(
        b, batch, ValueRange{out, state},
        [&](OpBuilder &b1, Value bi, ValueRange it1) {
          auto heads =
              forLoop(b1, hv, it1, [&](OpBuilder &b2, Value h, ValueRange it2) {
                Value kh = arith::DivUIOp::create(b2, op.getLoc(), h, group);
                auto steps = forLoop(
                    b2, tokens, it2,
                    [&](OpBuilder &b3, Value t, ValueRange it3) {
                      // 1 / |q| and 1 / |k| (or 1).
                      Value qNorm = cf(1.0), kNorm = cf(1.0);
                      if (l2) {
                        auto sums = forLoop(
                            b3, dk, ValueRange{cf(0.0), cf(0.0)},
                            [&](OpBuilder &b4, Value j, ValueRange acc) {
                              Value qj = at(b4, q, {bi, t, kh, j}),
                                    kj = at(b4, k, {bi, t, kh, j});
                              return SmallVector<Value>{
                                  add(b4, acc[0], mulf(b4, qj, qj)),
                                  add(b4, acc[1], mulf(b4, kj, kj))};
                            });
                        auto inv = [&](Value s) -> Value {
                          return math::RsqrtOp::create(b3, op.getLoc(),
                                                       add(b3, s, cf(1e-6)));
                        };
                        qNorm = inv(sums.getResult(0));
                        kNorm = inv(sums.getResult(1));
                      }
                      Value qScale = mulf(b3, qNorm, scale);
                      Value betaT = at(b3, beta, {bi, t, h});
                      Value decayHead;
                      if (!channel)
                        decayHead = math::ExpOp::create(b3, op.getLoc(),
                                                        at(b3, g, {bi, t, h}));
                      auto columns = forLoop(
                          b3, dv, it3,
                          [&](OpBuilder &b4, Value c, ValueRange it4) {
                            Value o = it4[0], s = it4[1];
                            // Decay the column and take Σ_j S[j, c] k[j].
                            auto decay = forLoop(
                                b4, dk, ValueRange{s, cf(0.0)},
                                [&](OpBuilder &b5, Value j, ValueRange acc) {
                                  Value a = channel
                                                ? Value(math::ExpOp::create(
                                                      b5, op.getLoc(),
                                                      at(b5, g, {bi, t, h, j})))
                                                : decayHead;
                                  Value sj = mulf(
                                      b5, at(b5, acc[0], {bi, h, j, c}), a);
                                  Value st = tensor::InsertOp::create(
                                      b5, op.getLoc(), sj, acc[0],
                                      ValueRange{bi, h, j, c});
                                  Value kj = mulf(b5, at(b5, k, {bi, t, kh, j}),
                                                  kNorm);
                                  return SmallVector<Value>{
                                      st, add(b5, acc[1], mulf(b5, sj, kj))};
                                });
                            Value u = mulf(
                                b4, betaT,
                                arith::SubFOp::create(b4, op.getLoc(),
                                                      at(b4, v, {bi, t, h, c}),
                                                      decay.getResult(1)));
                            // S[:, c] += k u, and O[c] = Σ_j S[j, c] q[j] *
                            // scale.
                            auto update = forLoop(
                                b4, dk, ValueRange{decay.getResult(0), cf(0.0)},
                                [&](OpBuilder &b5, Value j, ValueRange acc) {
                                  Value kj = mulf(b5, at(b5, k, {bi, t, kh, j}),
                                                  kNorm);
                                  Value sj =
                                      add(b5, at(b5, acc[0], {bi, h, j, c}),
                                          mulf(b5, kj, u));
                                  Value st = tensor::InsertOp::create(
                                      b5, op.getLoc(), sj, acc[0],
                                      ValueRange{bi, h, j, c});
                                  Value qj = mulf(b5, at(b5, q, {bi, t, kh, j}),
                                                  qScale);
                                  return SmallVector<Value>{
                                      st, add(b5, acc[1], mulf(b5, sj, qj))};
                                });
                            Value oc = update.getResult(1);
                            if (oType.getElementType() != f32)
                              oc = arith::TruncFOp::create(
                                  b4, op.getLoc(), oType.getElementType(), oc);
                            o = tensor::InsertOp::create(
                                b4, op.getLoc(), oc, o,
                                ValueRange{bi, t, h, c});
                            return SmallVector<Value>{o, update.getResult(0)};
                          });
                      return SmallVector<Value>(columns.getResults());
                    });
                return SmallVector<Value>(steps.getResults());
              });
          return SmallVector<Value>(heads.getResults());
        });
    replaceOpWithCasts(rewriter, op, loops.getResults());
    return success();
  }
};

struct AttnDecomposeGatedDeltaPass
    : public attn::impl::AttnDecomposeGatedDeltaBase<
          AttnDecomposeGatedDeltaPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateAttnDecomposeGatedDeltaPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace

void mlir::attn::populateAttnDecomposeGatedDeltaPatterns(
    RewritePatternSet &patterns) {
  patterns.add<DecomposeGatedDelta>(patterns.getContext());
}
