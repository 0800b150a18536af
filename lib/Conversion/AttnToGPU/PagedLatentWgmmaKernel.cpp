//===- PagedLatentWgmmaKernel.cpp - latent paged decode on wgmma ----------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The sm_90a split kernel of attn.paged_attention over a latent cache (the
// values are the first Dv columns of the key rows: DeepSeek MLA's absorbed
// decode, D = 576, Dv = 512), FlashMLA's shape of the problem on wgmma. It
// takes the arguments of the mma.sync latent kernel (PagedLatentKernel.cpp)
// and writes the same partial outputs for the same combine kernel.
//
// A block of 384 threads owns 64 packed query rows (row r = token · G +
// head % G) of one KV head of one sequence and one split of its keys:
//
//   warpgroup 0  S = Q·Kᵀ (64 x 64, m64n64k16 from shared memory), the
//                online softmax, P to shared memory for warpgroup 1, and
//                O[:, :Dv/2] += P·V from registers (register-A wgmma)
//   warpgroup 1  O[:, Dv/2:] += P·V, P from shared memory
//   warpgroup 2  producer: cp.async copies of each 64-key tile through the
//                block table, completion tracked by the stage's mbarrier
//                (cp.async.mbarrier.arrive.noinc); 24 registers a thread,
//                the consumers 240
//
// The O accumulator of 64 rows x 512 columns is 32K registers, half the
// register file: one warpgroup cannot hold it, so its columns are split over
// two, and S is computed once, by warpgroup 0, and shared. Warpgroup 0's
// softmax of step j overlaps warpgroup 1's P·V of step j - 1 on the tensor
// cores. (FlashMLA's "seesaw" schedule, which alternates S between the two
// warpgroups and exchanges the running max, was built and measured: 1%
// faster with the copies left out, no faster with them, and 6-10% slower at
// 16 heads, since it holds the odd tile's stage to the end of a pair;
// docs/design-paged-decode.md. The copies bound this kernel. Tiles of 64 keys:
// of 32, in four stages, measured 25% slower -- S re-reads Q from shared memory
// for every 32 keys, and the handoffs of a step weigh twice.)
//
// Shared memory (1024-aligned; operands 128-byte swizzled in panels of 64
// columns, each 64 rows x 128 bytes = 8 KB):
//
//   Q        D / 64 panels (72 KB at D = 576)
//   K ring   2 stages x D / 64 panels (each key row is used as K and, its
//            first Dv columns, as V: read from the cache once)
//   P        one panel (64 rows x 64 keys)
//   stats    the rows' rescale factors of the step, then their sums; a
//            zero word
//
// Synchronization: mbarriers kFull[s] (count 128: every producer thread's
// cp.async completion) and kEmpty[s] (count 8: lane 0 of each consumer
// warp, after its last GEMM on the stage: warpgroup 0 waits for its P·V at
// the end of the step, so that the stage is refilled early); and the
// consumers' handoffs, mbarriers of 128 arrivals (every thread of the
// handing warpgroup: an arrive releases the arriving thread's own writes):
// pReady (warpgroup 0 wrote P and the factors), pFree (warpgroup 1's P·V of
// the last P is done; once ahead, for the first step), final (the sums are
// written).
//
// Keys past the split's range are zero-filled, never read from the cache,
// and masked; their block-table entries are not read either.
//
//===----------------------------------------------------------------------===//

#include "KernelCommon.h"
#include "OnlineSoftmax.h"
#include "PagedKernel.h"
#include "PagedSplitKernel.h"
#include "WgmmaOps.h"

#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

bool LatentWgmmaTiling::accepts(int64_t d, int64_t dv) {
  return d % 64 == 0 && dv % 128 == 0 && dv <= 512 && dv <= d &&
         sharedMemoryBytes(d) <= kMaxPagedSharedMemory;
}

