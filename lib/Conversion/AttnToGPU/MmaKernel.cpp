//===- MmaKernel.cpp - tensor-core attention kernel (mma.sync) ------------===//
//
// The FlashAttention-2 kernel on sm_80+ tensor cores, for f16 and bf16 with
// head dims
// that are multiples of 16 up to 128. A block of 4 warps owns 64 query rows
// (16 per warp); K and V go through a two-stage cp.async pipeline of 64 keys
// per step (32 for head dims above 64), the next tile loading while the
// current one is computed; each step:
//
//   1. S = Q·Kᵀ with nvgpu.mma.sync m16n8k16: Q fragments are loaded once
//      with ldmatrix (x4), K fragments with ldmatrix (x2, K rows are the
//      columns of Kᵀ).
//   2. Scale (log2 e folded), softcap, bias, and the mask of the band on the
//      accumulator fragments: thread t of a quad holds row g = lane / 4 (and
//      g + 8), columns 2t, 2t + 1 of each 8-key tile.
//   3. Row maxima with two quad shuffles; m' = max(m, rowmax); alpha and
//      P = exp2(S - m') as in attn-tile; per-thread partial row sums.
//   4. O = O·alpha + P·V: the S accumulators of two adjacent key tiles are
//      exactly the A fragment of the next m16n8k16 (converted to f16); V
//      fragments come from ldmatrix.trans.
//   5. After the loop the quad's partial sums are added and O / l is
//      written (0 for rows without keys; LSE if requested).
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/AttnToGPU.h"
#include "attn/IR/AttnOps.h"
#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;

static constexpr int64_t kRows = 64, kThreads = 128;

int64_t mlir::attn::getMmaKeysPerStep(int64_t d, int64_t dv) {
  // Two stages of K and V plus Q must fit the 48 KB of static shared memory.
  return (d <= 64 && dv <= 64) ? 64 : 32;
}

bool mlir::attn::isMmaKernelEligible(AttentionOp op) {
  AttentionShape s = op.getAttentionShape();
  Type elt = op.getOutput().getType().getElementType();
  if (!(elt.isF16() || elt.isBF16()) || ShapedType::isDynamic(s.headDim) ||
      ShapedType::isDynamic(s.valueHeadDim) || s.headDim % 16 != 0 ||
      s.valueHeadDim % 16 != 0 || s.headDim > 128 || s.valueHeadDim > 128 ||
      !op.getEffectiveScale().has_value())
    return false;
  // Every thread issues whole 16-byte copies of each tile.
  int64_t keys = getMmaKeysPerStep(s.headDim, s.valueHeadDim);
  return (keys * s.headDim) % (kThreads * 8) == 0 &&
         (keys * s.valueHeadDim) % (kThreads * 8) == 0;
}

