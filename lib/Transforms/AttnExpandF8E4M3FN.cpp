//===- AttnExpandF8E4M3FN.cpp - f8E4M3FN conversions as integer code -----===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// e4m3 (f8E4M3FN) is S.EEEE.MMM with exponent bias 7, no infinities, and
// NaN at S.1111.111; its largest finite magnitude is 1.75 · 2^8 = 448, its
// smallest normal 2^-6, and its subnormals are m · 2^-9. LLVM has no such
// type, so the CPU path converts to and from f32 on the bits (see the pass
// description in Passes.td for why upstream's passes do not serve).
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

#include <limits>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNEXPANDF8E4M3FN
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;

namespace {

/// f32 bit patterns of the bounds of e4m3's ranges.
constexpr uint32_t kF32Max448 = 0x43E00000;    // 448.0f
constexpr uint32_t kF32MinNormal = 0x3C800000; // 2^-6
constexpr uint32_t kF32Two23 = 0x4B000000;     // 2^23

/// Integer and float constants of one rewrite.
struct Bits {
  PatternRewriter &b;
  Location loc;
  Value i32(int64_t v) {
    return arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(v));
  }
  Value f32(double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  Value andI(Value x, int64_t m) {
    return arith::AndIOp::create(b, loc, x, i32(m));
  }
  Value shr(Value x, int64_t n) {
    return arith::ShRUIOp::create(b, loc, x, i32(n));
  }
  Value cmp(arith::CmpIPredicate p, Value x, int64_t v) {
    return arith::CmpIOp::create(b, loc, p, x, i32(v));
  }
  Value select(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, loc, c, x, y);
  }
};

/// Lower arith.extf from f8E4M3FN: exact, through f32.
struct ExpandExtF : OpRewritePattern<arith::ExtFOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(arith::ExtFOp op,
                                PatternRewriter &rewriter) const override {
    if (!isa<Float8E4M3FNType>(op.getIn().getType()))
      return rewriter.notifyMatchFailure(op, "not a scalar f8E4M3FN source");
    Location loc = op.getLoc();
    Bits k{rewriter, loc};
    Value x8 = arith::BitcastOp::create(rewriter, loc, rewriter.getI8Type(),
                                        op.getIn());
    Value x = arith::ExtUIOp::create(rewriter, loc, rewriter.getI32Type(), x8);
    Value mag = k.andI(x, 0x7F);
    // Normal: the exponent rebiased by 127 - 7, the mantissa moved up.
    Value normalBits = arith::AddIOp::create(
        rewriter, loc, arith::ShLIOp::create(rewriter, loc, mag, k.i32(20)),
        k.i32(120 << 23));
    Value normal = arith::BitcastOp::create(rewriter, loc,
                                            rewriter.getF32Type(), normalBits);
    // Subnormal (exponent 0): m · 2^-9.
    Value m = arith::UIToFPOp::create(rewriter, loc, rewriter.getF32Type(),
                                      k.andI(x, 0x7));
    Value sub = arith::MulFOp::create(rewriter, loc, m, k.f32(0x1p-9));
    Value r = k.select(k.cmp(arith::CmpIPredicate::ult, mag, 8), sub, normal);
    r = k.select(k.cmp(arith::CmpIPredicate::eq, mag, 0x7F),
                 k.f32(std::numeric_limits<double>::quiet_NaN()), r);
    Value negative = k.cmp(arith::CmpIPredicate::ne, k.andI(x, 0x80), 0);
    r = k.select(negative, arith::NegFOp::create(rewriter, loc, r), r);
    auto outType = cast<FloatType>(op.getType());
    if (outType.getWidth() > 32)
      r = arith::ExtFOp::create(rewriter, loc, outType, r);
    else if (!outType.isF32())
      r = arith::TruncFOp::create(rewriter, loc, outType, r); // exact
    rewriter.replaceOp(op, r);
    return success();
  }
};

/// Lower arith.truncf to f8E4M3FN: round to nearest even, saturate to ±448.
struct ExpandTruncF : OpRewritePattern<arith::TruncFOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(arith::TruncFOp op,
                                PatternRewriter &rewriter) const override {
    Type inType = op.getIn().getType();
    if (!isa<Float8E4M3FNType>(op.getType()))
      return rewriter.notifyMatchFailure(op, "not a scalar f8E4M3FN result");
    if (!inType.isF32() && !inType.isF16() && !inType.isBF16())
      return rewriter.notifyMatchFailure(
          op, "source wider than f32 (rounding through f32 would round "
              "twice)");
    Location loc = op.getLoc();
    Bits k{rewriter, loc};
    Value in = op.getIn();
    if (!inType.isF32())
      in = arith::ExtFOp::create(rewriter, loc, rewriter.getF32Type(), in);
    Value bits =
        arith::BitcastOp::create(rewriter, loc, rewriter.getI32Type(), in);
    Value sign = k.andI(k.shr(bits, 24), 0x80);
    Value a = k.andI(bits, 0x7FFFFFFF);
    using P = arith::CmpIPredicate;
    // Normal: drop 20 mantissa bits rounding to nearest even (a carry
    // moves into the exponent), then rebias the exponent by 7 - 127.
    Value lsb = k.andI(k.shr(a, 20), 1);
    Value rounded = arith::AddIOp::create(
        rewriter, loc, a,
        arith::AddIOp::create(rewriter, loc, lsb, k.i32(0x7FFFF)));
    Value normal =
        arith::SubIOp::create(rewriter, loc, k.shr(rounded, 20), k.i32(960));
    // Subnormal: |x| · 2^9 < 8 rounded to an integer by adding 2^23, whose
    // f32 ulp is 1 (exact scaling, then one round to nearest even); the
    // integer is the code (8 is the smallest normal, 0x08).
    Value absF =
        arith::BitcastOp::create(rewriter, loc, rewriter.getF32Type(), a);
    Value t = arith::AddFOp::create(
        rewriter, loc, arith::MulFOp::create(rewriter, loc, absF, k.f32(512)),
        k.f32(0x1p23));
    Value sub = arith::SubIOp::create(
        rewriter, loc,
        arith::BitcastOp::create(rewriter, loc, rewriter.getI32Type(), t),
        k.i32(kF32Two23));
    Value code = k.select(k.cmp(P::uge, a, kF32MinNormal), normal, sub);
    code = k.select(k.cmp(P::uge, a, kF32Max448), k.i32(0x7E), code);
    code = k.select(k.cmp(P::ugt, a, 0x7F800000), k.i32(0x7F), code);
    code = arith::OrIOp::create(rewriter, loc, code, sign);
    Value c8 =
        arith::TruncIOp::create(rewriter, loc, rewriter.getI8Type(), code);
    rewriter.replaceOpWithNewOp<arith::BitcastOp>(op, op.getType(), c8);
    return success();
  }
};

struct AttnExpandF8E4M3FNPass
    : public attn::impl::AttnExpandF8E4M3FNBase<AttnExpandF8E4M3FNPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    attn::populateExpandF8E4M3FNPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void mlir::attn::populateExpandF8E4M3FNPatterns(RewritePatternSet &patterns) {
  patterns.add<ExpandExtF, ExpandTruncF>(patterns.getContext());
}
