//===- WgmmaKernel.cpp - Hopper attention kernel (TMA + wgmma) ------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The sm_90a kernel: FlashAttention-3's design, generated from nvgpu/nvvm ops.
// A block of 384 threads owns 128 query rows of one (batch, query head):
//
//   warpgroup 0, 1  consumers, 64 query rows each, 240 registers a thread
//   warpgroup 2     producer (one thread issues every TMA copy), 24 registers
//
// Shared memory (dynamic, 1024-aligned; every tile is 128-byte swizzled, in
// panels of 64 columns = 128-byte rows, as the TMA boxes land them):
//
//   Q        128 rows x D
//   K stages 2 x keys x D        (separate rings for K and V: a K tile is
//   V stages 2 x keys x Dv        released after S, its V tile after P·V)
//   P        2 buffers x 2 warpgroups x 64 rows x keys
//
// mbarriers (static): kFull[2], vFull[2] (count 1 + TMA bytes), kEmpty[2],
// vEmpty[2] (count 8: lane 0 of every consumer warp), qFull. Named barriers:
// 0 = whole block (setup only), 1 + w = warpgroup w (P published), 3 + w =
// warpgroup w's GEMM turn (ping-pong, 256 threads).
//
// A consumer warpgroup runs, for key blocks j = 0 .. n-1 of its band:
//
//   prologue   [turn] S_0 = Q·K_0ᵀ [pass]; wait; softmax_0 -> P_0
//   step j     [turn] issue S_j, issue O += P_{j-1}·V_{j-1} [pass];
//              wait S_j, release K_j; softmax_j -> P_j (overlaps the P·V on
//              the tensor cores); wait P·V, release V_{j-1}; O *= alpha_j
//   epilogue   O += P_{n-1}·V_{n-1}; normalize; store O (and the LSE)
//
//   * Both GEMMs are m64nNk16 wgmma from shared-memory matrix descriptors:
//     Q, K and P K-major; V MN-major (transposed). P goes through shared
//     memory because LLVM 22's nvvm.wgmma.mma_async has no register-A form;
//     its generic-proxy stores are fenced for the async proxy.
//   * The online softmax runs on the accumulator registers: wgmma's f32
//     accumulator puts row 16·warp + lane / 4 (+ 8) and columns 2·(lane % 4)
//     (+ 1) of every 8-column group in a thread, as mma.sync does, so the row
//     statistics need two quad shuffles. Without softcap or bias the scale is
//     folded into the exponent's FMA (ex2.approx.ftz).
//   * Key blocks outside the band are skipped, blocks inside it skip the
//     per-element mask, banded masks launch the heaviest query blocks first,
//     GQA by index arithmetic, as in the mma.sync kernel.
//
// The host passes one CUtensorMap per Q, K and V (in global memory): 4-D maps
// over the tensor's layout with boxes of 64 columns (128 bytes) by the tile's
// rows; the manifest lists them as "tensormap" parameters.
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

/// Query rows per warpgroup and per block, keys per step.
static constexpr int64_t kWgRows = 64, kWarpgroups = 2;
static constexpr int64_t kBlockRows = kWgRows * kWarpgroups;
static constexpr int64_t kConsumerThreads = kWarpgroups * 128;
static constexpr int64_t kConsumerWarps = kConsumerThreads / 32;

int64_t WgmmaTiling::sharedMemoryBytes(int64_t d, int64_t dv) const {
  int64_t q = kBlockRows * d * 2;
  int64_t kv = stages * keys * (d + dv) * 2;
  int64_t p = 2 * kWarpgroups * kWgRows * keys * 2;
  return q + kv + p;
}

FailureOr<WgmmaTiling> mlir::attn::getWgmmaTiling(AttentionOp op,
                                                  std::string *why) {
  auto fail = [&](const Twine &msg) -> FailureOr<WgmmaTiling> {
    if (why)
      *why = msg.str();
    return failure();
  };
  AttentionShape s = op.getAttentionShape();
  Type elt = op.getOutput().getType().getElementType();
  if (!(elt.isF16() || elt.isBF16()))
    return fail("the wgmma kernel needs f16 or bf16");
  if (ShapedType::isDynamic(s.headDim) || s.headDim != s.valueHeadDim ||
      (s.headDim != 64 && s.headDim != 128 && s.headDim != 256))
    return fail("the wgmma kernel needs equal head dims of 64, 128 or 256");
  if (!op.getEffectiveScale().has_value())
    return fail("the wgmma kernel needs a known scale");
  // 128 keys per step; 64 at head dim 256, where Q (64 KB), two K and two V
  // stages and two P buffers per warpgroup must fit 227 KB and O takes 128
  // of a consumer thread's registers. Two stages per ring everywhere: at
  // head dim 64, where four fit (208 KB), four measured 3-5% slower on the
  // H200 (bf16, 16k tokens: 438 -> 426 TFLOP/s, causal 399 -> 379).
  WgmmaTiling t;
  t.keys = s.headDim == 256 ? 64 : 128;
  t.stages = 2;
  return t;
}

