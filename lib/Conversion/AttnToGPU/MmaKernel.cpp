//===- MmaKernel.cpp - tensor-core attention kernel (mma.sync) ------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The FlashAttention-2 kernel on sm_80+ tensor cores, for f16 and bf16 with
// head dims that are multiples of 16 up to 256. A block of 4 warps owns 64 or
// 128 query rows (one or two 16-row MMA tiles per warp, see MmaTiling); K and
// V go through a two-stage cp.async pipeline of `keys` rows per step, the
// next tile loading while the current one is computed. Shared memory is one
// dynamic array (Q tile, K stages, V stages), its 16-byte chunks
// XOR-swizzled by row. Each step:
//
//   1. S = Q·Kᵀ with m16n8k16 mma.sync: Q fragments by ldmatrix x4 (loaded
//      once when they fit in registers, else per step), K fragments by
//      ldmatrix x4 (two 8-key tiles per load; K rows are the columns of Kᵀ).
//   2. Scale (log2 e folded), softcap, bias on the accumulator fragments:
//      thread t of a quad holds row g = lane / 4 (and g + 8), columns 2t,
//      2t + 1 of each 8-key tile. Blocks that cross the band's edge or the
//      end of the keys also get the per-element mask; the others skip it.
//   3. Row maxima with two quad shuffles; m' = max(m, rowmax); alpha and
//      P = exp2(S - m') as in attn-tile; per-thread partial row sums.
//   4. O = O·alpha + P·V: the S accumulators of two adjacent key tiles are
//      exactly the A fragment of the next m16n8k16 (converted to f16/bf16);
//      V fragments come from ldmatrix.trans x4.
//   5. After the loop the quad's partial sums are added and O / l is
//      written in column pairs (0 for rows without keys; LSE if requested).
//
//===----------------------------------------------------------------------===//

#include "KernelCommon.h"

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

static constexpr int64_t kWarps = 4, kThreads = kWarps * 32;

/// The largest dynamic shared memory of a block on sm_90 (227 KB); sm_80
/// allows 163 KB. The default tilings stay at or below 96 KB.
static constexpr int64_t kMaxSharedMemory = 227 * 1024;

int64_t MmaTiling::sharedMemoryBytes(int64_t d, int64_t dv) const {
  return 2 * (rows() * d + stages * keys * (d + dv));
}

FailureOr<MmaTiling> mlir::attn::getMmaTiling(AttentionOp op, int64_t blockQ,
                                              int64_t blockKV,
                                              std::string *why) {
  auto fail = [&](const Twine &msg) -> FailureOr<MmaTiling> {
    if (why)
      *why = msg.str();
    return failure();
  };
  AttentionShape s = op.getAttentionShape();
  Type elt = op.getOutput().getType().getElementType();
  if (!(elt.isF16() || elt.isBF16()))
    return fail("the tensor-core kernel needs f16 or bf16");
  if (ShapedType::isDynamic(s.headDim) || ShapedType::isDynamic(s.valueHeadDim) ||
      s.headDim % 16 != 0 || s.valueHeadDim % 16 != 0 || s.headDim > 256 ||
      s.valueHeadDim > 256)
    return fail("the tensor-core kernel needs head dims that are multiples of "
                "16 up to 256");
  if (!op.getEffectiveScale().has_value())
    return fail("the tensor-core kernel needs a known scale");
  const int64_t d = s.headDim, dv = s.valueHeadDim, widest = std::max(d, dv);
  // Defaults, from a sweep on the H100/H200 (docs/gpu-results.md): 128 query
  // rows (two 16-row tiles per warp) and 64 keys per step up to head dim 64;
  // at 128, 64 rows and 64 keys for banded masks (less work past the
  // diagonal, more blocks) and 128 rows with 32 keys otherwise; above 128,
  // 64 rows and 32 keys (the O accumulators of a thread grow with Dv).
  MmaTiling t;
  bool banded = op.getMaskOrNone().getKind() != MaskKind::None;
  if (widest <= 64) {
    t.rowTiles = 2;
    t.keys = 64;
  } else if (widest <= 128) {
    t.rowTiles = banded ? 1 : 2;
    t.keys = banded ? 64 : 32;
  } else {
    t.rowTiles = 1;
    t.keys = 32;
  }
  if (blockQ) {
    if (blockQ != 64 && blockQ != 128)
      return fail("block-q must be 64 or 128, got " + Twine(blockQ));
    t.rowTiles = blockQ / (kWarps * 16);
  }
  if (blockKV) {
    if (blockKV != 16 && blockKV != 32 && blockKV != 64 && blockKV != 128)
      return fail("block-kv must be 16, 32, 64 or 128, got " + Twine(blockKV));
    t.keys = blockKV;
  }
  t.qInRegisters = t.rowTiles * d <= 128;
  // Every thread issues whole 16-byte copies of each tile.
  for (int64_t dim : {d, dv})
    if ((t.keys * dim) % (kThreads * 8) != 0)
      return fail("block-kv " + Twine(t.keys) + " with head dim " + Twine(dim) +
                  " does not split into 16-byte copies for " +
                  Twine(kThreads) + " threads");
  if (t.sharedMemoryBytes(d, dv) > kMaxSharedMemory)
    return fail("the tiles need " + Twine(t.sharedMemoryBytes(d, dv)) +
                " bytes of shared memory, more than " +
                Twine(kMaxSharedMemory));
  return t;
}