void mlir::attn::buildMmaKernelBody(OpBuilder &builder, gpu::GPUFuncOp func,
                                    AttentionOp op, const MmaKernelArgs &args) {
  MLIRContext *ctx = builder.getContext();
  Location loc = op.getLoc();
  ImplicitLocOpBuilder b(loc, builder);
  AttentionShape shape = op.getAttentionShape();
  const int64_t D = shape.headDim, Dv = shape.valueHeadDim;
  const int64_t kKeys = getMmaKeysPerStep(D, Dv);
  const double log2e = 1.4426950408889634, ln2 = 0.6931471805599453;
  // The element type of the tiles and fragments: f16 or bf16.
  Type f16 = op.getOutput().getType().getElementType(), f32 = b.getF32Type();
  bool bshd = op.getLayout() == Layout::BSHD;
  MaskAttr mask = op.getMaskOrNone();
  std::optional<double> softcap;
  if (std::optional<APFloat> c = op.getSoftcap())
    softcap = c->convertToDouble();
  double scale = *op.getEffectiveScale();

  auto idx = [&](int64_t v) -> Value { return arith::ConstantIndexOp::create(b, v); };
  auto cf = [&](double v) -> Value {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
  };
  auto add = [&](Value x, Value y) -> Value { return arith::AddIOp::create(b, x, y); };
  auto sub = [&](Value x, Value y) -> Value { return arith::SubIOp::create(b, x, y); };
  auto mul = [&](Value x, Value y) -> Value { return arith::MulIOp::create(b, x, y); };
  auto divu = [&](Value x, Value y) -> Value { return arith::DivUIOp::create(b, x, y); };
  auto remu = [&](Value x, Value y) -> Value { return arith::RemUIOp::create(b, x, y); };
  auto smin = [&](Value x, Value y) -> Value { return arith::MinSIOp::create(b, x, y); };
  auto smax = [&](Value x, Value y) -> Value { return arith::MaxSIOp::create(b, x, y); };
  auto slt = [&](Value x, Value y) -> Value {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::slt, x, y);
  };

  Value qArg = args.q, kArg = args.k, vArg = args.v, oArg = args.o;
  Value hq = args.hq, hkv = args.hkv, sq = args.sq, sk = args.sk;
  Value qS = func.getWorkgroupAttributions()[0];
  Value kS = func.getWorkgroupAttributions()[1];
  Value vS = func.getWorkgroupAttributions()[2];

  Value bx = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value h = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value bIdx = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value c32 = idx(32), c4 = idx(4), c0 = idx(0), c1 = idx(1);
  Value warp = divu(tid, c32), lane = remu(tid, c32);
  Value g = divu(lane, c4), t = remu(lane, c4);
  Value q0 = mul(bx, idx(kRows));
  Value group = divu(hq, hkv);
  Value kvh = divu(h, group);
  Value off = sub(sk, sq);

  auto rowOffset = [&](Value heads, Value seqLen, Value head, Value s,
                       int64_t dim) {
    Value r = bshd ? add(mul(add(mul(bIdx, seqLen), s), heads), head)
                   : add(mul(add(mul(bIdx, heads), head), seqLen), s);
    return mul(r, idx(dim));
  };
  // Shared-memory tiles are stored with their 16-byte chunks XOR-swizzled by
  // the row (chunk' = chunk ^ (row % 8)) when a row has a multiple of 8
  // chunks: the 8 rows an ldmatrix reads then fall in 8 different bank
  // groups instead of one. Every access here is chunk-aligned (the column is
  // a multiple of 8 elements), so writer and readers agree.
  auto swizzle = [&](Value r, Value c, int64_t dim) -> Value {
    if ((dim / 8) % 8 != 0)
      return c;
    Value chunk = arith::XOrIOp::create(b, divu(c, idx(8)), remu(r, idx(8)));
    return mul(chunk, idx(8));
  };

  // Copies a [64, dim] tile asynchronously (cp.async, 16 bytes = 8 elements
  // per copy, zero-filled past `limit`): 64 * dim / 1024 copies per thread,
  // unrolled, committed as one group and waited for.
  auto asyncTokenType = nvgpu::DeviceAsyncTokenType::get(ctx);
  // Issues the cp.async copies of a [rows, dim] tile (16 bytes = 8 elements
  // per copy, zero-filled past `limit`) into `smem` (at `stage` when the
  // buffer has one), rows*dim/1024 copies per thread, as one group.
  auto issueTile = [&](Value src, Value smem, std::optional<Value> stage,
                       int64_t rows, Value heads, Value seqLen, Value head,
                       Value row0, Value limit, int64_t dim) {
    SmallVector<Value> tokens;
    for (int64_t k = 0; k < rows * dim / (kThreads * 8); ++k) {
      Value e = mul(add(tid, idx(k * kThreads)), idx(8));
      Value r = divu(e, idx(dim)), c = remu(e, idx(dim));
      Value row = add(row0, r);
      Value inside = slt(row, limit);
      // Rows past the end read nothing (size 0) from a valid address.
      Value safeRow = arith::SelectOp::create(b, inside, row, c0);
      Value count = arith::SelectOp::create(b, inside, idx(8), c0);
      SmallVector<Value> dst;
      if (stage)
        dst.push_back(*stage);
      dst.append({r, swizzle(r, c, dim)});
      tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
          b, asyncTokenType, smem, dst, src,
          ValueRange{add(rowOffset(heads, seqLen, head, safeRow, dim), c)},
          b.getIndexAttr(8), count, /*bypassL1=*/UnitAttr()));
    }
    return Value(nvgpu::DeviceAsyncCreateGroupOp::create(
        b, nvgpu::DeviceAsyncTokenType::get(ctx), tokens));
  };
  // Waits until at most `pending` cp.async groups of this thread are in
  // flight. The op names a group token, but its lowering waits on counts
  // (cp.async.wait_group), so any dominating group token will do.
  Value anyGroup;
  auto waitGroups = [&](int32_t pending) {
    nvgpu::DeviceAsyncWaitOp::create(b, anyGroup, b.getI32IntegerAttr(pending));
  };

  // Q tile and its fragments (kept in registers for the whole kernel).
  anyGroup = issueTile(qArg, qS, std::nullopt, kRows, hq, sq, h, q0, sq, D);
  waitGroups(0);
  gpu::BarrierOp::create(b);
  auto aType = VectorType::get({4, 2}, f16);
  auto bType = VectorType::get({2, 2}, f16);
  auto cType = VectorType::get({2, 2}, f32);
  // D = A·B + C for one m16n8k16 tile. nvgpu.mma.sync handles f16; for bf16
  // (which nvgpu.mma.sync in LLVM 22 rejects) nvvm.mma.sync is emitted
  // directly, each row of A and B packed into one 32-bit register.
  auto mmaSync = [&](Value a, Value bv, Value c) -> Value {
    if (f16.isF16())
      return nvgpu::MmaSyncOp::create(b, a, bv, c, ArrayRef<int64_t>{16, 8, 16});
    Type i32 = b.getI32Type();
    auto pack = [&](Value v, int64_t rows) {
      SmallVector<Value> regs;
      for (int64_t r = 0; r < rows; ++r) {
        Value pair = vector::ExtractOp::create(b, v, ArrayRef<int64_t>{r});
        Value word = vector::BitCastOp::create(
            b, VectorType::get({1}, i32), pair);
        regs.push_back(vector::ExtractOp::create(b, word, ArrayRef<int64_t>{0}));
      }
      return regs;
    };
    SmallVector<Value> cRegs;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 2; ++j)
        cRegs.push_back(vector::ExtractOp::create(b, c, ArrayRef<int64_t>{i, j}));
    Type resultType = LLVM::LLVMStructType::getLiteral(ctx, {f32, f32, f32, f32});
    Value d = NVVM::MmaOp::create(
        b, resultType, pack(a, 4), pack(bv, 2), cRegs,
        ArrayRef<int64_t>{16, 8, 16}, std::nullopt, std::nullopt,
        std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16, NVVM::MMATypes::bf16},
        std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row, NVVM::MMALayout::col});
    SmallVector<Value> elems;
    for (int64_t e = 0; e < 4; ++e)
      elems.push_back(LLVM::ExtractValueOp::create(b, d, ArrayRef<int64_t>{e}));
    return vector::FromElementsOp::create(b, cType, elems);
  };
  SmallVector<Value> qa;
  Value warpRow = mul(warp, idx(16));
  for (int64_t kk = 0; kk < D / 16; ++kk) {
    Value r = add(warpRow, remu(lane, idx(16)));
    Value c = add(idx(kk * 16), mul(divu(lane, idx(16)), idx(8)));
    qa.push_back(nvgpu::LdMatrixOp::create(b, aType, qS,
                                           ValueRange{r, swizzle(r, c, D)},
                                           /*transpose=*/false, 4));
  }

  // Rows of this thread (g and g + 8 of the warp's 16) and their band.
  Value row[2] = {add(add(q0, warpRow), g), add(add(add(q0, warpRow), g), idx(8))};
  auto band = [&](Value r) {
    return buildAdmittedKeys(b, loc, mask, add(r, off), sk);
  };
  Value lastRow = sub(smin(add(q0, idx(kRows)), sq), c1);
  Value kbBegin = divu(band(q0).first, idx(kKeys));
  Value kbEnd = arith::CeilDivSIOp::create(b, band(lastRow).second, idx(kKeys));

  // Initial state: m (two rows), l (partial, two rows), O fragments.
  Value m0 = cf(-INFINITY), l0 = cf(0.0);
  if (args.sinks) {
    Value s = memref::LoadOp::create(b, args.sinks, h);
    if (s.getType() != f32)
      s = arith::ExtFOp::create(b, f32, s);
    m0 = arith::MulFOp::create(b, s, cf(log2e));
    // The sink's weight is added once per row, by thread t = 0 of the quad.
    l0 = arith::SelectOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, t, c0), cf(1.0),
        cf(0.0));
  }
  Value zeroAcc = arith::ConstantOp::create(
      b, DenseElementsAttr::get(cType, b.getF32FloatAttr(0.0)));
  SmallVector<Value> init = {m0, m0, l0, l0};
  for (int64_t e = 0; e < Dv / 8; ++e)
    init.push_back(zeroAcc);

  // Prologue of the two-stage pipeline: the first K/V tile into stage 0.
  auto issueKV = [&](Value kbIdx, Value stage) {
    Value k0 = mul(kbIdx, idx(kKeys));
    issueTile(kArg, kS, stage, kKeys, hkv, sk, kvh, k0, sk, D);
    issueTile(vArg, vS, stage, kKeys, hkv, sk, kvh, k0, sk, Dv);
  };
  issueKV(kbBegin, c0);

  auto loop = scf::ForOp::create(
      b, loc, kbBegin, smax(kbBegin, kbEnd), c1, init,
      [&](OpBuilder &nb, Location, Value kb, ValueRange iter) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        Value k0 = mul(kb, idx(kKeys));
        Value stage = remu(sub(kb, kbBegin), idx(2));
        // This step's tile has landed, and every warp is done with the other
        // stage: prefetch the next tile into it while computing on this one.
        waitGroups(0);
        gpu::BarrierOp::create(b);
        issueKV(add(kb, c1), sub(c1, stage));

        // Step 1: S = Q·Kᵀ, 8 key tiles of 8.
        SmallVector<Value> s;
        for (int64_t n = 0; n < kKeys / 8; ++n) {
          Value acc = zeroAcc;
          for (int64_t kk = 0; kk < D / 16; ++kk) {
            Value r = add(idx(n * 8), remu(lane, idx(8)));
            Value c = add(idx(kk * 16), mul(remu(divu(lane, idx(8)), idx(2)), idx(8)));
            Value kf = nvgpu::LdMatrixOp::create(b, bType, kS,
                                                 ValueRange{stage, r, swizzle(r, c, D)},
                                                 /*transpose=*/false, 2);
            acc = mmaSync(qa[kk], kf, acc);
          }
          s.push_back(acc);
        }

        // Step 2: logits in the exp2 domain, masked outside the band.
        Value factor = cf(scale * (softcap ? 1.0 / *softcap : log2e));
        Value ninf = cf(-INFINITY);
        SmallVector<SmallVector<Value, 4>> x(kKeys / 8); // [n][i*2 + j]
        for (int64_t n = 0; n < kKeys / 8; ++n) {
          for (int64_t i = 0; i < 2; ++i) {
            for (int64_t j = 0; j < 2; ++j) {
              Value v = vector::ExtractOp::create(b, s[n], ArrayRef<int64_t>{i, j});
              v = arith::MulFOp::create(b, v, factor);
              if (softcap)
                v = arith::MulFOp::create(b, math::TanhOp::create(b, v),
                                          cf(*softcap * log2e));
              Value key = add(add(k0, idx(n * 8 + j)), mul(t, idx(2)));
              if (args.bias) {
                Value sizes[4] = {args.batch, hq, sq, sk};
                Value coords[4] = {bIdx, h, row[i], key};
                Value boff = c0;
                Value inb = slt(row[i], sq);
                inb = arith::AndIOp::create(b, inb, slt(key, sk));
                for (unsigned d = 0; d < 4; ++d) {
                  Value size = args.biasBroadcast[d] ? c1 : sizes[d];
                  Value coord = args.biasBroadcast[d] ? c0 : coords[d];
                  boff = add(mul(boff, size), coord);
                }
                // Out-of-range rows/keys read element 0 (masked anyway).
                boff = arith::SelectOp::create(b, inb, boff, c0);
                Value bv = memref::LoadOp::create(b, args.bias, boff);
                if (bv.getType() != f32)
                  bv = arith::ExtFOp::create(b, f32, bv);
                v = arith::AddFOp::create(b, v,
                                          arith::MulFOp::create(b, bv, cf(log2e)));
              }
              Value ok = slt(key, sk);
              if (Value inBand =
                      buildAdmitsKey(b, loc, mask, add(row[i], off), key))
                ok = arith::AndIOp::create(b, ok, inBand);
              x[n].push_back(arith::SelectOp::create(b, ok, v, ninf));
            }
          }
        }

        // Step 3: row maxima across the quad, new running max, P, alpha.
        SmallVector<Value> mNew(2), mSafe(2), alpha(2), lNew(2);
        for (int64_t i = 0; i < 2; ++i) {
          Value mx = iter[i];
          for (int64_t n = 0; n < kKeys / 8; ++n)
            for (int64_t j = 0; j < 2; ++j)
              mx = arith::MaximumFOp::create(b, mx, x[n][i * 2 + j]);
          for (int32_t o : {1, 2})
            mx = arith::MaximumFOp::create(
                b, mx,
                gpu::ShuffleOp::create(b, mx, o, 32, gpu::ShuffleMode::XOR)
                    .getShuffleResult());
          mNew[i] = mx;
          Value isNinf = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx,
                                               ninf);
          mSafe[i] = arith::SelectOp::create(b, isNinf, cf(0.0), mx);
          alpha[i] = math::Exp2Op::create(
              b, arith::SubFOp::create(b, iter[i], mSafe[i]));
          lNew[i] = arith::MulFOp::create(b, iter[2 + i], alpha[i]);
        }
        SmallVector<SmallVector<Value, 4>> p(kKeys / 8);
        for (int64_t n = 0; n < kKeys / 8; ++n)
          for (int64_t i = 0; i < 2; ++i)
            for (int64_t j = 0; j < 2; ++j) {
              Value e = math::Exp2Op::create(
                  b, arith::SubFOp::create(b, x[n][i * 2 + j], mSafe[i]));
              lNew[i] = arith::AddFOp::create(b, lNew[i], e);
              p[n].push_back(e);
            }

        // Step 4: O = O·alpha + P·V.
        SmallVector<Value> o;
        for (int64_t e = 0; e < Dv / 8; ++e) {
          Value acc = iter[4 + e];
          for (int64_t i = 0; i < 2; ++i)
            for (int64_t j = 0; j < 2; ++j) {
              Value a = vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j});
              acc = vector::InsertOp::create(
                  b, arith::MulFOp::create(b, a, alpha[i]), acc,
                  ArrayRef<int64_t>{i, j});
            }
          o.push_back(acc);
        }
        for (int64_t kk = 0; kk < kKeys / 16; ++kk) {
          SmallVector<Value> elems;
          // a0a1: tile 2kk row g; a2a3: tile 2kk row g+8; a4a5, a6a7: 2kk+1.
          for (int64_t n : {2 * kk, 2 * kk + 1})
            for (int64_t i = 0; i < 2; ++i)
              for (int64_t j = 0; j < 2; ++j)
                elems.push_back(arith::TruncFOp::create(b, f16, p[n][i * 2 + j]));
          SmallVector<Value> reordered = {elems[0], elems[1], elems[2], elems[3],
                                          elems[4], elems[5], elems[6], elems[7]};
          Value pa = vector::FromElementsOp::create(b, aType, reordered);
          for (int64_t e = 0; e < Dv / 8; ++e) {
            Value r = add(idx(kk * 16), add(remu(lane, idx(8)),
                                            mul(remu(divu(lane, idx(8)), idx(2)), idx(8))));
            Value vf = nvgpu::LdMatrixOp::create(
                b, bType, vS, ValueRange{stage, r, swizzle(r, idx(e * 8), Dv)},
                                                 /*transpose=*/true, 2);
            o[e] = mmaSync(pa, vf, o[e]);
          }
        }
        SmallVector<Value> yields = {mNew[0], mNew[1], lNew[0], lNew[1]};
        llvm::append_range(yields, o);
        scf::YieldOp::create(b, yields);
      });

  // Drain the last (unused) prefetch before the block exits.
  waitGroups(0);

  // Step 5: quad-reduce the row sums, normalize, write.
  for (int64_t i = 0; i < 2; ++i) {
    Value l = loop.getResult(2 + i);
    for (int32_t o : {1, 2})
      l = arith::AddFOp::create(
          b, l,
          gpu::ShuffleOp::create(b, l, o, 32, gpu::ShuffleMode::XOR)
              .getShuffleResult());
    Value m = loop.getResult(i);
    Value empty = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, l, cf(0.0));
    Value inRange = slt(row[i], sq);
    auto ifOp = scf::IfOp::create(b, inRange, /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    Value oBase = rowOffset(hq, sq, h, row[i], Dv);
    for (int64_t e = 0; e < Dv / 8; ++e)
      for (int64_t j = 0; j < 2; ++j) {
        Value a = vector::ExtractOp::create(b, loop.getResult(4 + e),
                                            ArrayRef<int64_t>{i, j});
        Value v = arith::DivFOp::create(b, a, l);
        v = arith::SelectOp::create(b, empty, cf(0.0), v);
        v = arith::TruncFOp::create(b, f16, v);
        Value col = add(idx(e * 8 + j), mul(t, idx(2)));
        memref::StoreOp::create(b, v, oArg, add(oBase, col));
      }
    if (args.lse) {
      Value r = arith::MulFOp::create(
          b, arith::AddFOp::create(b, m, math::Log2Op::create(b, l)), cf(ln2));
      r = arith::SelectOp::create(b, empty, cf(-INFINITY), r);
      Value isT0 = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, t, c0);
      auto store = scf::IfOp::create(b, isT0, /*withElse=*/false);
      b.setInsertionPointToStart(&store.getThenRegion().front());
      memref::StoreOp::create(b, r, args.lse,
                              add(mul(add(mul(bIdx, hq), h), sq), row[i]));
    }
  }
  (void)ctx;
}