namespace {
/// Named barriers (0 is the block's __syncthreads).
constexpr int64_t kRows = LatentWgmmaTiling::kRows,
                  kKeys = LatentWgmmaTiling::kTileKeys,
                  kStages = LatentWgmmaTiling::kStages;
constexpr int64_t kPanelBytes = kRows * 128;
/// Registers a thread (setmaxnreg): the consumers take what the producer
/// gives up (2 x 128 x 240 + 128 x 24 <= 64K).
constexpr int64_t kConsumerRegisters = 240, kProducerRegisters = 24;

/// The builder (see the file comment); build() emits the phases in order.
/// The class is over 150 lines only because its phases are methods defined
/// in it; each phase is a function well under the limit.
class LatentWgmmaKernel : PagedSplitKernel {
public:
  LatentWgmmaKernel(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                    const PagedAttentionSpec &spec)
      : PagedSplitKernel(b, func, spec, /*separateValues=*/false),
        softmax(*this, /*approxExp2=*/true), panels(D / 64),
        stageBytes(panels * kPanelBytes), kBase(panels * kPanelBytes),
        pBase(kBase + kStages * stageBytes), statBase(pBase + kPanelBytes),
        zeroWord((statBase + 2 * kRows * 4) / 4), halfDv(Dv / 2),
        rawScores(!softcap && (runtimeValues || spec.scale > 0)) {
    assert(zeroWord * 4 + 16 == LatentWgmmaTiling::sharedMemoryBytes(D) &&
           "shared memory layout");
  }