// Over 150 lines: one kernel body, written before the phase split of
// issue 19 (kernels from a spec, shared emitter pieces), which owns
// splitting it into named phases with byte-identical PTX.
void mlir::attn::buildWgmmaKernelBody(OpBuilder &builder, gpu::GPUFuncOp func,
                                      AttentionOp op, const MmaKernelArgs &args,
                                      ValueRange tmaDescriptors,
                                      const WgmmaTiling &tiling) {
  MLIRContext *ctx = builder.getContext();
  Location loc = op.getLoc();
  ImplicitLocOpBuilder b(loc, builder);
  AttentionShape shape = op.getAttentionShape();
  const int64_t D = shape.headDim, Dv = shape.valueHeadDim;
  const int64_t N = tiling.keys;
  const int64_t kStages = tiling.stages;
  const double log2e = 1.4426950408889634, ln2 = 0.6931471805599453;
  Type f16 = op.getOutput().getType().getElementType(), f32 = b.getF32Type();
  Type i64 = b.getI64Type();
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
  auto ci64 = [&](int64_t v) -> Value {
    return arith::ConstantOp::create(b, b.getI64IntegerAttr(v));
  };
  auto add = [&](Value x, Value y) -> Value { return arith::AddIOp::create(b, x, y); };
  auto sub = [&](Value x, Value y) -> Value { return arith::SubIOp::create(b, x, y); };
  auto mul = [&](Value x, Value y) -> Value { return arith::MulIOp::create(b, x, y); };
  auto divu = [&](Value x, Value y) -> Value { return arith::DivUIOp::create(b, x, y); };
  auto remu = [&](Value x, Value y) -> Value { return arith::RemUIOp::create(b, x, y); };
  auto smin = [&](Value x, Value y) -> Value { return arith::MinSIOp::create(b, x, y); };
  auto smax = [&](Value x, Value y) -> Value { return arith::MaxSIOp::create(b, x, y); };
  auto cmp = [&](arith::CmpIPredicate p, Value x, Value y) -> Value {
    return arith::CmpIOp::create(b, p, x, y);
  };
  auto slt = [&](Value x, Value y) { return cmp(arith::CmpIPredicate::slt, x, y); };
  auto sle = [&](Value x, Value y) { return cmp(arith::CmpIPredicate::sle, x, y); };
  // Emits `body` for thread 0 of the block only.
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value c0 = idx(0), c1 = idx(1);
  auto ifThread0 = [&](function_ref<void()> body) {
    auto ifOp = scf::IfOp::create(b, cmp(arith::CmpIPredicate::eq, tid, c0),
                                  /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    body();
  };

  Value hq = args.hq, hkv = args.hkv, sq = args.sq, sk = args.sk;
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
  Value wg = divu(tid, idx(128)), lt = remu(tid, idx(128));
  Value warp = divu(lt, idx(32)), lane = remu(lt, idx(32));
  Value g = divu(lane, idx(4)), t = remu(lane, idx(4));
  Value q0 = mul(bx, idx(kBlockRows));
  Value kvh = divu(h, divu(hq, hkv));
  Value off = sub(sk, sq);

  // Shared memory: Q panels, K and V stages (panels of 64 columns, each
  // `rows` x 128 bytes, as the TMA boxes land them), then P per warpgroup.
  auto workgroup = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  Value smem = detail::getDynamicSharedMemory(builder, loc, func);
  const int64_t qPanels = D / 64, vPanels = Dv / 64;
  const int64_t qBytes = kBlockRows * D * 2;
  const int64_t kStageBytes = N * D * 2, vStageBytes = N * Dv * 2;
  const int64_t kBase = qBytes, vBase = kBase + kStages * kStageBytes;
  const int64_t pBase = vBase + kStages * vStageBytes;
  const int64_t pWgBytes = kWgRows * N * 2;
  // The byte address of shared memory, for the wgmma descriptors.
  Value smemAddr = arith::IndexCastUIOp::create(
      b, i64, memref::ExtractAlignedPointerAsIndexOp::create(b, smem));

  // TMA: the box of each descriptor is 64 columns by `rows` rows; its
  // destination is a view of that shape.
  auto tmaBoxType = [&](int64_t rows) -> MemRefType {
    SmallVector<int64_t> dims = bshd ? SmallVector<int64_t>{1, rows, 1, 64}
                                     : SmallVector<int64_t>{1, 1, rows, 64};
    return MemRefType::get(dims, f16, AffineMap(), workgroup);
  };
  auto view = [&](MemRefType type, Value byteOffset) -> Value {
    return memref::ViewOp::create(b, type, smem, byteOffset, ValueRange{});
  };
  // mbarriers, per stage s: kFull[s] / vFull[s] (the K / V tile landed),
  // kEmpty[s] / vEmpty[s] (every consumer warp is done with it); then Q.
  // K and V have their own rings: a K tile is released as soon as its S is
  // computed, its V tile only after the next step's P·V.
  auto barrierType =
      nvgpu::MBarrierGroupType::get(ctx, workgroup, 4 * kStages + 1);
  Value barriers = nvgpu::MBarrierCreateOp::create(b, barrierType);
  Value qBarrier = idx(4 * kStages);
  auto kFull = [&](Value st) { return st; };
  auto vFull = [&](Value st) { return add(st, idx(kStages)); };
  auto kEmpty = [&](Value st) { return add(st, idx(2 * kStages)); };
  auto vEmpty = [&](Value st) { return add(st, idx(3 * kStages)); };
  // Coordinates (innermost first) of the box at column `col`, row `row` of
  // head `head`.
  auto coords = [&](int64_t col, Value row, Value head) -> SmallVector<Value> {
    if (bshd)
      return {idx(col), head, row, bIdx};
    return {idx(col), row, head, bIdx};
  };
  auto tmaLoad = [&](Value desc, MemRefType type, int64_t byteOffset,
                     Value dynOffset, ArrayRef<Value> crd, Value barrierId) {
    Value dst = view(type, dynOffset ? add(dynOffset, idx(byteOffset))
                                     : idx(byteOffset));
    nvgpu::TmaAsyncLoadOp::create(b, dst, barriers, desc, crd, barrierId,
                                  /*multicastMask=*/Value(),
                                  /*predicate=*/Value());
  };
  Value qDesc = tmaDescriptors[0], kDesc = tmaDescriptors[1],
        vDesc = tmaDescriptors[2];
  // Requests the K (or V) tile of key block `kb` into `stage`: its bytes on
  // the stage's full barrier, one TMA box per 64-column panel.
  auto issueTile = [&](Value desc, int64_t base, int64_t stageBytes,
                       int64_t panels, Value fullBarrier, Value kb,
                       Value stage) {
    nvgpu::MBarrierArriveExpectTxOp::create(b, barriers, idx(stageBytes),
                                            fullBarrier, Value());
    for (int64_t p = 0; p < panels; ++p)
      tmaLoad(desc, tmaBoxType(N), base + p * N * 128,
              mul(stage, idx(stageBytes)), coords(p * 64, mul(kb, idx(N)), kvh),
              fullBarrier);
  };
  auto issueK = [&](Value kb, Value stage) {
    issueTile(kDesc, kBase, kStageBytes, qPanels, kFull(stage), kb, stage);
  };
  auto issueV = [&](Value kb, Value stage) {
    issueTile(vDesc, vBase, vStageBytes, vPanels, vFull(stage), kb, stage);
  };

  // The band of key blocks this block visits, as in the mma.sync kernel.
  auto band = [&](Value r) {
    return buildAdmittedKeys(b, loc, mask, add(r, off), sk);
  };
  Value lastRow = sub(smin(add(q0, idx(kBlockRows)), sq), c1);
  auto firstBand = band(q0), lastBand = band(lastRow);
  Value kbBegin = divu(firstBand.first, idx(N));
  Value kbEnd = smax(kbBegin, arith::CeilDivSIOp::create(b, lastBand.second, idx(N)));
  Value fullFrom = lastBand.first, fullTo = firstBand.second;

  // Prologue: the barriers, visible to every thread before use.
  ifThread0([&] {
    for (int64_t i = 0; i < kStages; ++i) {
      nvgpu::MBarrierInitOp::create(b, barriers, idx(1), kFull(idx(i)), Value());
      nvgpu::MBarrierInitOp::create(b, barriers, idx(1), vFull(idx(i)), Value());
      nvgpu::MBarrierInitOp::create(b, barriers, idx(kConsumerWarps),
                                    kEmpty(idx(i)), Value());
      nvgpu::MBarrierInitOp::create(b, barriers, idx(kConsumerWarps),
                                    vEmpty(idx(i)), Value());
    }
    nvgpu::MBarrierInitOp::create(b, barriers, idx(1), qBarrier, Value());
    NVVM::FenceMbarrierInitOp::create(b);
    for (Value d : tmaDescriptors)
      nvgpu::TmaPrefetchOp::create(b, d, Value());
  });
  gpu::BarrierOp::create(b);
  Value ticks = idx(10000000);
  auto parity = [&](Value p) -> Value {
    return arith::TruncIOp::create(b, b.getI1Type(),
                                   arith::IndexCastUIOp::create(b, i64, p));
  };

  // Warp specialization: the last warpgroup produces (one thread issues
  // every TMA copy) on 24 registers a thread, the two before it consume on
  // 240 (setmaxnreg moves the register file to them).
  auto roles = scf::IfOp::create(
      b, cmp(arith::CmpIPredicate::uge, tid, idx(kConsumerThreads)),
      /*withElse=*/true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&roles.getThenRegion().front());
    NVVM::SetMaxRegisterOp::create(
        b, b.getI32IntegerAttr(24),
        NVVM::SetMaxRegisterActionAttr::get(ctx,
                                            NVVM::SetMaxRegisterAction::decrease));
    auto lane0 = scf::IfOp::create(
        b, cmp(arith::CmpIPredicate::eq, tid, idx(kConsumerThreads)),
        /*withElse=*/false);
    b.setInsertionPointToStart(&lane0.getThenRegion().front());
    nvgpu::MBarrierArriveExpectTxOp::create(b, barriers, idx(qBytes), qBarrier,
                                            Value());
    for (int64_t p = 0; p < qPanels; ++p)
      tmaLoad(qDesc, tmaBoxType(kBlockRows), p * kBlockRows * 128, Value(),
              coords(p * 64, q0, h), qBarrier);
    scf::ForOp::create(
        b, loc, kbBegin, kbEnd, c1, ValueRange{},
        [&](OpBuilder &nb, Location, Value kb, ValueRange) {
          OpBuilder::InsertionGuard g2(b);
          b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          Value i = sub(kb, kbBegin);
          Value stage = remu(i, idx(kStages));
          // From the second round on, wait until the consumers released the
          // stage (phase i / kStages - 1 of its empty barrier); K first, as
          // it is needed first and released first.
          Value phase = remu(add(divu(i, idx(kStages)), c1), idx(2));
          Value again = cmp(arith::CmpIPredicate::uge, i, idx(kStages));
          auto waitEmpty = [&](Value barrierId) {
            auto reuse = scf::IfOp::create(b, again, /*withElse=*/false);
            OpBuilder::InsertionGuard g3(b);
            b.setInsertionPointToStart(&reuse.getThenRegion().front());
            nvgpu::MBarrierTryWaitParityOp::create(b, barriers, parity(phase),
                                                   ticks, barrierId);
          };
          waitEmpty(kEmpty(stage));
          issueK(kb, stage);
          waitEmpty(vEmpty(stage));
          issueV(kb, stage);
          scf::YieldOp::create(b);
        });
  }
  b.setInsertionPointToStart(&roles.getElseRegion().front());
  NVVM::SetMaxRegisterOp::create(
      b, b.getI32IntegerAttr(240),
      NVVM::SetMaxRegisterActionAttr::get(ctx,
                                          NVVM::SetMaxRegisterAction::increase));
  nvgpu::MBarrierTryWaitParityOp::create(b, barriers, parity(c0), ticks,
                                         qBarrier);

  // wgmma matrix descriptor of a 128-byte-swizzled operand at byte `addr`
  // (the swizzle atoms are 8 rows of 128 bytes: stride byte offset 1024;
  // `lbo` is the byte distance between 64-column panels along M/N for
  // MN-major operands, unused for K-major ones).
  auto descriptor = [&](Value addr, int64_t lbo) -> Value {
    Value a = arith::AndIOp::create(b, arith::ShRUIOp::create(b, addr, ci64(4)),
                                    ci64(0x3FFF));
    int64_t fixed = ((lbo >> 4) & 0x3FFF) << 16 | (int64_t(1024 >> 4) << 32) |
                    (int64_t(1) << 62);
    return arith::OrIOp::create(b, a, ci64(fixed));
  };
  // The descriptor of `offset` bytes (a multiple of 16) past the operand of
  // descriptor `base`: the start address field (bits 0-13, in 16-byte
  // units) cannot overflow inside shared memory, so one add of the offset
  // replaces the per-k-step shift, mask and or of `descriptor`.
  auto advance = [&](Value base, int64_t offset) -> Value {
    assert(offset % 16 == 0 && "descriptor offsets are 16-byte units");
    return offset ? arith::AddIOp::create(b, base, ci64(offset >> 4)).getResult()
                  : base;
  };
  auto wgmmaType = [&](Type t) {
    return NVVM::WGMMATypesAttr::get(ctx, t.isF16() ? NVVM::WGMMATypes::f16
                                                    : NVVM::WGMMATypes::bf16);
  };
  auto accType = [&](int64_t n) -> Type {
    return LLVM::LLVMStructType::getLiteral(ctx, SmallVector<Type>(n / 2, f32));
  };
  // acc = A·B (+ acc unless `zeroInit`) over k-steps of 16, A and B by
  // descriptor.
  // Issues acc = A·B (+ acc unless `zeroInit`) over k-steps of 16, A and B
  // by descriptor, as one wgmma group; the caller waits for it.
  auto wgmmaChain = [&](Value acc, int64_t n, int64_t ksteps, bool zeroInit,
                        function_ref<Value(int64_t)> descA,
                        function_ref<Value(int64_t)> descB, bool bMNMajor) {
    NVVM::WgmmaFenceAlignedOp::create(b);
    for (int64_t kk = 0; kk < ksteps; ++kk) {
      acc = NVVM::WgmmaMmaAsyncOp::create(
          b, acc.getType(), acc, descA(kk), descB(kk),
          NVVM::MMAShapeAttr::get(ctx, 64, n, 16), wgmmaType(f16),
          wgmmaType(f16), NVVM::WGMMATypesAttr::get(ctx, NVVM::WGMMATypes::f32),
          NVVM::WGMMAScaleOutAttr::get(ctx, zeroInit && kk == 0
                                                ? NVVM::WGMMAScaleOut::zero
                                                : NVVM::WGMMAScaleOut::one),
          NVVM::WGMMAScaleInAttr::get(ctx, NVVM::WGMMAScaleIn::one),
          NVVM::WGMMAScaleInAttr::get(ctx, NVVM::WGMMAScaleIn::one),
          NVVM::MMALayoutAttr::get(ctx, NVVM::MMALayout::row),
          NVVM::MMALayoutAttr::get(ctx, bMNMajor ? NVVM::MMALayout::row
                                                 : NVVM::MMALayout::col),
          /*satfinite=*/nullptr);
    }
    NVVM::WgmmaGroupSyncAlignedOp::create(b);
    return acc;
  };
  auto waitGroups = [&](int64_t pending) {
    NVVM::WgmmaWaitGroupSyncOp::create(b, b.getI64IntegerAttr(pending));
  };
  // Lane 0 of each consumer warp arrives on `barrierId` (count: all of them).
  auto release = [&](Value barrierId) {
    auto arrive = scf::IfOp::create(b, cmp(arith::CmpIPredicate::eq, lane, c0),
                                    /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&arrive.getThenRegion().front());
    nvgpu::MBarrierArriveOp::create(b, barriers, barrierId);
  };

  // Rows of this thread: g and g + 8 of its warp's 16 in its warpgroup.
  Value wgRow0 = add(q0, mul(wg, idx(kWgRows)));
  Value row[2] = {add(add(wgRow0, mul(warp, idx(16))), g),
                  add(add(add(wgRow0, mul(warp, idx(16))), g), idx(8))};

  Value m0 = cf(-INFINITY), l0 = cf(0.0);
  if (args.sinks) {
    Value s = memref::LoadOp::create(b, args.sinks, h);
    if (s.getType() != f32)
      s = arith::ExtFOp::create(b, f32, s);
    m0 = arith::MulFOp::create(b, s, cf(log2e));
    l0 = arith::SelectOp::create(b, cmp(arith::CmpIPredicate::eq, t, c0),
                                 cf(1.0), cf(0.0));
  }
  Type oType = accType(Dv), sType = accType(N);
  Value oInit = LLVM::PoisonOp::create(b, oType);
  for (int64_t e = 0; e < Dv / 2; ++e)
    oInit = LLVM::InsertValueOp::create(b, oInit, cf(0.0), ArrayRef<int64_t>{e});

  // Addresses of this warpgroup's operands; P has two buffers (P of step j
  // is written while P·V of step j - 1 still reads the other).
  Value qAddr = add(smemAddr, arith::IndexCastUIOp::create(
                                   b, i64, mul(wg, idx(kWgRows * 128))));
  Value pWgByte = add(idx(pBase), mul(wg, idx(2 * pWgBytes)));
  auto pFlatType =
      MemRefType::get({2 * pWgBytes / 2}, f16, AffineMap(), workgroup);
  Value pView = view(pFlatType, pWgByte);
  auto stageAddr = [&](int64_t base, int64_t bytes, Value stage) {
    return add(smemAddr, arith::IndexCastUIOp::create(
                             b, i64, add(idx(base), mul(stage, idx(bytes)))));
  };
  auto pAddr = [&](Value buf) {
    return add(smemAddr, arith::IndexCastUIOp::create(
                             b, i64, add(pWgByte, mul(buf, idx(pWgBytes)))));
  };
  // Position j (relative to the first key block) -> stage and phase parity.
  auto stageOf = [&](Value j) { return remu(j, idx(kStages)); };
  auto phaseOf = [&](Value j) { return parity(remu(divu(j, idx(kStages)), idx(2))); };

  Value qDescBase = descriptor(qAddr, 0);
  // Issues S_j = Q·K_jᵀ (64 x N per warpgroup) once K_j has landed.
  auto issueS = [&](Value j) -> Value {
    Value stage = stageOf(j);
    nvgpu::MBarrierTryWaitParityOp::create(b, barriers, phaseOf(j), ticks,
                                           kFull(stage));
    Value kDescBase = descriptor(stageAddr(kBase, kStageBytes, stage), 0);
    return wgmmaChain(
        LLVM::PoisonOp::create(b, sType), N, D / 16, /*zeroInit=*/true,
        [&](int64_t kk) {
          return advance(qDescBase,
                         (kk / 4) * kBlockRows * 128 + (kk % 4) * 32);
        },
        [&](int64_t kk) {
          return advance(kDescBase, (kk / 4) * N * 128 + (kk % 4) * 32);
        },
        /*bMNMajor=*/false);
  };
  // Issues O += P_j·V_j once V_j has landed (P_j in buffer j % 2).
  auto issuePV = [&](Value j, Value o) -> Value {
    Value stage = stageOf(j);
    nvgpu::MBarrierTryWaitParityOp::create(b, barriers, phaseOf(j), ticks,
                                           vFull(stage));
    Value vDescBase =
        descriptor(stageAddr(vBase, vStageBytes, stage), N * 128);
    Value pDescBase = descriptor(pAddr(remu(j, idx(2))), 0);
    return wgmmaChain(
        o, Dv, N / 16, /*zeroInit=*/false,
        [&](int64_t kk) {
          return advance(pDescBase, (kk / 4) * kWgRows * 128 + (kk % 4) * 32);
        },
        [&](int64_t kk) {
          // V rows 16kk.. of the stage; the next 64 columns are N rows on.
          return advance(vDescBase, kk * 16 * 128);
        },
        /*bMNMajor=*/true);
  };

  // The softmax of S_j (keys from k0): new m, l (partial), alpha; P_j goes
  // to shared memory buffer j % 2. `masked` adds the per-element test of
  // the key range and the band.
  // exp2 of the softmax as one MUFU.EX2 (ex2.approx.ftz: the arguments are
  // <= 0 and results below 2^-126 flush to 0, which the sums cannot see).
  auto exp2 = [&](Value v) -> Value {
    return LLVM::CallIntrinsicOp::create(
               b, f32, b.getStringAttr("llvm.nvvm.ex2.approx.ftz.f32"),
               ValueRange{v})
        ->getResult(0);
  };
  const bool rawScores = !softcap && !args.bias && scale > 0;
  detail::ScoreTransform scores(op, args, bIdx, h, c0, c1, rawScores);
  auto maxf = [&](Value x, Value y) -> Value {
    return arith::MaximumFOp::create(b, x, y);
  };
  auto addf = [&](Value x, Value y) -> Value {
    return arith::AddFOp::create(b, x, y);
  };
  auto softmax = [&](Value s, Value k0, Value j, ValueRange ml,
                     bool masked) -> SmallVector<Value> {
    // Step 2: logits in the exp2 domain, masked outside the band. Without
    // softcap or bias (and with a positive scale) the scores stay raw: the
    // row maximum is taken on them and scaled once, and the scale folds
    // into the exponent's FMA, exp2(s·scale·log2 e - m).
    Value factor = cf(scale * (softcap ? 1.0 / *softcap : log2e));
    Value ninf = cf(-INFINITY);
    SmallVector<SmallVector<Value, 4>> x(N / 8);
    for (int64_t n = 0; n < N / 8; ++n)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j) {
          Value v = LLVM::ExtractValueOp::create(
              b, s, ArrayRef<int64_t>{n * 4 + i * 2 + j});
          x[n].push_back(scores.apply(
              b, loc, v, row[i],
              [&] { return add(add(k0, idx(n * 8 + j)), mul(t, idx(2))); },
              masked));
        }
    SmallVector<Value> mNew(2), mSafe(2), alpha(2), lNew(2);
    for (int64_t i = 0; i < 2; ++i) {
      SmallVector<Value> row;
      for (int64_t n = 0; n < N / 8; ++n)
        for (int64_t jj = 0; jj < 2; ++jj)
          row.push_back(x[n][i * 2 + jj]);
      Value mx = detail::treeReduce(row, maxf);
      for (int32_t o : {1, 2})
        mx = arith::MaximumFOp::create(
            b, mx,
            gpu::ShuffleOp::create(b, mx, o, 32, gpu::ShuffleMode::XOR)
                .getShuffleResult());
      if (rawScores)
        mx = arith::MulFOp::create(b, mx, factor);
      mx = arith::MaximumFOp::create(b, mx, ml[i]);
      mNew[i] = mx;
      Value isNinf = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx, ninf);
      mSafe[i] = arith::SelectOp::create(b, isNinf, cf(0.0), mx);
      alpha[i] = exp2(arith::SubFOp::create(b, ml[i], mSafe[i]));
      lNew[i] = arith::MulFOp::create(b, ml[2 + i], alpha[i]);
    }
    // P: row r (of the warpgroup's 64), columns 8n + 2t, + 1 at byte
    // r * 128 + ((n % 8) ^ (r % 8)) * 16 + 4t of panel n / 8 of the buffer.
    Value rLocal[2] = {add(mul(warp, idx(16)), g),
                       add(add(mul(warp, idx(16)), g), idx(8))};
    Value bufElt = mul(remu(j, idx(2)), idx(pWgBytes / 2));
    auto pairType = VectorType::get({2}, f16);
    // exp2(x·factor - m) as one FFMA (raw scores) or FADD: LLVM emits
    // mul.rn/sub.rn for separate operations, which ptxas may not contract.
    Value negM[2];
    for (int64_t i = 0; i < 2; ++i)
      negM[i] = arith::NegFOp::create(b, mSafe[i]);
    SmallVector<Value> terms[2];
    for (int64_t n = 0; n < N / 8; ++n)
      for (int64_t i = 0; i < 2; ++i) {
        SmallVector<Value> pair;
        for (int64_t jj = 0; jj < 2; ++jj) {
          Value xv = x[n][i * 2 + jj];
          Value e = exp2(rawScores
                             ? math::FmaOp::create(b, xv, factor, negM[i])
                                   .getResult()
                             : arith::AddFOp::create(b, xv, negM[i]));
          terms[i].push_back(e);
          pair.push_back(arith::TruncFOp::create(b, f16, e));
        }
        Value chunk = arith::XOrIOp::create(b, idx(n % 8), g);
        Value byte = add(add(mul(rLocal[i], idx(128)), mul(chunk, idx(16))),
                         add(idx((n / 8) * kWgRows * 128), mul(t, idx(4))));
        vector::StoreOp::create(
            b, vector::FromElementsOp::create(b, pairType, pair), pView,
            ValueRange{add(bufElt, divu(byte, idx(2)))}, /*nontemporal=*/false,
            llvm::MaybeAlign(4));
      }
    for (int64_t i = 0; i < 2; ++i)
      lNew[i] = arith::AddFOp::create(b, lNew[i],
                                      detail::treeReduce(terms[i], addf));
    return {mNew[0], mNew[1], lNew[0], lNew[1], alpha[0], alpha[1]};
  };
  // softmax with the mask only where the key block crosses the band's edge.
  SmallVector<Type> smTypes(6, f32);
  auto softmaxStep = [&](Value s, Value j, ValueRange ml) -> SmallVector<Value> {
    Value k0 = mul(add(kbBegin, j), idx(N));
    Value full = arith::AndIOp::create(b, sle(fullFrom, k0),
                                       sle(add(k0, idx(N)), fullTo));
    auto ifOp = scf::IfOp::create(b, smTypes, full, /*withElse=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
      scf::YieldOp::create(b, softmax(s, k0, j, ml, /*masked=*/false));
      b.setInsertionPointToStart(&ifOp.getElseRegion().front());
      scf::YieldOp::create(b, softmax(s, k0, j, ml, /*masked=*/true));
    }
    return SmallVector<Value>(ifOp.getResults().begin(), ifOp.getResults().end());
  };
  // P_j written by this warpgroup's threads becomes visible to wgmma (async
  // proxy), and the warpgroup's 128 threads meet.
  auto publishP = [&]() {
    NVVM::FenceProxyOp::create(
        b, NVVM::ProxyKind::async_shared,
        NVVM::SharedSpaceAttr::get(ctx, NVVM::SharedSpace::shared_cta));
    Value barrierId =
        arith::IndexCastUIOp::create(b, b.getI32Type(), add(wg, c1));
    NVVM::BarrierOp::create(b, /*res=*/Type(), barrierId,
                            arith::ConstantOp::create(b, b.getI32IntegerAttr(128)),
                            /*reductionOp=*/nullptr,
                            /*reductionPredicate=*/Value());
  };
  // Ping-pong between the two consumer warpgroups (FlashAttention-3): a
  // warpgroup issues its GEMMs only in its turn and then hands the turn over,
  // so one warpgroup's softmax overlaps the other's GEMMs. Turn barrier of
  // warpgroup w: named barrier 3 + w over both warpgroups (256 threads),
  // synced by w and arrived at by the other.
  auto i32c = [&](int64_t v) -> Value {
    return arith::ConstantOp::create(b, b.getI32IntegerAttr(v));
  };
  Value myTurn = arith::IndexCastUIOp::create(b, b.getI32Type(), add(wg, idx(3)));
  Value otherTurn =
      arith::IndexCastUIOp::create(b, b.getI32Type(), sub(idx(4), wg));
  auto waitTurn = [&]() {
    NVVM::BarrierOp::create(b, /*res=*/Type(), myTurn, i32c(kConsumerThreads),
                            /*reductionOp=*/nullptr,
                            /*reductionPredicate=*/Value());
  };
  auto passTurn = [&]() {
    NVVM::BarrierArriveOp::create(b, otherTurn, i32c(kConsumerThreads));
  };
  auto rescale = [&](Value o, Value a0, Value a1) {
    Value alpha[2] = {a0, a1};
    for (int64_t n = 0; n < Dv / 8; ++n)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t jj = 0; jj < 2; ++jj) {
          int64_t e = n * 4 + i * 2 + jj;
          Value a = LLVM::ExtractValueOp::create(b, o, ArrayRef<int64_t>{e});
          o = LLVM::InsertValueOp::create(b, o, arith::MulFOp::create(b, a, alpha[i]),
                                          ArrayRef<int64_t>{e});
        }
    return o;
  };

  // The schedule (FlashAttention-3's intra-warpgroup overlap): the softmax
  // of step j runs while the tensor cores compute P_{j-1}·V_{j-1}.
  //   prologue: S_0; softmax_0 -> P_0
  //   step j:   issue S_j, issue O += P_{j-1}·V_{j-1}; wait S_j (release
  //             K_j); softmax_j -> P_j; wait P·V (release V_{j-1});
  //             O *= alpha_j
  //   epilogue: O += P_{n-1}·V_{n-1}
  // Rows without any key block (n = 0) skip it all.
  Value nBlocks = sub(kbEnd, kbBegin);
  // Warpgroup 0 has the first turn; it takes the last hand-over at the end.
  Value isWg1 = cmp(arith::CmpIPredicate::eq, wg, c1);
  {
    auto first = scf::IfOp::create(b, isWg1, /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&first.getThenRegion().front());
    passTurn();
  }
  SmallVector<Type> stateTypes = {f32, f32, f32, f32, oType};
  auto any = scf::IfOp::create(b, stateTypes, slt(c0, nBlocks), /*withElse=*/true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&any.getElseRegion().front());
    scf::YieldOp::create(b, ValueRange{m0, m0, l0, l0, oInit});
    b.setInsertionPointToStart(&any.getThenRegion().front());
    waitTurn();
    Value s0 = issueS(c0);
    passTurn();
    waitGroups(0);
    release(kEmpty(stageOf(c0)));
    // The first block always takes the masked softmax (one copy of the code
    // less; the test costs little on one block).
    SmallVector<Value> st = softmax(s0, mul(kbBegin, idx(N)), c0,
                                    ValueRange{m0, m0, l0, l0}, /*masked=*/true);
    publishP();
    auto loop = scf::ForOp::create(
        b, loc, c1, nBlocks, c1, ValueRange{st[0], st[1], st[2], st[3], oInit},
        [&](OpBuilder &nb, Location, Value j, ValueRange iter) {
          OpBuilder::InsertionGuard g2(b);
          b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          Value jPrev = sub(j, c1);
          waitTurn();
          Value s = issueS(j);
          Value o = issuePV(jPrev, iter[4]);
          passTurn();
          waitGroups(1);
          release(kEmpty(stageOf(j)));
          SmallVector<Value> sm = softmaxStep(s, j, iter.take_front(4));
          waitGroups(0);
          release(vEmpty(stageOf(jPrev)));
          o = rescale(o, sm[4], sm[5]);
          publishP();
          scf::YieldOp::create(b, ValueRange{sm[0], sm[1], sm[2], sm[3], o});
        });
    Value last = sub(nBlocks, c1);
    Value o = issuePV(last, loop.getResult(4));
    waitGroups(0);
    release(vEmpty(stageOf(last)));
    scf::YieldOp::create(b, ValueRange{loop.getResult(0), loop.getResult(1),
                                       loop.getResult(2), loop.getResult(3), o});
  }
  auto loop = any;
  {
    auto last = scf::IfOp::create(
        b, cmp(arith::CmpIPredicate::eq, wg, c0), /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&last.getThenRegion().front());
    waitTurn();
  }

  // Step 5: quad-reduce the row sums, normalize, write.
  Value oFinal = loop.getResult(4);
  for (int64_t i = 0; i < 2; ++i) {
    Value l = loop.getResult(2 + i);
    for (int32_t o : {1, 2})
      l = arith::AddFOp::create(
          b, l,
          gpu::ShuffleOp::create(b, l, o, 32, gpu::ShuffleMode::XOR)
              .getShuffleResult());
    Value m = loop.getResult(i);
    Value empty = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, l, cf(0.0));
    auto ifOp = scf::IfOp::create(b, slt(row[i], sq), /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    Value r = bshd ? add(mul(add(mul(bIdx, sq), row[i]), hq), h)
                   : add(mul(add(mul(bIdx, hq), h), sq), row[i]);
    Value oBase = mul(r, idx(Dv));
    Value inv = arith::DivFOp::create(b, cf(1.0), l);
    for (int64_t n = 0; n < Dv / 8; ++n) {
      SmallVector<Value> pair;
      for (int64_t j = 0; j < 2; ++j) {
        Value a = LLVM::ExtractValueOp::create(
            b, oFinal, ArrayRef<int64_t>{n * 4 + i * 2 + j});
        Value v = arith::MulFOp::create(b, a, inv);
        v = arith::SelectOp::create(b, empty, cf(0.0), v);
        pair.push_back(arith::TruncFOp::create(b, f16, v));
      }
      Value col = add(idx(n * 8), mul(t, idx(2)));
      vector::StoreOp::create(
          b, vector::FromElementsOp::create(b, VectorType::get({2}, f16), pair),
          args.o, ValueRange{add(oBase, col)}, /*nontemporal=*/false,
          llvm::MaybeAlign(4));
    }
    if (args.lse) {
      Value lr = arith::MulFOp::create(
          b, arith::AddFOp::create(b, m, math::Log2Op::create(b, l)), cf(ln2));
      lr = arith::SelectOp::create(b, empty, cf(-INFINITY), lr);
      auto store = scf::IfOp::create(b, cmp(arith::CmpIPredicate::eq, t, c0),
                                     /*withElse=*/false);
      b.setInsertionPointToStart(&store.getThenRegion().front());
      memref::StoreOp::create(b, lr, args.lse,
                              add(mul(add(mul(bIdx, hq), h), sq), row[i]));
    }
  }
}