bool mlir::attn::isMmaKernelEligible(AttentionOp op) {
  return succeeded(getMmaTiling(op, 0, 0, nullptr));
}

// Over 150 lines: one kernel body, written before the phase split of
// issue 19 (kernels from a spec, shared emitter pieces), which owns
// splitting it into named phases with byte-identical PTX.
void mlir::attn::buildMmaKernelBody(OpBuilder &builder, gpu::GPUFuncOp func,
                                    AttentionOp op, const MmaKernelArgs &args,
                                    const MmaTiling &tiling) {
  MLIRContext *ctx = builder.getContext();
  Location loc = op.getLoc();
  ImplicitLocOpBuilder b(loc, builder);
  AttentionShape shape = op.getAttentionShape();
  const int64_t D = shape.headDim, Dv = shape.valueHeadDim;
  const int64_t kRows = tiling.rows(), kKeys = tiling.keys;
  const int64_t kMT = tiling.rowTiles, kStages = tiling.stages;
  const double log2e = 1.4426950408889634, ln2 = 0.6931471805599453;
  // The element type of the tiles and fragments: f16 or bf16.
  Type f16 = op.getOutput().getType().getElementType(), f32 = b.getF32Type();
  bool bshd = op.getLayout() == Layout::BSHD;
  MaskAttr mask = op.getMaskOrNone();
  std::optional<double> softcap;
  if (std::optional<APFloat> c = op.getSoftcap())
    softcap = c->convertToDouble();

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
  auto sle = [&](Value x, Value y) -> Value {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::sle, x, y);
  };

  Value qArg = args.q, kArg = args.k, vArg = args.v, oArg = args.o;
  Value hq = args.hq, hkv = args.hkv, sq = args.sq, sk = args.sk;

  // Shared memory is dynamic (the tiles exceed the 48 KB of static shared
  // memory): an external, 1024-aligned workgroup array that the kernel views
  // as the Q tile and the K and V stages. (gpu.dynamic_shared_memory would
  // lower to a 1-byte static array in LLVM 22; see docs/gpu-results.md.)
  auto workgroup = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  Value smem = detail::getDynamicSharedMemory(builder, loc, func);
  int64_t smemOffset = 0;
  auto carve = [&](ArrayRef<int64_t> dims) -> Value {
    auto type = MemRefType::get(dims, f16, AffineMap(), workgroup);
    Value view = memref::ViewOp::create(b, type, smem, idx(smemOffset),
                                        ValueRange{});
    smemOffset += type.getNumElements() * 2;
    return view;
  };
  Value qS = carve({kRows, D});
  Value kS = carve({kStages, kKeys, D});
  Value vS = carve({kStages, kKeys, Dv});

  // With a banded mask the query blocks near the end have the most keys:
  // they are launched first (block x handles query block gridDim.x - 1 - x)
  // so that the light ones fill the tail of the grid.
  Value bx = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  if (op.getMaskOrNone().getKind() != MaskKind::None)
    bx = arith::SubIOp::create(
        b, arith::SubIOp::create(b, gpu::GridDimOp::create(b, gpu::Dimension::x),
                                 bx),
        arith::ConstantIndexOp::create(b, 1));
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

  // The ldmatrix addresses, written so that LLVM keeps few of them live: a
  // lane reads row `rowThread + rowConst` at 16-byte chunk `chunkConst +
  // bit` (chunkConst even, bit = 0 or 1 from the lane), so the swizzled
  // chunk is (chunkConst & ~7) + ((chunkConst & 7 | bit) ^ lane % 8): a
  // constant plus one of four per-thread values, computed once. The
  // constants then become immediate offsets of the loads instead of one
  // hoisted address register per load.
  Value lane8 = remu(lane, idx(8));
  DenseMap<std::pair<void *, int64_t>, Value> xorChunks;
  auto swizzledCol = [&](int64_t chunkConst, Value bit, int64_t dim) -> Value {
    if ((dim / 8) % 8 != 0)
      return add(mul(bit, idx(8)), idx(chunkConst * 8));
    int64_t m = chunkConst & 7;
    Value &x = xorChunks[{bit.getAsOpaquePointer(), m}];
    if (!x) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointAfter(lane8.getDefiningOp());
      if (Operation *def = bit.getDefiningOp())
        if (def->getBlock() == lane8.getDefiningOp()->getBlock() &&
            lane8.getDefiningOp()->isBeforeInBlock(def))
          b.setInsertionPointAfter(def);
      x = mul(arith::XOrIOp::create(b, add(bit, idx(m)), lane8), idx(8));
    }
    return add(x, idx((chunkConst & ~int64_t(7)) * 8));
  };

  auto asyncTokenType = nvgpu::DeviceAsyncTokenType::get(ctx);
  // Issues the cp.async copies of a [rows, dim] tile (16 bytes = 8 elements
  // per copy, cached in L2 only, zero-filled past `limit`) into `smem` (at `stage` when the
  // buffer has one), rows*dim/(8*threads) copies per thread, as one group.
  auto issueTile = [&](Value src, Value dstBuf, std::optional<Value> stage,
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
          b, asyncTokenType, dstBuf, dst, src,
          ValueRange{add(rowOffset(heads, seqLen, head, safeRow, dim), c)},
          b.getIndexAttr(8), count, /*bypassL1=*/b.getUnitAttr()));
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

  // The Q tile.
  anyGroup = issueTile(qArg, qS, std::nullopt, kRows, hq, sq, h, q0, sq, D);
  waitGroups(0);
  gpu::BarrierOp::create(b);
  auto aType = VectorType::get({4, 2}, f16);
  auto b2Type = VectorType::get({4, 2}, f16);
  auto cType = VectorType::get({2, 2}, f32);
  auto mmaSync = [&](Value a, Value bv, Value c) -> Value {
    return detail::buildMmaSync(b, loc, a, bv, c);
  };
  auto splitPair = [&](Value v) {
    return detail::splitLdMatrixPair(b, loc, v);
  };

  // Warp w owns rows [w * 16 * kMT, (w + 1) * 16 * kMT) of the block, as kMT
  // 16-row MMA tiles. The A fragment (ldmatrix x4) of row tile mt, k-step kk.
  Value warpRow = mul(warp, idx(16 * kMT));
  // Lane roles of the ldmatrix x4 loads: Q (A operand) rows lane % 16,
  // chunk lane / 16; K and V: matrix j = lane / 8, row lane % 8.
  Value qRowT = add(warpRow, remu(lane, idx(16))), qBit = divu(lane, idx(16));
  Value j8 = divu(lane, idx(8));
  Value jLo = remu(j8, idx(2)), jHi = divu(j8, idx(2));
  Value kRowT = add(lane8, mul(jHi, idx(8))), vRowT = add(lane8, mul(jLo, idx(8)));
  auto loadQ = [&](int64_t mt, int64_t kk) -> Value {
    Value r = add(qRowT, idx(mt * 16));
    return nvgpu::LdMatrixOp::create(b, aType, qS,
                                     ValueRange{r, swizzledCol(2 * kk, qBit, D)},
                                     /*transpose=*/false, 4);
  };
  SmallVector<SmallVector<Value>> qa(kMT);
  if (tiling.qInRegisters)
    for (int64_t mt = 0; mt < kMT; ++mt)
      for (int64_t kk = 0; kk < D / 16; ++kk)
        qa[mt].push_back(loadQ(mt, kk));

  // Rows of this thread: g and g + 8 of each of its row tiles, [mt * 2 + i].
  SmallVector<Value> row;
  for (int64_t mt = 0; mt < kMT; ++mt)
    for (int64_t i = 0; i < 2; ++i)
      row.push_back(add(add(add(q0, warpRow), g), idx(mt * 16 + i * 8)));
  const int64_t kR = 2 * kMT;
  detail::ScoreTransform scores(op, args, bIdx, h, c0, c1, /*raw=*/false);
  auto band = [&](Value r) {
    return buildAdmittedKeys(b, loc, mask, add(r, off), sk);
  };
  Value lastRow = sub(smin(add(q0, idx(kRows)), sq), c1);
  auto firstBand = band(q0), lastBand = band(lastRow);
  Value kbBegin = divu(firstBand.first, idx(kKeys));
  Value kbEnd = arith::CeilDivSIOp::create(b, lastBand.second, idx(kKeys));
  // A key block needs no masking when all its keys exist and are admitted by
  // every row of the query block: the band's start only grows with the row
  // and its end never shrinks, so the last row's start and the first row's
  // end bound it.
  Value fullFrom = lastBand.first, fullTo = firstBand.second;

  // Initial state per row: m, l (partial: this thread's columns), O fragments.
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
  // iter_args: m[kR], l[kR], O[kMT][Dv / 8].
  SmallVector<Value> init;
  init.append(kR, m0);
  init.append(kR, l0);
  for (int64_t e = 0; e < kMT * Dv / 8; ++e)
    init.push_back(zeroAcc);
  SmallVector<Type> iterTypes = llvm::to_vector(ValueRange(init).getTypes());

  // Prologue of the pipeline: the first K/V tile into stage 0.
  auto issueKV = [&](Value kbIdx, Value stage) {
    Value k0 = mul(kbIdx, idx(kKeys));
    issueTile(kArg, kS, stage, kKeys, hkv, sk, kvh, k0, sk, D);
    issueTile(vArg, vS, stage, kKeys, hkv, sk, kvh, k0, sk, Dv);
  };
  issueKV(kbBegin, c0);

  // One step of the online softmax over the key block at `k0` in `stage`;
  // `masked` adds the per-element test of the key range and the band.
  auto emitStep = [&](Value k0, Value stage, ValueRange iter,
                      bool masked) -> SmallVector<Value> {
    // Step 1: S = Q·Kᵀ, kKeys / 8 key tiles of 8 per row tile.
    SmallVector<SmallVector<Value>> s(kMT,
                                      SmallVector<Value>(kKeys / 8, zeroAcc));
    for (int64_t kk = 0; kk < D / 16; ++kk) {
      SmallVector<Value> a(kMT);
      for (int64_t mt = 0; mt < kMT; ++mt)
        a[mt] = tiling.qInRegisters ? qa[mt][kk] : loadQ(mt, kk);
      for (int64_t n = 0; n < kKeys / 8; n += 2) {
        // Matrices (n, lo), (n, hi), (n+1, lo), (n+1, hi) of 8x8 each.
        Value kf = nvgpu::LdMatrixOp::create(
            b, b2Type, kS,
            ValueRange{stage, add(kRowT, idx(n * 8)),
                       swizzledCol(2 * kk, jLo, D)},
            /*transpose=*/false, 4);
        auto [k0f, k1f] = splitPair(kf);
        for (int64_t mt = 0; mt < kMT; ++mt) {
          s[mt][n] = mmaSync(a[mt], k0f, s[mt][n]);
          s[mt][n + 1] = mmaSync(a[mt], k1f, s[mt][n + 1]);
        }
      }
    }

    // Step 2: logits in the exp2 domain, masked outside the band.
    // x[mt][n][i * 2 + j]: row tile mt, key tile n, row g + 8i, column 2t + j.
    SmallVector<SmallVector<SmallVector<Value, 4>>> x(
        kMT, SmallVector<SmallVector<Value, 4>>(kKeys / 8));
    for (int64_t mt = 0; mt < kMT; ++mt)
      for (int64_t n = 0; n < kKeys / 8; ++n)
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t j = 0; j < 2; ++j) {
            Value v =
                vector::ExtractOp::create(b, s[mt][n], ArrayRef<int64_t>{i, j});
            x[mt][n].push_back(scores.apply(
                b, loc, v, row[mt * 2 + i],
                [&] { return add(add(k0, idx(n * 8 + j)), mul(t, idx(2))); },
                masked));
          }
    Value ninf = cf(-INFINITY);

    // Step 3: row maxima across the quad, new running max, P, alpha.
    SmallVector<Value> mNew(kR), mSafe(kR), alpha(kR), lNew(kR);
    for (int64_t r = 0; r < kR; ++r) {
      int64_t mt = r / 2, i = r % 2;
      SmallVector<Value> row{iter[r]};
      for (int64_t n = 0; n < kKeys / 8; ++n)
        for (int64_t j = 0; j < 2; ++j)
          row.push_back(x[mt][n][i * 2 + j]);
      Value mx = detail::treeReduce(row, [&](Value a, Value c) -> Value {
        return arith::MaximumFOp::create(b, a, c);
      });
      for (int32_t o : {1, 2})
        mx = arith::MaximumFOp::create(
            b, mx,
            gpu::ShuffleOp::create(b, mx, o, 32, gpu::ShuffleMode::XOR)
                .getShuffleResult());
      mNew[r] = mx;
      // A row without any admitted key so far keeps m = -inf; exponents are
      // then taken against 0 so that they stay exp2(-inf) = 0, not NaN.
      Value isNinf = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx,
                                           ninf);
      mSafe[r] = arith::SelectOp::create(b, isNinf, cf(0.0), mx);
      alpha[r] = math::Exp2Op::create(b, arith::SubFOp::create(b, iter[r], mSafe[r]));
      lNew[r] = arith::MulFOp::create(b, iter[kR + r], alpha[r]);
    }
    SmallVector<SmallVector<SmallVector<Value, 4>>> p(
        kMT, SmallVector<SmallVector<Value, 4>>(kKeys / 8));
    SmallVector<SmallVector<Value>> terms(kR);
    for (int64_t mt = 0; mt < kMT; ++mt)
      for (int64_t n = 0; n < kKeys / 8; ++n)
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t j = 0; j < 2; ++j) {
            int64_t r = mt * 2 + i;
            Value e = math::Exp2Op::create(
                b, arith::SubFOp::create(b, x[mt][n][i * 2 + j], mSafe[r]));
            terms[r].push_back(e);
            p[mt][n].push_back(e);
          }
    for (int64_t r = 0; r < kR; ++r)
      lNew[r] = arith::AddFOp::create(
          b, lNew[r], detail::treeReduce(terms[r], [&](Value a, Value c) {
            return arith::AddFOp::create(b, a, c).getResult();
          }));

    // Step 4: O = O·alpha + P·V. The S accumulators of two adjacent key
    // tiles are exactly the A fragment of the next m16n8k16 (a0a1: tile 2kk
    // row g; a2a3: row g + 8; a4..a7: tile 2kk + 1).
    SmallVector<Value> o;
    for (int64_t mt = 0; mt < kMT; ++mt)
      for (int64_t e = 0; e < Dv / 8; ++e) {
        Value acc = iter[2 * kR + mt * (Dv / 8) + e];
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t j = 0; j < 2; ++j) {
            Value a = vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j});
            acc = vector::InsertOp::create(
                b, arith::MulFOp::create(b, a, alpha[mt * 2 + i]), acc,
                ArrayRef<int64_t>{i, j});
          }
        o.push_back(acc);
      }
    for (int64_t kk = 0; kk < kKeys / 16; ++kk) {
      SmallVector<Value> pa(kMT);
      for (int64_t mt = 0; mt < kMT; ++mt) {
        SmallVector<Value> elems;
        for (int64_t n : {2 * kk, 2 * kk + 1})
          for (int64_t i = 0; i < 2; ++i)
            for (int64_t j = 0; j < 2; ++j)
              elems.push_back(arith::TruncFOp::create(b, f16, p[mt][n][i * 2 + j]));
        pa[mt] = vector::FromElementsOp::create(b, aType, elems);
      }
      for (int64_t e = 0; e < Dv / 8; e += 2) {
        // Matrices (keys lo, e), (keys hi, e), (lo, e+1), (hi, e+1),
        // transposed: the V rows are the k dimension of the product.
        Value vf = nvgpu::LdMatrixOp::create(
            b, b2Type, vS,
            ValueRange{stage, add(vRowT, idx(kk * 16)),
                       swizzledCol(e, jHi, Dv)},
            /*transpose=*/true, 4);
        auto [v0f, v1f] = splitPair(vf);
        for (int64_t mt = 0; mt < kMT; ++mt) {
          Value &o0 = o[mt * (Dv / 8) + e];
          Value &o1 = o[mt * (Dv / 8) + e + 1];
          o0 = mmaSync(pa[mt], v0f, o0);
          o1 = mmaSync(pa[mt], v1f, o1);
        }
      }
    }
    SmallVector<Value> yields(mNew);
    llvm::append_range(yields, lNew);
    llvm::append_range(yields, o);
    return yields;
  };

  auto loop = scf::ForOp::create(
      b, loc, kbBegin, smax(kbBegin, kbEnd), c1, init,
      [&](OpBuilder &nb, Location, Value kb, ValueRange iter) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        Value k0 = mul(kb, idx(kKeys));
        Value stage = remu(sub(kb, kbBegin), idx(kStages));
        // This step's tile has landed, and every warp is done with the other
        // stage: prefetch the next tile into it while computing on this one.
        waitGroups(0);
        gpu::BarrierOp::create(b);
        issueKV(add(kb, c1), remu(add(stage, c1), idx(kStages)));
        // Blocks inside the band for every row (the bulk of a long causal or
        // windowed sequence) skip the per-element mask.
        Value full = arith::AndIOp::create(b, sle(fullFrom, k0),
                                           sle(add(k0, idx(kKeys)), fullTo));
        auto ifOp = scf::IfOp::create(b, iterTypes, full, /*withElse=*/true);
        {
          OpBuilder::InsertionGuard g2(b);
          b.setInsertionPointToStart(&ifOp.getThenRegion().front());
          scf::YieldOp::create(b, emitStep(k0, stage, iter, /*masked=*/false));
          b.setInsertionPointToStart(&ifOp.getElseRegion().front());
          scf::YieldOp::create(b, emitStep(k0, stage, iter, /*masked=*/true));
        }
        scf::YieldOp::create(b, ifOp.getResults());
      });

  // Drain the last (unused) prefetch before the block exits.
  waitGroups(0);

  // Step 5: quad-reduce the row sums, normalize, write.
  for (int64_t r = 0; r < kR; ++r) {
    int64_t mt = r / 2, i = r % 2;
    Value l = loop.getResult(kR + r);
    for (int32_t o : {1, 2})
      l = arith::AddFOp::create(
          b, l,
          gpu::ShuffleOp::create(b, l, o, 32, gpu::ShuffleMode::XOR)
              .getShuffleResult());
    Value m = loop.getResult(r);
    Value empty = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, l, cf(0.0));
    Value inRange = slt(row[r], sq);
    auto ifOp = scf::IfOp::create(b, inRange, /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    Value oBase = rowOffset(hq, sq, h, row[r], Dv);
    Value inv = arith::DivFOp::create(b, cf(1.0), l);
    for (int64_t e = 0; e < Dv / 8; ++e) {
      SmallVector<Value> pair;
      for (int64_t j = 0; j < 2; ++j) {
        Value a = vector::ExtractOp::create(
            b, loop.getResult(2 * kR + mt * (Dv / 8) + e), ArrayRef<int64_t>{i, j});
        Value v = arith::MulFOp::create(b, a, inv);
        v = arith::SelectOp::create(b, empty, cf(0.0), v);
        pair.push_back(arith::TruncFOp::create(b, f16, v));
      }
      Value col = add(idx(e * 8), mul(t, idx(2)));
      vector::StoreOp::create(
          b, vector::FromElementsOp::create(b, VectorType::get({2}, f16), pair),
          oArg, ValueRange{add(oBase, col)}, /*nontemporal=*/false,
          llvm::MaybeAlign(4));
    }
    if (args.lse) {
      Value lr = arith::MulFOp::create(
          b, arith::AddFOp::create(b, m, math::Log2Op::create(b, l)), cf(ln2));
      lr = arith::SelectOp::create(b, empty, cf(-INFINITY), lr);
      Value isT0 = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, t, c0);
      auto store = scf::IfOp::create(b, isT0, /*withElse=*/false);
      b.setInsertionPointToStart(&store.getThenRegion().front());
      memref::StoreOp::create(b, lr, args.lse,
                              add(mul(add(mul(bIdx, hq), h), sq), row[r]));
    }
  }
}