  void build() {
    emitBlockIndices(/*valueChunks=*/1, Dv);
    emitKeyRange(kRows, kKeys);
    emitSetup();
    Value wg = div(tid, idx(128));
    wgWarp = rem(warp, idx(4));
    for (int64_t i = 0; i < 2; ++i) {
      sRow[i] = add(add(mul(wgWarp, idx(16)), g), idx(8 * i));
      pos[i] = add(div(add(r0, sRow[i]), group), off);
    }
    auto producer = scf::IfOp::create(b, eq(wg, idx(2)), /*withElse=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&producer.getThenRegion().front());
    emitProducer();
    b.setInsertionPointToStart(&producer.getElseRegion().front());
    setMaxRegisters(kConsumerRegisters, NVVM::SetMaxRegisterAction::increase);
    when(eq(wg, c0), [&] { emitScoreWarpgroup(); });
    when(eq(wg, c1), [&] { emitValueWarpgroup(); });
  }

private:
  // --- Set-up -------------------------------------------------------------

  /// Shared memory and its views, the mbarriers, Q's rows in their panels;
  /// every thread takes part and then meets at a __syncthreads.
  void emitSetup() {
    smem = getDynamicSharedMemory(b, loc, func);
    smemAddr = arith::IndexCastUIOp::create(
        b, b.getI64Type(),
        memref::ExtractAlignedPointerAsIndexOp::create(b, smem));
    const int64_t bytes = LatentWgmmaTiling::sharedMemoryBytes(D);
    smemElt = sharedView(smem, {bytes / 2}, elt, 0);
    smemI32 = sharedView(smem, {bytes / 4}, b.getI32Type(), 0);
    smemF32 = sharedView(smem, {bytes / 4}, f32, 0);
    auto workgroup = gpu::AddressSpaceAttr::get(
        ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
    barriers = nvgpu::MBarrierCreateOp::create(
        b, nvgpu::MBarrierGroupType::get(ctx, workgroup, 2 * kStages + 3));
    ticks = idx(10000000);
    tableRow = mul(bIdx, maxPages);
    when(eq(tid, c0), [&] {
      for (int64_t s = 0; s < kStages; ++s) {
        nvgpu::MBarrierInitOp::create(b, barriers, idx(128), kFull(idx(s)),
                                      Value());
        nvgpu::MBarrierInitOp::create(b, barriers, idx(8), kEmpty(idx(s)),
                                      Value());
      }
      for (Handoff h : {kPReady, kPFree, kFinal})
        nvgpu::MBarrierInitOp::create(b, barriers, idx(128), handoff(h),
                                      Value());
      NVVM::FenceMbarrierInitOp::create(b);
      store(ci32(0), smemI32, {idx(zeroWord)});
    });
    stageQueryPanels();
    // Q's generic stores, before wgmma reads them through the async proxy.
    fenceAsyncShared();
    barrier();
  }

  /// Q's 64 packed rows (zero past the KV head's rows) into its panels:
  /// element (r, c) at panel c / 64, row r, 16-byte chunk (c / 8 mod 8) ^
  /// (r mod 8).
  void stageQueryPanels() {
    auto vec8 = VectorType::get({8}, elt);
    Value zero = arith::ConstantOp::create(
        b, vec8, DenseElementsAttr::get(vec8, b.getZeroAttr(elt)));
    loop(tid, idx(kRows * D / 8), idx(384), [&](Value e) {
      Value r = div(e, idx(D / 8)), chunk = rem(e, idx(D / 8));
      Value row = add(r0, r);
      Value x = ifElse(slt(row, rows), zero, [&] {
        return SmallVector<Value>{vector::LoadOp::create(
            b, vec8, qArg,
            ValueRange{add(rowElement(row, D), mul(chunk, idx(8)))})};
      })[0];
      vector::StoreOp::create(b, x, smemElt,
                              ValueRange{panelElement(idx(0), r, chunk)});
    });
  }

  /// The element index of 16-byte chunk `chunk` (of D / 8) of row `r` of
  /// the panelled operand at byte `base`.
  Value panelElement(Value base, Value r, Value chunk) {
    return div(buildSwizzledChunkOffset(b, base, r, chunk, kRows), idx(2));
  }

  Value kFull(Value s) { return s; }
  Value kEmpty(Value s) { return add(s, idx(kStages)); }
  Value stageOf(Value j) { return rem(j, idx(kStages)); }
  Value parity(Value p) {
    return arith::TruncIOp::create(
        b, b.getI1Type(), arith::IndexCastUIOp::create(b, b.getI64Type(), p));
  }
  /// Phase parity of the (j / kStages)-th use of j's stage.
  Value phaseOf(Value j) { return parity(rem(div(j, idx(kStages)), idx(2))); }
  void waitBarrier(Value id, Value phase) {
    nvgpu::MBarrierTryWaitParityOp::create(b, barriers, phase, ticks, id);
  }
  void fenceAsyncShared() {
    NVVM::FenceProxyOp::create(
        b, NVVM::ProxyKindAttr::get(ctx, NVVM::ProxyKind::async_shared),
        NVVM::SharedSpaceAttr::get(ctx, NVVM::SharedSpace::shared_cta));
  }
  void setMaxRegisters(int64_t n, NVVM::SetMaxRegisterAction action) {
    NVVM::SetMaxRegisterOp::create(
        b, b.getI32IntegerAttr(n),
        NVVM::SetMaxRegisterActionAttr::get(ctx, action));
  }
  Value ci32(int64_t v) {
    return arith::ConstantOp::create(b, b.getI32IntegerAttr(v));
  }
  /// The consumers' handoffs, mbarriers of 128 arrivals (every thread of
  /// the warpgroup that hands over: mbarrier.arrive releases the arriving
  /// thread's own writes, try_wait acquires them).
  enum Handoff { kPReady, kPFree, kFinal };
  Value handoff(Handoff h) { return idx(2 * kStages + h); }
  void arrive(Handoff h) {
    nvgpu::MBarrierArriveOp::create(b, barriers, handoff(h));
  }
  /// Waits for completion `n` (0, 1, ...) of handoff `h`.
  void waitFor(Handoff h, Value n) {
    waitBarrier(handoff(h), parity(rem(n, idx(2))));
  }
  /// Lane 0 of each consumer warp arrives on kEmpty(stage).
  void release(Value stage) {
    when(eq(lane, c0),
         [&] { nvgpu::MBarrierArriveOp::create(b, barriers, kEmpty(stage)); });
  }

  // --- Producer -----------------------------------------------------------

  /// The cache rows of this producer thread's four keys of tile `step`
  /// (keys 16k + rowInPass), -1 past the split's keys (whose table entries
  /// are not read).
  SmallVector<Value> tileRows(Value step) {
    SmallVector<Value> result;
    for (int64_t k = 0; k < 4; ++k) {
      Value key = tileKey(step, add(idx(16 * k), rowInPass));
      result.push_back(ifElse(slt(key, kEnd), {idx(-1)}, [&] {
        Value page = loadIndex(tableArg, add(tableRow, div(key, idx(P))));
        return SmallVector<Value>{cacheRow(page, rem(key, idx(P)))};
      })[0]);
    }
    return result;
  }

  /// Warpgroup 2: per tile, wait for its stage to be released (from the
  /// third tile on), issue the copies (thread p takes 16-byte chunk p mod 8
  /// of every panel of keys 16k + p / 8: 128 contiguous bytes per key row
  /// and warp instruction, one swizzled chunk offset per thread), let the
  /// stage's kFull track them, and read the next tile's table entries.
  void emitProducer() {
    setMaxRegisters(kProducerRegisters, NVVM::SetMaxRegisterAction::decrease);
    Value p = sub(tid, idx(256));
    rowInPass = div(p, idx(8));
    Value ch = rem(p, idx(8));
    // Byte offset of the thread's chunk in key row rowInPass of a panel.
    Value dst0 = add(mul(rowInPass, idx(128)),
                     mul(xori(ch, rem(rowInPass, idx(8))), idx(16)));
    SmallVector<Value> init = tileRows(c0);
    loop(c0, steps, c1, init, [&](Value step, ValueRange cacheRows) {
      Value stage = stageOf(step);
      when(sle(idx(kStages), step), [&] {
        Value phase = rem(add(div(step, idx(kStages)), c1), idx(2));
        waitBarrier(kEmpty(stage), parity(phase));
      });
      Value stageBase = add(idx(kBase), mul(stage, idx(stageBytes)));
      for (int64_t k = 0; k < 4; ++k) {
        Value row = cacheRows[k];
        Value inside = sle(c0, row);
        Value src = add(mul(sel(inside, row, c0), idx(D)), mul(ch, idx(8)));
        Value n = sel(inside, idx(8), c0);
        Value dst = div(add(stageBase, add(dst0, idx(16 * k * 128))), idx(2));
        for (int64_t u = 0; u < panels; ++u)
          nvgpu::DeviceAsyncCopyOp::create(
              b, nvgpu::DeviceAsyncTokenType::get(ctx), smemElt,
              ValueRange{add(dst, idx(u * kPanelBytes / 2))}, kArg,
              ValueRange{add(src, idx(64 * u))}, b.getIndexAttr(8), n,
              /*bypassL1=*/b.getUnitAttr());
      }
      Value bar = nvgpu::MBarrierGetOp::create(b, b.getI32Type(), barriers,
                                               kFull(stage));
      Value ptr = LLVM::IntToPtrOp::create(
          b, LLVM::LLVMPointerType::get(ctx, /*addressSpace=*/3), bar);
      NVVM::CpAsyncMBarrierArriveOp::create(b, ptr, /*noinc=*/true);
      return tileRows(add(step, c1));
    });
    NVVM::CpAsyncWaitGroupOp::create(b, 0);
  }

  // --- Warpgroup 0: S, the softmax, O's first half ----------------------

  /// The wgmma descriptor of operand rows at byte `base` (+ stage).
  Value descAt(int64_t base, Value stage, int64_t lbo) {
    Value offset = add(idx(base), mul(stage, idx(stageBytes)));
    return buildWgmmaDescriptor(
        b,
        arith::AddIOp::create(
            b, smemAddr,
            arith::IndexCastUIOp::create(b, b.getI64Type(), offset)),
        lbo);
  }
  /// V's columns [half · Dv / 2, ...) of the stage (MN-major B: 64-column
  /// panels 8 KB apart), k-step kk = keys 16kk ...
  Value valueDesc(Value stage, int64_t half, int64_t kk) {
    return advanceWgmmaDescriptor(
        b,
        descAt(kBase + half * (halfDv / 64) * kPanelBytes, stage, kPanelBytes),
        kk * 16 * 128);
  }

  /// Warpgroup 0's loop over the tiles (m[2], l[2] of its rows, O's first
  /// half), then its part of the epilogue.
  void emitScoreWarpgroup() {
    SmallVector<Value> init = {f(-INFINITY), f(-INFINITY), f(0.0), f(0.0),
                               buildZeroAccumulator(b, halfDv)};
    // The keys every row of the block admits: tiles inside skip the mask.
    auto firstBand =
        buildAdmittedKeys(b, loc, band, add(div(r0, group), off), len);
    Value lastRow = sub(smin(add(r0, idx(kRows)), rows), c1);
    auto lastBand =
        buildAdmittedKeys(b, loc, band, add(div(lastRow, group), off), len);
    fullFrom = lastBand.first;
    fullTo = smin(firstBand.second, kEnd);
    ValueRange fin =
        loop(c0, steps, c1, init, [&](Value step, ValueRange iter) {
          Value stage = stageOf(step);
          waitBarrier(kFull(stage), phaseOf(step));
          fenceAsyncShared();
          // The thread's loop-invariant values go through this zero read
          // from shared memory (after the wait, which LLVM cannot move it
          // across): hoisted out of the loop, the bands, key limits and P's
          // addresses would hold registers across it, and warpgroup 0 is at
          // the register file's limit (the Q descriptor, below, likewise).
          zero = arith::IndexCastOp::create(b, b.getIndexType(),
                                            load(smemI32, {idx(zeroWord)}));
          // Q's descriptor from K's: loop-invariant, its 36 k-step offsets
          // would be hoisted out of the loop into 72 live registers.
          Value kDesc = descAt(kBase, stage, 0);
          Value qDesc = arith::SubIOp::create(
              b, kDesc,
              arith::IndexCastUIOp::create(
                  b, b.getI64Type(),
                  div(add(idx(kBase), mul(stage, idx(stageBytes))), idx(16))));
          Value s = buildWgmmaTransposedProduct(b, elt, qDesc, kRows, kDesc,
                                                kKeys, D);
          buildWgmmaWait(b, 0);
          SmallVector<Value> st = softmaxStep(s, step, iter.take_front(4));
          // st: m[2], l[2], alpha[2], P's 16 registers.
          ArrayRef<Value> pRegs = ArrayRef<Value>(st).drop_front(6);
          waitFor(kPFree, step);
          sharePAndFactors(pRegs, {st[4], st[5]});
          Value o = softmax.rescaleWhereMoved(iter[4], {st[4], st[5]});
          o = buildWgmmaRegisterAChain(
              b, elt, o, pRegs, halfDv,
              [&](int64_t kk) { return valueDesc(stage, 0, kk); });
          // Wait for this P·V here rather than with the next S: the stage
          // goes back to the producer a GEMM earlier (measured 2-3% faster
          // on the H200 than waiting for both at the next step; a wait
          // inside S's group, or S as one group per panel, was 10% slower).
          buildWgmmaWait(b, 0);
          release(stage);
          return SmallVector<Value>{st[0], st[1], st[2], st[3], o};
        });
    // Warpgroup 1's last arrival: it is done with P and the factors.
    waitFor(kPFree, steps);
    Value l[2];
    for (int64_t i = 0; i < 2; ++i) {
      l[i] = softmax.finalSum(fin[2 + i]);
      when(eq(t, c0), [&] {
        store(l[i], smemF32, {add(idx(statBase / 4 + kRows), sRow[i])});
      });
    }
    arrive(kFinal);
    writeRows(fin[4], 0, l);
    for (int64_t i = 0; i < 2; ++i) {
      Value row = add(r0, sRow[i]);
      when(land(eq(t, c0), slt(row, rows)), [&] {
        Value lse = naturalLse(fin[i], l[i]);
        Value empty = feq(fin[i], f(-INFINITY));
        store(sel(empty, f(-INFINITY), lse), lsePart,
              partialRow(mul(mul(batch, sq), hq), row));
      });
    }
  }

  /// The online softmax of tile `step`'s S. Returns m[2], l[2], alpha[2]
  /// and P as wgmma's register-A operand (16 registers).
  SmallVector<Value> softmaxStep(Value s, Value step, ValueRange ml) {
    Value k0 = tileKey(step, c0);
    std::array<SmallVector<Value>, 2> x = logits(s, k0);
    Value factorV = scoreFactor ? scoreFactor : f(factor);
    SmallVector<Value> result(6), pAcc(kKeys / 2);
    for (int64_t i = 0; i < 2; ++i) {
      Value mx = softmax.rowMax(x[i]);
      if (rawScores)
        mx = fmul(mx, factorV);
      OnlineSoftmax::RowUpdate row =
          softmax.update(fmax(mx, ml[i]), ml[i], ml[2 + i]);
      Value negM = arith::NegFOp::create(b, row.safeMax);
      SmallVector<Value> p;
      for (auto [k, v] : llvm::enumerate(x[i])) {
        Value arg = rawScores ? fma(v, factorV, negM) : fadd(v, negM);
        p.push_back(softmax.exp2(arg));
        // x[i][2n + j] is tile n, column j.
        pAcc[4 * (k / 2) + 2 * i + k % 2] = p.back();
      }
      result[i] = row.max;
      result[2 + i] = fadd(row.sum, softmax.rowSum(p));
      result[4 + i] = row.alpha;
    }
    llvm::append_range(result, packRegisterA(b, elt, pAcc));
    return result;
  }

  /// Row i's logits x[i][2n + j] (tile n, column j) of S, -inf outside the
  /// row's band and the split's keys: raw scores (scaled once, in the
  /// exponent) where the variant allows, else scaled (and capped) here.
  /// Tiles inside every row's band and the split's keys skip the test; the
  /// others compare each column with the row's admitted range moved to the
  /// tile and the thread (32-bit, two compares against immediates).
  std::array<SmallVector<Value>, 2> logits(Value s, Value k0) {
    SmallVector<Value> all;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t n = 0; n < kKeys / 8; ++n)
        for (int64_t j = 0; j < 2; ++j) {
          Value v = getAccumulatorElement(b, loc, s, n, i, j);
          if (!rawScores) {
            v = fmul(v, scoreFactor ? scoreFactor : f(factor));
            if (softcap)
              v = fmul(math::TanhOp::create(b, v),
                       softcapFactor ? softcapFactor
                                     : f(*softcap * llvm::numbers::log2e));
          }
          all.push_back(v);
        }
    Value partial =
        arith::OrIOp::create(b, slt(k0, add(fullFrom, zero)),
                             slt(add(fullTo, zero), add(k0, idx(kKeys))));
    all = ifElse(partial, all, [&] {
      Type i32 = b.getI32Type();
      auto toI32 = [&](Value v) -> Value {
        return arith::IndexCastOp::create(b, i32, v);
      };
      SmallVector<Value> masked;
      Value shift = add(k0, mul(t, idx(2)));
      for (int64_t i = 0; i < 2; ++i) {
        auto [first, second] =
            buildAdmittedKeys(b, loc, band, add(pos[i], zero), add(len, zero));
        Value lo = toI32(sub(first, shift));
        Value hi = toI32(sub(smin(second, add(kEnd, zero)), shift));
        for (int64_t n = 0; n < kKeys / 8; ++n)
          for (int64_t j = 0; j < 2; ++j) {
            Value c = ci32(8 * n + j);
            Value ok = land(
                arith::CmpIOp::create(b, arith::CmpIPredicate::sle, lo, c),
                arith::CmpIOp::create(b, arith::CmpIPredicate::slt, c, hi));
            masked.push_back(
                sel(ok, all[i * kKeys / 4 + 2 * n + j], f(-INFINITY)));
          }
      }
      return masked;
    });
    std::array<SmallVector<Value>, 2> x;
    for (int64_t i = 0; i < 2; ++i)
      x[i].assign(all.begin() + i * kKeys / 4,
                  all.begin() + (i + 1) * kKeys / 4);
    return x;
  }

  /// P (register (n, i) = 2n + i of the register-A operand: row sRow[i],
  /// keys 8n + 2t, + 1) into its panel, and the rows' factors (lane t = 0);
  /// made visible to warpgroup 1's wgmma, then pReady.
  void sharePAndFactors(ArrayRef<Value> pRegs, ArrayRef<Value> alpha) {
    // Word (row r, chunk c, column pair t) of the P panel is pBase / 4 +
    // 32r + 4(c ^ (r mod 8)) + t; the chunk's bits are free elsewhere, so
    // each store is one XOR of the thread's word at chunk g, rows 8 apart an
    // immediate (the zero: see emitScoreWarpgroup).
    Value word =
        add(add(idx(pBase / 4), mul(sRow[0], idx(32))), add(mul(g, idx(4)), t));
    word = add(word, zero);
    for (int64_t n = 0; n < kKeys / 8; ++n) {
      Value at = xori(word, idx(4 * n));
      for (int64_t i = 0; i < 2; ++i)
        store(pRegs[2 * n + i], smemI32, {add(at, idx(i * 8 * 32))});
    }
    for (int64_t i = 0; i < 2; ++i)
      when(eq(t, c0), [&] {
        store(alpha[i], smemF32, {add(idx(statBase / 4), sRow[i])});
      });
    fenceAsyncShared();
    arrive(kPReady);
  }

  // --- Warpgroup 1: O's second half ---------------------------------------

  void emitValueWarpgroup() {
    Value pDesc = descAt(pBase, c0, 0);
    arrive(kPFree);
    ValueRange fin =
        loop(c0, steps, c1, ValueRange{buildZeroAccumulator(b, halfDv)},
             [&](Value step, ValueRange iter) {
               Value stage = stageOf(step);
               waitFor(kPReady, step);
               waitBarrier(kFull(stage), phaseOf(step));
               fenceAsyncShared();
               Value alpha[2];
               for (int64_t i = 0; i < 2; ++i)
                 alpha[i] = load(smemF32, {add(idx(statBase / 4), sRow[i])});
               Value o = softmax.rescaleWhereMoved(iter[0], alpha);
               o = buildWgmmaChain(
                   b, elt, o, halfDv, kKeys / 16, /*zeroInit=*/false,
                   [&](int64_t kk) {
                     return advanceWgmmaDescriptor(
                         b, pDesc, getKMajorStepOffset(kk, kRows));
                   },
                   [&](int64_t kk) { return valueDesc(stage, 1, kk); },
                   /*bMNMajor=*/true);
               buildWgmmaWait(b, 0);
               arrive(kPFree);
               release(stage);
               return SmallVector<Value>{o};
             });
    waitFor(kFinal, c0);
    Value l[2];
    for (int64_t i = 0; i < 2; ++i)
      l[i] = load(smemF32, {add(idx(statBase / 4 + kRows), sRow[i])});
    writeRows(fin[0], halfDv, l);
  }

  // --- Epilogue -----------------------------------------------------------

  /// This thread's elements of O's columns [col0, col0 + Dv / 2) (the
  /// accumulator `o`), divided by the rows' sums `l` (0 for rows without
  /// keys), into the split's partial output.
  void writeRows(Value o, int64_t col0, const Value l[2]) {
    Value rowsAll = mul(mul(batch, sq), hq);
    auto pair = VectorType::get({2}, f32);
    for (int64_t i = 0; i < 2; ++i) {
      Value row = add(r0, sRow[i]);
      when(slt(row, rows), [&] {
        Value empty = softmax.isEmpty(l[i]);
        Value inv = sel(empty, f(0.0), fdiv(f(1.0), l[i]));
        Value base = add(mul(partialRow(rowsAll, row), idx(Dv)),
                         add(idx(col0), mul(t, idx(2))));
        for (int64_t n = 0; n < halfDv / 8; ++n) {
          SmallVector<Value> v;
          for (int64_t j = 0; j < 2; ++j)
            v.push_back(fmul(getAccumulatorElement(b, loc, o, n, i, j), inv));
          vector::StoreOp::create(b, vector::FromElementsOp::create(b, pair, v),
                                  oPart, ValueRange{add(base, idx(8 * n))});
        }
      });
    }
  }

  OnlineSoftmax softmax;
  /// Byte offsets of the K ring, P and the stats; the word index of a
  /// zero (sharePAndFactors).
  const int64_t panels, stageBytes, kBase, pBase, statBase, zeroWord, halfDv;
  const bool rawScores;
  Value smem, smemAddr, smemElt, smemI32, smemF32, barriers, ticks, tableRow;
  Value wgWarp, rowInPass, fullFrom, fullTo;
  /// Warpgroup 0's zero of the step (emitScoreWarpgroup).
  Value zero;
  Value sRow[2], pos[2];
};
} // namespace

void mlir::attn::detail::buildLatentWgmmaKernelBody(
    ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
    const PagedAttentionSpec &spec) {
  LatentWgmmaKernel(b, func, spec).build();
}
