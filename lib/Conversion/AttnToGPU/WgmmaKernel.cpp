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
// At head dim 64 (and with block-q 64) a block is one consumer warpgroup of
// 64 rows and the producer, 256 threads, two blocks an SM (232 registers a
// consumer thread): one block's set-up, pipeline fill and epilogue overlap
// the other's steps, in place of the ping-pong inside a block.
//
// Shared memory (dynamic, 1024-aligned; every tile is 128-byte swizzled, in
// panels of 64 columns = 128-byte rows, as the TMA boxes land them):
//
//   Q        128 rows x D
//   K stages 2 x keys x D        (separate rings for K and V: a K tile is
//   V stages 2 x keys x Dv        released after S, its V tile after P·V)
//
// D and Dv are 64, 128, 192 or 256, independently (DeepSeek's MLA prefill:
// 192 and 128); keys per step are 128 where that fits, else 64
// (getWgmmaTiling).
//
// mbarriers (static): kFull[2], vFull[2] (count 1 + TMA bytes), kEmpty[2],
// vEmpty[2] (count 8: lane 0 of every consumer warp), qFull. Named barriers:
// 0 = whole block (setup only), 3 + w = warpgroup w's GEMM turn (ping-pong,
// 256 threads).
//
// A consumer warpgroup runs, for key blocks j = 0 .. n-1 of its band:
//
//   prologue   [turn] S_0 = Q·K_0ᵀ [pass]; wait; softmax_0 -> P_0
//   step j     [turn] issue S_j, issue O += P_{j-1}·V_{j-1} [pass];
//              wait S_j, release K_j; softmax_j -> P_j (overlaps the P·V on
//              the tensor cores); wait P·V, release V_{j-1}; O *= alpha_j
//   epilogue   O += P_{n-1}·V_{n-1}; normalize; store O (and the LSE)
//
//   * Both GEMMs are m64nNk16 wgmma: S = Q·Kᵀ from shared-memory matrix
//     descriptors (Q and K K-major); O += P·V with P from registers, V
//     MN-major (transposed) by descriptor. S's f32 accumulator layout is
//     mma.sync's, so P_j packed to f16/bf16 pairs is the register-A operand
//     as it stands; LLVM 22's nvvm.wgmma.mma_async has no register-A form,
//     so that one instruction is InlinePtx.h's wrapper.
//   * The online softmax runs on the accumulator registers: wgmma's f32
//     accumulator puts row 16·warp + lane / 4 (+ 8) and columns 2·(lane % 4)
//     (+ 1) of every 8-column group in a thread, as mma.sync does, so the row
//     statistics need two quad shuffles. Without softcap or bias the scale is
//     folded into the exponent's FMA (ex2.approx.ftz).
//   * Key blocks outside the band are skipped, blocks inside it skip the
//     per-element mask, banded masks launch the heaviest query blocks first,
//     GQA by index arithmetic, as in the mma.sync kernel.
//
// FP8 (e4m3 Q, K, V with descales; FlashAttention-3's FP8 forward), D and Dv
// of 128 or 256:
//
//   * Q·Kᵀ is m64nNk32 e4m3 wgmma, k-steps of 32 bytes as for 16-bit types;
//     the panels are 128 e4m3 columns.
//   * FP8 wgmma takes B only K-major, so P·V needs Vᵀ: warps 2 and 3 of the
//     producer warpgroup transpose each V tile into a third ring (Vᵀ, Dv rows
//     of one 128-byte panel; 4 x 4 byte transposes with prmt, every address
//     one XOR and an immediate, no bank conflicts) and arrive on vtFull; the
//     consumers release vtEmpty after P·V, the transposers vEmpty. The
//     producer runs on 40 registers, the consumers on 232.
//   * The scores stay raw as for 16-bit types (without softcap or bias): the
//     factor scale·dq·dk is known at run time only, so where it is negative
//     S is computed as (-Q)·Kᵀ (wgmma's scale-a of -1, a uniform branch) and
//     the factor taken positive.
//   * P = exp2(s·scale·dq·dk·log2 e - m + 8) is rounded to e4m3 in registers
//     (cvt.rn.satfinite.e4m3x2) and is the register-A operand of P·V as it
//     stands: the transposers store each 16 keys of Vᵀ in the order in which
//     the accumulator's registers hold P's columns (packFp8P).
//   * O = dv · acc / l, written in the output type; the LSE drops the 2^8.
//
// The persistent schedule (AttentionSpec::persistent; not FP8): the grid is
// min(tiles, blocks an SM x SMs) blocks of the same shape. The tiles are
// ordered heaviest first (getTileCoordinates) and dealt like cards in a
// snake: round k gives block b tile k·grid + b, or k·grid + grid - 1 - b in
// odd rounds, so that every block gets about the same work without an
// atomic counter (forEachTile). The K and V rings and
// their phases run on across tiles (ringBase: the key blocks of the block's
// earlier tiles); Q has a ring of one, qFull's phase the tile's count, and a
// qEmpty barrier (count: the consumer warps) that the consumers arrive on
// once their last S has read Q, so that the producer loads the next tile's
// Q and first K/V tiles while the consumers finish the current one (its
// last P·V, the normalization and the store): what a block a tile pays
// serially. The ping-pong turn passes on from tile to tile.
//
// The host passes one CUtensorMap per Q, K and V (in global memory): 4-D maps
// over the tensor's layout with boxes of 128 bytes (64 f16/bf16 or 128 e4m3
// columns) by the tile's rows; the manifest lists them as "tensormap"
// parameters.
//
//===----------------------------------------------------------------------===//

#include "DenseKernels.h"
#include "InlinePtx.h"
#include "KernelCommon.h"
#include "OnlineSoftmax.h"
#include "WgmmaOps.h"

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

#include "llvm/Support/MathExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using mlir::attn::detail::AttentionKernelArgs;
using mlir::attn::detail::WgmmaTiling;

/// Query rows per consumer warpgroup.
static constexpr int64_t kWgRows = 64;
/// FP8 (two consumer warpgroups): the producer's warps 2 and 3 transpose V
/// (threads 320 ..); the register split that gives them room (2 x 128 x
/// 232 + 128 x 40 <= 64K).
static constexpr int64_t kTransposeFirst = 2 * 128 + 64;
static constexpr int64_t kTransposeThreads = 64;
static constexpr int64_t kFp8ProducerRegisters = 40,
                         kFp8ConsumerRegisters = 232;
/// The persistent schedule's producer walks the tiles (their coordinates,
/// band and ring position) on 40 registers, where 24 spilled 56-164 bytes
/// (ptxas 12.x, bf16 d64/d128); its consumers get what is left: 232 with
/// two warpgroups, 216 with one (two blocks an SM: 128 x (40 + 216) <=
/// 256 x 128). Plain d64/d128 kernels spill nothing; with a band or a bias a
/// few words (8-32 bytes).
static constexpr int64_t kPersistentProducerRegisters = 40;
/// One consumer warpgroup (block-q 64), two blocks an SM: 128 registers a
/// thread at launch (.minnctapersm 2), 128 x 232 + 128 x 24 of them after
/// setmaxnreg.
static constexpr int64_t kSoloConsumerRegisters = 232;
/// Three blocks an SM (head dims up to 64, at most 64 keys a step): 80
/// registers a thread at launch (.minnctapersm 3, 3 x 256 x 80 <= 64K),
/// 128 x 136 + 128 x 24 = 256 x 80 after setmaxnreg; ptxas spills nothing
/// (bf16 d64, 32 to 64 keys a step).
static constexpr int64_t kTrioConsumerRegisters = 136;
/// FlashAttention-3's exponent offset of FP8's P (attn-tile's kFp8POffset).
static constexpr double kFp8POffset = 8.0;
/// The most dynamic shared memory a block may have on sm_90.
static constexpr int64_t kMaxSharedMemory = 227 * 1024;

int64_t mlir::attn::detail::WgmmaTiling::sharedMemoryBytes(int64_t d,
                                                           int64_t dv) const {
  int64_t q = rows() * d * elementBytes();
  int64_t kv = stages * keys * (d + dv) * elementBytes();
  // FP8: a ring of transposed V tiles too, Dv rows of one 128-byte panel
  // (half of it unused with 64 keys a step).
  int64_t vt = fp8 ? stages * dv * 128 : 0;
  return q + kv + vt;
}

/// The FP8 tiling: head dims in whole 128-byte panels (128 or 256 e4m3
/// columns); 128 keys a step up to Dv = 128 (Q 16 KB, two stages of K, V
/// and transposed V 96 KB), else 64 (Dv = 256: O takes 128 registers; 160
/// KB at D = 256).
static FailureOr<WgmmaTiling> getFp8WgmmaTiling(const AttentionSpec &s,
                                                std::string *why) {
  if (s.descale == DescaleMode::None)
    return attn::detail::failWith(why, "FP8 attention needs descales");
  if (!s.outDtype ||
      (*s.outDtype != ScalarType::BF16 && *s.outDtype != ScalarType::F16 &&
       *s.outDtype != ScalarType::F32))
    return attn::detail::failWith(
        why, "the FP8 wgmma kernel writes a bf16, f16 or f32 "
             "output");
  if ((s.bias && *s.bias == ScalarType::F8E4M3) ||
      (s.sinks && *s.sinks == ScalarType::F8E4M3))
    return attn::detail::failWith(
        why, "FP8 attention takes its bias and sinks in f16, "
             "bf16 or f32");
  auto isPanelled = [](int64_t d) {
    return !ShapedType::isDynamic(d) && (d == 128 || d == 256);
  };
  if (!isPanelled(s.headDim) || !isPanelled(s.valueHeadDim))
    return attn::detail::failWith(
        why, "the FP8 wgmma kernel needs head dims of 128 or 256 "
             "(whole 128-byte panels of e4m3)");
  if (!s.scale && !s.runtimeValues)
    return attn::detail::failWith(why, "the wgmma kernel needs a known scale");
  WgmmaTiling t;
  t.fp8 = true;
  t.stages = 2;
  t.keys = s.valueHeadDim <= 128 ? 128 : 64;
  // P·V reads Vᵀ as one 128-byte panel of keys: the key block is fixed.
  if ((s.blockKV && s.blockKV != t.keys) || (s.blockQ && s.blockQ != 128))
    return attn::detail::failWith(
        why, "the FP8 wgmma kernel's blocks are 128 query rows by " +
                 Twine(t.keys) + " keys at value head dim " +
                 Twine(s.valueHeadDim));
  if (t.sharedMemoryBytes(s.headDim, s.valueHeadDim) > kMaxSharedMemory)
    return attn::detail::failWith(
        why, "the FP8 wgmma kernel's tiles of head dims " + Twine(s.headDim) +
                 " and " + Twine(s.valueHeadDim) +
                 " do not fit 227 KB of shared memory");
  return t;
}

int64_t mlir::attn::detail::WgmmaTiling::blocksPerSM(int64_t d,
                                                     int64_t dv) const {
  if (consumerWarpgroups != 1)
    return 1;
  // 1 KB of each block's shared memory is the system's (sm_90: 228 KB an
  // SM, 227 KB a block at most).
  auto fit = [&](int64_t blocks) {
    return blocks * (sharedMemoryBytes(d, dv) + 1024) <= 228 * 1024;
  };
  // Three blocks need the consumers to fit kTrioConsumerRegisters: O and S
  // of at most 64 columns each (the persistent schedule's producer takes 40
  // registers, which three blocks cannot spare).
  if (lean && keys <= 64 && d <= 64 && dv <= 64 && !fp8 && !persistent &&
      fit(3))
    return 3;
  return fit(2) ? 2 : 1;
}

int64_t mlir::attn::detail::WgmmaTiling::consumerRegisters(int64_t d,
                                                           int64_t dv) const {
  if (consumerWarpgroups == 2)
    return 240;
  return blocksPerSM(d, dv) == 3 ? kTrioConsumerRegisters
                                 : kSoloConsumerRegisters;
}

FailureOr<WgmmaTiling>
mlir::attn::detail::getWgmmaTiling(const AttentionSpec &spec,
                                   std::string *why) {
  const AttentionSpec &s = spec;
  // FP8's transposing warps would need a tile loop of their own.
  if (s.dtype == ScalarType::F8E4M3 && s.persistent)
    return failWith(why, "the persistent schedule is not built for FP8");
  if (s.dtype == ScalarType::F8E4M3)
    return getFp8WgmmaTiling(s, why);
  if (s.dtype != ScalarType::F16 && s.dtype != ScalarType::BF16)
    return failWith(why, "the wgmma kernel needs f16, bf16 or f8E4M3FN");
  auto isPanelled = [](int64_t d) {
    return !ShapedType::isDynamic(d) && d >= 64 && d <= 256 && d % 64 == 0;
  };
  if (!isPanelled(s.headDim) || !isPanelled(s.valueHeadDim))
    return failWith(why, "the wgmma kernel needs head dims of 64, 128, 192 or "
                         "256 (64-column panels, at most 256 for wgmma's N)");
  if (!spec.scale && !spec.runtimeValues)
    return failWith(why, "the wgmma kernel needs a known scale");
  if (s.blockQ && s.blockQ != 64 && s.blockQ != 128)
    return failWith(why, "the wgmma kernel's blocks are 64 or 128 query rows "
                         "(block-q " +
                             Twine(s.blockQ) + ")");
  // Two stages per ring everywhere: at head dim 64, where four fit
  // (208 KB), four measured 3-5% slower on the H200 (bf16, 16k tokens:
  // 438 -> 426 TFLOP/s, causal 399 -> 379).
  // Past head dim 128 the persistent consumers spill (ptxas: 56-216 bytes
  // at 192/128 and 256 with any register split the producer leaves them).
  if (s.persistent && (s.headDim > 128 || s.valueHeadDim > 128))
    return failWith(why, "the persistent schedule takes head dims up to 128");
  WgmmaTiling t;
  t.stages = 2;
  t.persistent = s.persistent;
  t.lean = !s.bias && !s.softcap;
  // One consumer warpgroup a block and two blocks an SM (block-q 64, and
  // by default at D = Dv = 64, where two blocks' 72 KB fit): a block's
  // set-up, pipeline fill and epilogue then overlap the other block's
  // steps, at the price of the ping-pong inside a block and of loading each
  // K/V tile for 64 query rows, not 128. Measured on the H200 (bf16,
  // interleaved A/B, docs/gpu-results.md) against two warpgroups: d64
  // +11% / +17% at 1k tokens (non-causal / causal), +8-12% at 2k-4k, +2% /
  // 0% at 16k; d128 (one block an SM: 144 KB) 26-35% slower. A bias keeps two:
  // its loads spill at 232 registers.
  if (s.blockQ == 64 ||
      (!s.blockQ && s.headDim == 64 && s.valueHeadDim == 64 && !s.bias))
    t.consumerWarpgroups = 1;
  auto fits = [&](int64_t keys) {
    t.keys = keys;
    return t.sharedMemoryBytes(s.headDim, s.valueHeadDim) <= kMaxSharedMemory;
  };
  // Keys per step asked for (block-kv, a tuning knob): any multiple of 16
  // that wgmma's N and shared memory take. Past the consumers' registers
  // (240, or 232 with one warpgroup; O, S and P live together: Dv / 2 +
  // 3 · keys / 4) ptxas spills: slower, not wrong.
  if (s.blockKV) {
    if (s.blockKV < 16 || s.blockKV > 256 || s.blockKV % 16 != 0)
      return failWith(why, "the wgmma kernel's key blocks are multiples of 16 "
                           "up to 256 (block-kv " +
                               Twine(s.blockKV) + ")");
    if (!fits(s.blockKV))
      return failWith(why, "the wgmma kernel's key blocks of " +
                               Twine(s.blockKV) + " with head dims " +
                               Twine(s.headDim) + " and " +
                               Twine(s.valueHeadDim) +
                               " do not fit 227 KB of shared memory");
    return t;
  }
  // Keys per step by default: 128 where O (Dv / 2 registers a consumer
  // thread) leaves room for S (keys / 2) and P (keys / 4) and the stages
  // fit: head dims 64 and 128, and DeepSeek's MLA prefill (D = 192,
  // Dv = 128: 208 KB). Otherwise 64: head dim 256 (O takes 128 registers).
  // FlashAttention-3's non-causal tile of 176 keys at head dim 128 is a
  // length alternative (getLengthAlternatives), not the default.
  for (int64_t keys : {128, 64})
    if ((keys == 64 || s.valueHeadDim <= 128) && fits(keys))
      return t;
  return failWith(why, "the wgmma kernel's tiles of head dims " +
                           Twine(s.headDim) + " and " + Twine(s.valueHeadDim) +
                           " do not fit 227 KB of shared memory");
}

namespace mlir {
namespace attn {
namespace detail {
namespace {
/// Emits the sm_90a body, one method per phase of the file comment's
/// design: set-up (indices, shared memory, mbarriers), the producer, and
/// the consumers' prologue, steady-state step and epilogue.
/// The class is over 150 lines only because its phases are methods defined
/// in it; each phase is a function well under the limit.
class WgmmaKernel {
public:
  WgmmaKernel(OpBuilder &builder, Location loc, const AttentionSpec &spec,
              const AttentionKernelArgs &args, ValueRange tmaDescriptors,
              const WgmmaTiling &tiling)
      : b(loc, builder), e{b}, softmax(e, /*approxExp2=*/true), spec(spec),
        args(args), tmaDescriptors(tmaDescriptors), fp8(tiling.fp8),
        D(spec.headDim), Dv(spec.valueHeadDim), N(tiling.keys),
        kStages(tiling.stages), panelColumns(tiling.panelColumns()),
        qPanels(D / panelColumns), vPanels(Dv / panelColumns),
        qBytes(tiling.rows() * D * tiling.elementBytes()),
        kStageBytes(N * D * tiling.elementBytes()),
        vStageBytes(N * Dv * tiling.elementBytes()), vtStageBytes(Dv * 128),
        kBase(qBytes), vBase(kBase + kStages * kStageBytes),
        vtBase(vBase + kStages * vStageBytes), pRegisters(fp8 ? N / 8 : N / 4),
        blockRows(tiling.rows()),
        consumerThreads(128 * tiling.consumerWarpgroups),
        consumerWarps(consumerThreads / 32),
        pingPong(tiling.consumerWarpgroups == 2), persistent(tiling.persistent),
        consumerRegisters(tiling.consumerRegisters(D, Dv)) {
    assert(!(fp8 && persistent) && "getWgmmaTiling refuses persistent FP8");
    ctx = builder.getContext();
    f16 = getType(ctx, spec.dtype);
    boxElt = fp8 ? Type(b.getI8Type()) : f16;
    f32 = b.getF32Type();
    i64 = b.getI64Type();
    workgroup = gpu::AddressSpaceAttr::get(
        ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
    // Without softcap or bias (and with a positive scale) the scores stay
    // raw: the row maximum is taken on them and scaled once, and the scale
    // folds into the exponent's FMA, exp2(s·scale·log2 e - m). A run-time
    // scale is never negative (withRuntimeValues keeps negative scales
    // compiled in; launchers pick such a kernel for one), and a zero scale
    // makes every logit 0 either way.
    // FP8's factor carries the descales, whose sign is known at run time
    // only: S = Q·Kᵀ is computed negated where it is negative (wgmma's
    // scale-a of -1) and the factor is its magnitude (emitConsumer).
    rawScores = !spec.softcap && !args.bias &&
                (fp8 || spec.runtimeValues || spec.scale > 0);
  }

  void emit(OpBuilder &builder, gpu::GPUFuncOp func) {
    tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    c0 = e.idx(0);
    c1 = e.idx(1);
    computeIndices();
    // Shared memory: Q panels, K and V stages (panels of 64 columns, each
    // `rows` x 128 bytes, as the TMA boxes land them); its byte address,
    // for the wgmma descriptors.
    smem = getDynamicSharedMemory(builder, b.getLoc(), func);
    smemAddr = arith::IndexCastUIOp::create(
        b, i64, memref::ExtractAlignedPointerAsIndexOp::create(b, smem));
    createBarriers();
    if (!persistent)
      computeKeyBlocks();
    initBarriers();
    ticks = e.idx(10000000);
    // Warp specialization: the last warpgroup produces (one thread issues
    // every TMA copy) on 24 registers a thread, the two before it consume
    // on 240 (setmaxnreg moves the register file to them).
    auto roles =
        scf::IfOp::create(b,
                          arith::CmpIOp::create(b, arith::CmpIPredicate::uge,
                                                tid, e.idx(consumerThreads)),
                          /*withElse=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&roles.getThenRegion().front());
      emitProducer();
    }
    b.setInsertionPointToStart(&roles.getElseRegion().front());
    emitConsumer();
  }

private:
  /// The thread's warpgroup, warp and lane; the block's tile (below),
  /// unless persistent; the key position of query row 0.
  void computeIndices() {
    BlockCoordinates block;
    if (!persistent)
      block = getBlockCoordinates(e, spec, args);
    wg = e.div(tid, e.idx(128));
    Value lt = e.rem(tid, e.idx(128));
    warp = e.div(lt, e.idx(32));
    lane = e.rem(lt, e.idx(32));
    lanes = FragmentLanes::get(e, lane);
    if (!persistent)
      setTile(block);
    off = e.sub(args.sk, args.sq);
  }
  /// The tile's query rows, head and batch, and its KV head (GQA).
  void setTile(const BlockCoordinates &tile) {
    h = tile.head;
    bIdx = tile.batch;
    q0 = e.mul(tile.queryBlock, e.idx(blockRows));
    kvh = e.div(h, e.div(args.hq, args.hkv));
  }
  /// The band of key blocks the tile visits, as in the mma.sync kernel.
  void computeKeyBlocks() {
    blocks = getKeyBlocks(e, spec, args, off, q0, blockRows, N);
    blocks.end = e.smax(blocks.begin, blocks.end);
  }

  /// Runs `body` for each tile of this block, with the tile's indices and
  /// key blocks set: once, or (persistent) for the block's rounds k = 0,
  /// 1, ... of the snake deal (getPersistentTile), with tileCount (= k, the
  /// block's tiles before this one) and ringBase (their key blocks: the
  /// rings' position) carried along.
  void forEachTile(function_ref<void()> body) {
    if (!persistent)
      return body();
    Value queryBlocks =
        arith::CeilDivSIOp::create(b, args.sq, e.idx(blockRows));
    Value tiles = e.mul(e.mul(queryBlocks, args.hq), args.batch);
    Value grid = gpu::GridDimOp::create(b, gpu::Dimension::x);
    Value block = gpu::BlockIdOp::create(b, gpu::Dimension::x);
    // Every round but the last deals a tile to each block; the last deals
    // the first tiles % grid positions, and this block's position in it
    // depends on the round's parity.
    Value rounds = e.div(tiles, grid);
    Value last = getPersistentTile(rounds, grid, block);
    Value count = e.add(rounds, e.sel(e.slt(last, tiles), c1, c0));
    e.loop(c0, count, c1, ValueRange{c0},
           [&](Value k, ValueRange carried) -> SmallVector<Value> {
             tileCount = k;
             ringBase = carried[0];
             setTile(getTileCoordinates(e, spec, args,
                                        getPersistentTile(k, grid, block),
                                        queryBlocks));
             computeKeyBlocks();
             body();
             return {e.add(ringBase, e.sub(blocks.end, blocks.begin))};
           });
    tileCount = ringBase = Value();
  }

  /// The tile that block `block` of `grid` takes in round k: the snake
  /// deal, k·grid + block in even rounds and k·grid + grid - 1 - block in
  /// odd ones. getTileCoordinates orders the tiles heaviest first, so each
  /// pair of rounds gives a block one of the heavier and one of the lighter
  /// tiles, where a plain stride (t += grid) gives block 0 the heaviest of
  /// every round. A bijection of [0, tiles) onto the blocks' rounds.
  Value getPersistentTile(Value k, Value grid, Value block) {
    Value odd = e.eq(e.rem(k, e.idx(2)), c1);
    Value position = e.sel(odd, e.sub(e.sub(grid, block), c1), block);
    return e.add(e.mul(k, grid), position);
  }

  /// mbarriers, per stage s: kFull[s] / vFull[s] (the K / V tile landed),
  /// kEmpty[s] / vEmpty[s] (every consumer warp is done with it); then Q.
  /// K and V have their own rings: a K tile is released as soon as its S is
  /// computed, its V tile only after the next step's P·V.
  /// FP8 adds vtFull[s] (count: the transposing threads) and vtEmpty[s]
  /// (count 8, the consumer warps) for the ring of transposed V tiles; its
  /// vEmpty[s] counts the transposing threads, which release V.
  void createBarriers() {
    auto barrierType = nvgpu::MBarrierGroupType::get(
        ctx, workgroup, (fp8 ? 6 : 4) * kStages + 1 + (persistent ? 1 : 0));
    barriers = nvgpu::MBarrierCreateOp::create(b, barrierType);
    qBarrier = e.idx(4 * kStages);
  }
  /// Persistent: every consumer warp is done with Q (after FP8's barriers,
  /// which it does not have).
  Value qEmpty() { return e.idx(4 * kStages + 1); }
  Value kFull(Value st) { return st; }
  Value vFull(Value st) { return e.add(st, e.idx(kStages)); }
  Value kEmpty(Value st) { return e.add(st, e.idx(2 * kStages)); }
  Value vEmpty(Value st) { return e.add(st, e.idx(3 * kStages)); }
  Value vtFull(Value st) { return e.add(st, e.idx(4 * kStages + 1)); }
  Value vtEmpty(Value st) { return e.add(st, e.idx(5 * kStages + 1)); }
  /// What the consumers release after P·V: V, or FP8's transposed V.
  Value pvEmpty(Value st) { return fp8 ? vtEmpty(st) : vEmpty(st); }

  /// Emits `body` for thread 0 of the block only.
  void ifThread0(function_ref<void()> body) { e.when(e.eq(tid, c0), body); }

  /// Prologue: the barriers, visible to every thread before use.
  void initBarriers() {
    ifThread0([&] {
      for (int64_t i = 0; i < kStages; ++i) {
        nvgpu::MBarrierInitOp::create(b, barriers, e.idx(1), kFull(e.idx(i)),
                                      Value());
        nvgpu::MBarrierInitOp::create(b, barriers, e.idx(1), vFull(e.idx(i)),
                                      Value());
        nvgpu::MBarrierInitOp::create(b, barriers, e.idx(consumerWarps),
                                      kEmpty(e.idx(i)), Value());
        nvgpu::MBarrierInitOp::create(
            b, barriers, e.idx(fp8 ? kTransposeThreads : consumerWarps),
            vEmpty(e.idx(i)), Value());
        if (fp8) {
          nvgpu::MBarrierInitOp::create(b, barriers, e.idx(kTransposeThreads),
                                        vtFull(e.idx(i)), Value());
          nvgpu::MBarrierInitOp::create(b, barriers, e.idx(consumerWarps),
                                        vtEmpty(e.idx(i)), Value());
        }
      }
      nvgpu::MBarrierInitOp::create(b, barriers, e.idx(1), qBarrier, Value());
      if (persistent)
        nvgpu::MBarrierInitOp::create(b, barriers, e.idx(consumerWarps),
                                      qEmpty(), Value());
      NVVM::FenceMbarrierInitOp::create(b);
      for (Value d : tmaDescriptors)
        nvgpu::TmaPrefetchOp::create(b, d, Value());
    });
    e.barrier();
  }

  /// The phase parity `p` (0 or 1) as the i1 mbarrier waits take.
  Value parity(Value p) {
    return arith::TruncIOp::create(b, b.getI1Type(),
                                   arith::IndexCastUIOp::create(b, i64, p));
  }

  /// TMA: the box of each descriptor is 128 bytes (64 f16/bf16 or 128
  /// e4m3 columns, as i8) by `rows` rows; its destination is a view of that
  /// shape.
  MemRefType tmaBoxType(int64_t rows) {
    SmallVector<int64_t> dims =
        spec.layout == Layout::BSHD
            ? SmallVector<int64_t>{1, rows, 1, panelColumns}
            : SmallVector<int64_t>{1, 1, rows, panelColumns};
    return MemRefType::get(dims, boxElt, AffineMap(), workgroup);
  }
  Value view(MemRefType type, Value byteOffset) {
    return memref::ViewOp::create(b, type, smem, byteOffset, ValueRange{});
  }
  /// Coordinates (innermost first) of the box at column `col`, row `row` of
  /// head `head`.
  SmallVector<Value> coords(int64_t col, Value row, Value head) {
    if (spec.layout == Layout::BSHD)
      return {e.idx(col), head, row, bIdx};
    return {e.idx(col), row, head, bIdx};
  }
  void tmaLoad(Value desc, MemRefType type, int64_t byteOffset, Value dynOffset,
               ArrayRef<Value> crd, Value barrierId) {
    Value dst = view(type, dynOffset ? e.add(dynOffset, e.idx(byteOffset))
                                     : e.idx(byteOffset));
    nvgpu::TmaAsyncLoadOp::create(b, dst, barriers, desc, crd, barrierId,
                                  /*multicastMask=*/Value(),
                                  /*predicate=*/Value());
  }
  /// Requests the K (or V) tile of key block `kb` into `stage`: its bytes on
  /// the stage's full barrier, one TMA box per 64-column panel.
  void issueTile(Value desc, int64_t base, int64_t stageBytes, int64_t panels,
                 Value fullBarrier, Value kb, Value stage) {
    nvgpu::MBarrierArriveExpectTxOp::create(b, barriers, e.idx(stageBytes),
                                            fullBarrier, Value());
    for (int64_t p = 0; p < panels; ++p)
      tmaLoad(desc, tmaBoxType(N), base + p * N * 128,
              e.mul(stage, e.idx(stageBytes)),
              coords(p * panelColumns, e.mul(kb, e.idx(N)), kvh), fullBarrier);
  }

  /// The producer warpgroup: one thread loads Q, then the K and V tiles of
  /// every key block into the rings, each stage once its consumers released
  /// it.
  void emitProducer() {
    // FP8's transposing warps need more than the loads' 24 registers; its
    // consumers give up 8 each (kFp8ProducerRegisters).
    NVVM::SetMaxRegisterOp::create(
        b,
        b.getI32IntegerAttr(
            fp8 ? kFp8ProducerRegisters
                : (persistent ? kPersistentProducerRegisters : 24)),
        NVVM::SetMaxRegisterActionAttr::get(
            ctx, NVVM::SetMaxRegisterAction::decrease));
    if (fp8)
      e.when(arith::CmpIOp::create(b, arith::CmpIPredicate::uge, tid,
                                   e.idx(kTransposeFirst)),
             [&] { emitTransposer(); });
    e.when(e.eq(tid, e.idx(consumerThreads)),
           [&] { forEachTile([&] { produceTile(); }); });
  }

  /// The producer thread's loads for one tile: Q (persistent: once the
  /// consumers released the previous tile's), then its K and V tiles.
  void produceTile() {
    if (persistent)
      e.when(e.slt(c0, tileCount), [&] {
        nvgpu::MBarrierTryWaitParityOp::create(
            b, barriers, parity(e.rem(e.sub(tileCount, c1), e.idx(2))), ticks,
            qEmpty());
      });
    nvgpu::MBarrierArriveExpectTxOp::create(b, barriers, e.idx(qBytes),
                                            qBarrier, Value());
    for (int64_t p = 0; p < qPanels; ++p)
      tmaLoad(tmaDescriptors[0], tmaBoxType(blockRows), p * blockRows * 128,
              Value(), coords(p * panelColumns, q0, h), qBarrier);
    e.loop(blocks.begin, blocks.end, c1, [&](Value kb) {
      Value i = ringPosition(e.sub(kb, blocks.begin));
      Value stage = e.rem(i, e.idx(kStages));
      // From the second round on, wait until the consumers released the
      // stage (phase i / kStages - 1 of its empty barrier); K first, as
      // it is needed first and released first.
      Value phase = e.rem(e.add(e.div(i, e.idx(kStages)), c1), e.idx(2));
      Value again = arith::CmpIOp::create(b, arith::CmpIPredicate::uge, i,
                                          e.idx(kStages));
      auto waitEmpty = [&](Value barrierId) {
        e.when(again, [&] {
          nvgpu::MBarrierTryWaitParityOp::create(b, barriers, parity(phase),
                                                 ticks, barrierId);
        });
      };
      waitEmpty(kEmpty(stage));
      issueTile(tmaDescriptors[1], kBase, kStageBytes, qPanels, kFull(stage),
                kb, stage);
      waitEmpty(vEmpty(stage));
      issueTile(tmaDescriptors[2], vBase, vStageBytes, vPanels, vFull(stage),
                kb, stage);
    });
  }

  /// FP8: warps 2 and 3 of the producer warpgroup transpose each V tile
  /// (keys x Dv, as TMA landed it) into Vᵀ (Dv rows of 128 bytes, 128-byte
  /// swizzled: the K-major B operand FP8 wgmma needs for P·V), the keys of
  /// every 16 permuted so that P's accumulator registers are the register-A
  /// fragment as they stand (packFp8P). Per key block: wait for V and for
  /// the consumers to free the Vᵀ stage; transpose; make the writes visible
  /// to the async proxy; arrive on vtFull and vEmpty.
  void emitTransposer() {
    Value t = e.sub(tid, e.idx(kTransposeFirst));
    TransposeLanes lanes =
        getTransposeLanes(e.div(t, e.idx(32)), e.rem(t, e.idx(32)));
    e.loop(blocks.begin, blocks.end, c1, [&](Value kb) {
      Value i = e.sub(kb, blocks.begin);
      Value stage = stageOf(i);
      nvgpu::MBarrierTryWaitParityOp::create(b, barriers, phaseOf(i), ticks,
                                             vFull(stage));
      Value again = arith::CmpIOp::create(b, arith::CmpIPredicate::uge, i,
                                          e.idx(kStages));
      e.when(again, [&] {
        Value phase = e.rem(e.add(e.div(i, e.idx(kStages)), c1), e.idx(2));
        nvgpu::MBarrierTryWaitParityOp::create(b, barriers, parity(phase),
                                               ticks, vtEmpty(stage));
      });
      transposeTile(lanes, stage);
      NVVM::FenceProxyOp::create(
          b, NVVM::ProxyKindAttr::get(ctx, NVVM::ProxyKind::async_shared),
          NVVM::SharedSpaceAttr::get(ctx, NVVM::SharedSpace::shared_cta));
      nvgpu::MBarrierArriveOp::create(b, barriers, vtFull(stage));
      nvgpu::MBarrierArriveOp::create(b, barriers, vEmpty(stage));
    });
  }

  /// A transposing lane's part of every tile, as byte offsets in its stage
  /// that the units' compile-time offsets are XORed into and added to.
  ///
  /// A tile is N / 32 x Dv / 16 units; in unit (qg, dg) a lane takes 4 key
  /// columns of Vᵀ (4q .., q = 8·qg + lane / 4) by 4 value columns (4dq ..,
  /// dq = 4·dg + lane % 4) and does a 4 x 4 byte transpose. Warp w takes
  /// the value groups dg = w·Dv / 32 + sd (sd < Dv / 32) and every qg; lanes
  /// 16-31 take the units in the order sd ^ 1, and lanes whose lane % 4 >= 2
  /// in the order qg ^ 1, which spreads their loads and stores over all 32
  /// banks.
  ///
  /// Column 4q + j of Vᵀ holds key 16·(q / 4) + 2·(q % 4) + (j & 1) + 8·(j
  /// >> 1) (packFp8P's order). In the 128-byte swizzle, byte (row r, column
  /// c) of a panel is at r·128 + ((c / 16) ^ (r % 8))·16 + c % 16: every
  /// address splits into a lane's part and compile-time parts on disjoint
  /// bits, (lane base ^ constant) + constant.
  struct TransposeLanes {
    /// Loads: V byte (key rowBase + 32·qg + kj, column 16·dg + 4·(lane % 4))
    /// is at (srcBase ^ (qg·4096 + ((sd % 8) ^ (kj & 1))·16)) + kj·128.
    Value srcBase;
    /// Stores: Vᵀ byte (row 16·dg + 4·(lane % 4) + r, column 4q) is at
    /// (dstBase ^ (sd·2048 + ((2·qg) ^ r)·16)) + r·128.
    Value dstBase;
  };
  TransposeLanes getTransposeLanes(Value warp, Value lane) {
    Value lq = e.div(lane, e.idx(4)), ld = e.rem(lane, e.idx(4));
    Value sdSwap = e.div(lq, e.idx(4)), qgSwap = e.div(ld, e.idx(2));
    auto xori = [&](Value x, Value y) -> Value {
      return arith::XOrIOp::create(b, x, y);
    };
    // Warp w's first value group: its chunk bits (Dv = 128: 4w) and panel
    // (Dv = 256: w).
    Value wGroup = e.mul(warp, e.idx(Dv / 32));
    Value rowBase =
        e.add(e.mul(sdSwap, e.idx(16)), e.mul(e.rem(lq, e.idx(4)), e.idx(2)));
    Value chunk =
        xori(xori(e.rem(rowBase, e.idx(8)), e.rem(wGroup, e.idx(8))), sdSwap);
    Value src = e.add(
        e.add(e.add(e.mul(rowBase, e.idx(128)), e.mul(qgSwap, e.idx(4096))),
              e.add(e.mul(ld, e.idx(4)), e.mul(chunk, e.idx(16)))),
        e.mul(e.div(wGroup, e.idx(8)), e.idx(N * 128)));
    // Destination rows 16·dg + 4·ld + r: row % 8 = 4·(ld % 2) + r; chunk
    // (2·qg + lq / 4) ^ (row % 8).
    Value dChunk = xori(xori(sdSwap, e.mul(e.rem(ld, e.idx(2)), e.idx(4))),
                        e.mul(qgSwap, e.idx(2)));
    Value dst = e.add(
        e.add(e.mul(e.add(e.mul(wGroup, e.idx(16)), e.mul(ld, e.idx(4))),
                    e.idx(128)),
              e.mul(sdSwap, e.idx(2048))),
        e.add(e.mul(e.rem(lq, e.idx(4)), e.idx(4)), e.mul(dChunk, e.idx(16))));
    return {src, dst};
  }

  /// The lane's 4 x 4 byte transposes of one tile (every unit of its warp,
  /// unrolled): loads of 4 key rows, two rounds of prmt, stores of 4 Vᵀ
  /// rows.
  void transposeTile(const TransposeLanes &lanes, Value stage) {
    // The stages start at multiples of 16 KB and the XORed constants stay
    // below: the stage joins the lane's base first, so that each address is
    // one XOR and an immediate (a base per constant would not fit the
    // producer's registers).
    assert(vBase % 16384 == 0 && vStageBytes % 16384 == 0 &&
           vtBase % 16384 == 0 && vtStageBytes % 16384 == 0 &&
           "transposed tiles' stages at multiples of 16 KB");
    Value src = e.add(lanes.srcBase,
                      e.add(e.idx(vBase), e.mul(stage, e.idx(vStageBytes))));
    Value dst = e.add(lanes.dstBase,
                      e.add(e.idx(vtBase), e.mul(stage, e.idx(vtStageBytes))));
    auto word = [&](Value base, int64_t xorBits, int64_t plus) {
      return e.add(arith::XOrIOp::create(b, base, e.idx(xorBits)), e.idx(plus));
    };
    auto prmt = [&](Value lo, Value hi, int32_t selector) -> Value {
      return NVVM::PermuteOp::create(
          b, b.getI32Type(), lo, hi, ci32(selector),
          NVVM::PermuteModeAttr::get(ctx, NVVM::PermuteMode::DEFAULT));
    };
    auto i32x1 = VectorType::get({1}, b.getI32Type());
    auto i8x4 = VectorType::get({4}, b.getI8Type());
    const int64_t qGroups = N / 32, dGroups = Dv / 32;
    for (int64_t sd = 0; sd < dGroups; ++sd)
      for (int64_t qg = 0; qg < qGroups; ++qg) {
        Value w[4];
        for (int64_t j = 0; j < 4; ++j) {
          int64_t kj = (j & 1) + 8 * (j >> 1);
          Value addr =
              word(src, qg * 4096 + ((sd % 8) ^ (j & 1)) * 16, kj * 128);
          Value bytes = vector::LoadOp::create(b, i8x4, smem, addr,
                                               /*nontemporal=*/false,
                                               llvm::MaybeAlign(4));
          w[j] = vector::ExtractOp::create(
              b, vector::BitCastOp::create(b, i32x1, bytes),
              ArrayRef<int64_t>{0});
        }
        // out[r] = byte r of w[0], w[1], w[2], w[3].
        Value t0 = prmt(w[0], w[1], 0x5140), t1 = prmt(w[0], w[1], 0x7362);
        Value t2 = prmt(w[2], w[3], 0x5140), t3 = prmt(w[2], w[3], 0x7362);
        Value out[4] = {prmt(t0, t2, 0x5410), prmt(t0, t2, 0x7632),
                        prmt(t1, t3, 0x5410), prmt(t1, t3, 0x7632)};
        for (int64_t r = 0; r < 4; ++r) {
          Value addr = word(dst, sd * 2048 + ((2 * qg) ^ r) * 16, r * 128);
          Value bytes = vector::BitCastOp::create(
              b, i8x4, vector::FromElementsOp::create(b, i32x1, out[r]));
          vector::StoreOp::create(b, bytes, smem, addr, /*nontemporal=*/false,
                                  llvm::MaybeAlign(4));
        }
      }
  }

  Value ci32(int64_t v) {
    return arith::ConstantOp::create(b, b.getI32IntegerAttr(v));
  }
  /// The wgmma helpers shared with the backward (WgmmaOps.h).
  Value descriptor(Value addr, int64_t lbo) {
    return buildWgmmaDescriptor(b, addr, lbo);
  }
  Value advance(Value base, int64_t offset) {
    return advanceWgmmaDescriptor(b, base, offset);
  }
  /// Lane 0 of each consumer warp arrives on `barrierId` (count: all of
  /// them).
  void release(Value barrierId) {
    e.when(e.eq(lane, c0),
           [&] { nvgpu::MBarrierArriveOp::create(b, barriers, barrierId); });
  }
  Value stageAddr(int64_t base, int64_t bytes, Value stage) {
    return e.add(smemAddr,
                 arith::IndexCastUIOp::create(
                     b, i64, e.add(e.idx(base), e.mul(stage, e.idx(bytes)))));
  }
  /// Position j (relative to the first key block) -> stage and phase
  /// parity.
  Value stageOf(Value j) { return e.rem(ringPosition(j), e.idx(kStages)); }
  Value phaseOf(Value j) {
    return parity(e.rem(e.div(ringPosition(j), e.idx(kStages)), e.idx(2)));
  }
  /// The rings' position of the tile's key block j: j, or persistent, j
  /// past the block's earlier tiles' key blocks.
  Value ringPosition(Value j) { return ringBase ? e.add(ringBase, j) : j; }

  /// Issues S_j = Q·K_jᵀ (64 x N per warpgroup) once K_j has landed.
  Value issueS(Value j) {
    Value stage = stageOf(j);
    nvgpu::MBarrierTryWaitParityOp::create(b, barriers, phaseOf(j), ticks,
                                           kFull(stage));
    Value kDescBase = descriptor(stageAddr(kBase, kStageBytes, stage), 0);
    // k-steps of 32 bytes: 16 f16/bf16 or 32 e4m3 columns.
    auto chain = [&](bool negateA) {
      return buildWgmmaChain(
          b, f16, LLVM::PoisonOp::create(b, sType), N, D * (fp8 ? 1 : 2) / 32,
          /*zeroInit=*/true,
          [&](int64_t kk) {
            return advance(qDescBase,
                           (kk / 4) * blockRows * 128 + (kk % 4) * 32);
          },
          [&](int64_t kk) {
            return advance(kDescBase, (kk / 4) * N * 128 + (kk % 4) * 32);
          },
          /*bMNMajor=*/false, negateA);
    };
    if (!negateScores)
      return chain(/*negateA=*/false);
    // FP8 with a negative factor: S = (-Q)·Kᵀ (a uniform branch).
    auto ifOp = scf::IfOp::create(b, sType, negateScores, /*withElse=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    scf::YieldOp::create(b, chain(/*negateA=*/true));
    b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    scf::YieldOp::create(b, chain(/*negateA=*/false));
    return ifOp.getResult(0);
  }
  /// Issues O += P_j·V_j once V_j has landed, P_j from registers (`p`:
  /// four per k-step of 16 keys, packP's).
  Value issuePV(Value j, Value o, ValueRange p) {
    Value stage = stageOf(j);
    if (fp8) {
      // Vᵀ K-major (one 128-byte panel: N <= 128 keys), k-steps of 32 keys.
      nvgpu::MBarrierTryWaitParityOp::create(b, barriers, phaseOf(j), ticks,
                                             vtFull(stage));
      Value vtDescBase =
          descriptor(stageAddr(vtBase, vtStageBytes, stage), /*lbo=*/0);
      return buildWgmmaRegisterAChain(
          b, f16, o, p.take_front(N / 32 * 4), Dv,
          [&](int64_t kk) { return advance(vtDescBase, kk * 32); });
    }
    nvgpu::MBarrierTryWaitParityOp::create(b, barriers, phaseOf(j), ticks,
                                           vFull(stage));
    Value vDescBase = descriptor(stageAddr(vBase, vStageBytes, stage), N * 128);
    // V rows 16kk.. of the stage; the next 64 columns are N rows on.
    return buildWgmmaRegisterAChain(
        b, f16, o, p.take_front(N / 16 * 4), Dv,
        [&](int64_t kk) { return advance(vDescBase, kk * 16 * 128); });
  }

  /// The consumer warpgroups: set-up, then the schedule of emitSchedule and
  /// the epilogue.
  void emitConsumer() {
    NVVM::SetMaxRegisterOp::create(
        b,
        b.getI32IntegerAttr(fp8          ? kFp8ConsumerRegisters
                            : persistent ? persistentConsumerRegisters()
                                         : consumerRegisters),
        NVVM::SetMaxRegisterActionAttr::get(
            ctx, NVVM::SetMaxRegisterAction::increase));
    if (!persistent)
      return consumeTile();
    setUpOperands();
    setUpTurns();
    // The turn passes on from tile to tile, as in FlashAttention-3: handed
    // to warpgroup 0 once before the first and taken back once after the
    // last. Handing it over per tile would let warpgroup 1 arrive twice on
    // warpgroup 0's barrier (the end of one tile, the start of the next)
    // before warpgroup 0 syncs on it once: a deadlock.
    if (pingPong)
      e.when(e.eq(wg, c1), [&] { passTurn(); });
    forEachTile([&] { consumeTile(); });
    if (pingPong)
      e.when(e.eq(wg, c0), [&] { waitTurn(); });
  }

  /// One tile: wait for Q, the schedule of emitSchedule and the epilogue.
  /// Without the persistent loop, the tile-independent set-up (operands,
  /// turns) is emitted here, in its place of the single-tile kernel.
  void consumeTile() {
    nvgpu::MBarrierTryWaitParityOp::create(
        b, barriers, parity(persistent ? e.rem(tileCount, e.idx(2)) : c0),
        ticks, qBarrier);
    // Rows of this thread: g and g + 8 of its warp's 16 in its warpgroup.
    Value wgRow0 = e.add(q0, e.mul(wg, e.idx(kWgRows)));
    row[0] = e.add(e.add(wgRow0, e.mul(warp, e.idx(16))), lanes.g);
    row[1] =
        e.add(e.add(e.add(wgRow0, e.mul(warp, e.idx(16))), lanes.g), e.idx(8));
    Value outScale = applyDescales();
    std::tie(m0, l0) = getInitialRowState(e, args, h, lanes.t,
                                          fp8 ? std::exp2(kFp8POffset) : 1.0);
    if (!persistent)
      setUpOperands();
    scores.emplace(spec, args, bIdx, h, c0, c1, rawScores);
    if (!persistent)
      setUpTurns();
    ValueRange state = emitSchedule();
    // Step 5: quad-reduce the row sums, normalize, write.
    for (int64_t i = 0; i < 2; ++i)
      writeOutputRow(e, softmax, spec, args, bIdx, h, lanes, row[i], i,
                     state[i], state[2 + i], state[4], Dv, outScale);
  }

  /// FP8: the descales of the (batch, KV head); dq · dk joins the scores'
  /// factor, dv the output's (returned; null for other inputs). Its P
  /// carries 2^8, a sink's weight too. (Once a block: FP8 is not
  /// persistent.)
  Value applyDescales() {
    if (!fp8)
      return Value();
    Value at = spec.descale == DescaleMode::Head
                   ? e.add(e.mul(bIdx, args.hkv), kvh)
                   : c0;
    args.scoreFactor = e.fmul(
        getScoreFactor(e, spec, args),
        e.fmul(e.loadF32(args.descaleQ, at), e.loadF32(args.descaleK, at)));
    Value outScale = e.loadF32(args.descaleV, at);
    if (rawScores) {
      // Raw scores need a factor >= 0: a negative one negates S instead.
      negateScores = arith::CmpFOp::create(b, arith::CmpFPredicate::OLT,
                                           args.scoreFactor, e.f(0.0));
      args.scoreFactor = math::AbsFOp::create(b, args.scoreFactor);
    }
    return outScale;
  }

  /// The accumulators' types, O's zeros and the descriptor of this
  /// warpgroup's Q rows.
  void setUpOperands() {
    oType = getWgmmaAccumulatorType(ctx, Dv);
    sType = getWgmmaAccumulatorType(ctx, N);
    oInit = LLVM::PoisonOp::create(b, oType);
    for (int64_t i = 0; i < Dv / 2; ++i)
      oInit =
          LLVM::InsertValueOp::create(b, oInit, e.f(0.0), ArrayRef<int64_t>{i});
    Value qAddr = e.add(smemAddr, arith::IndexCastUIOp::create(
                                      b, i64, e.mul(wg, e.idx(kWgRows * 128))));
    qDescBase = descriptor(qAddr, 0);
  }

  /// Ping-pong between the two consumer warpgroups (FlashAttention-3): a
  /// warpgroup issues its GEMMs only in its turn and then hands the turn
  /// over, so one warpgroup's softmax overlaps the other's GEMMs. Turn
  /// barrier of warpgroup w: named barrier 3 + w over both warpgroups (256
  /// threads), synced by w and arrived at by the other. Each tile hands the
  /// turn around as many times on both sides (emitSchedule), so tiles
  /// follow one another on the same barriers.
  void setUpTurns() {
    myTurn =
        arith::IndexCastUIOp::create(b, b.getI32Type(), e.add(wg, e.idx(3)));
    otherTurn =
        arith::IndexCastUIOp::create(b, b.getI32Type(), e.sub(e.idx(4), wg));
  }

  /// Persistent: this warp is done reading Q (its last S has completed).
  void releaseQ() {
    if (persistent)
      release(qEmpty());
  }

  void waitTurn() {
    if (!pingPong)
      return;
    NVVM::BarrierOp::create(b, /*res=*/Type(), myTurn, ci32(consumerThreads),
                            /*reductionOp=*/nullptr,
                            /*reductionPredicate=*/Value());
  }
  void passTurn() {
    if (!pingPong)
      return;
    NVVM::BarrierArriveOp::create(b, otherTurn, ci32(consumerThreads));
  }
  /// The schedule (FlashAttention-3's intra-warpgroup overlap): the softmax
  /// of step j runs while the tensor cores compute P_{j-1}·V_{j-1}.
  ///   prologue: S_0; softmax_0 -> P_0
  ///   step j:   issue S_j, issue O += P_{j-1}·V_{j-1}; wait S_j (release
  ///             K_j); softmax_j -> P_j; wait P·V (release V_{j-1});
  ///             O *= alpha_j
  ///   epilogue: O += P_{n-1}·V_{n-1}
  /// Rows without any key block (n = 0) skip it all. Returns m[2], l[2]
  /// (partial) and O.
  ValueRange emitSchedule() {
    Value nBlocks = e.sub(blocks.end, blocks.begin);
    // Warpgroup 0 has the first turn; it takes the last hand-over at the
    // end (persistent: of the block's last tile, emitConsumer).
    if (pingPong && !persistent)
      e.when(e.eq(wg, c1), [&] { passTurn(); });
    SmallVector<Type> stateTypes = {f32, f32, f32, f32, oType};
    auto any =
        scf::IfOp::create(b, stateTypes, e.slt(c0, nBlocks), /*withElse=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&any.getElseRegion().front());
      releaseQ();
      scf::YieldOp::create(b, ValueRange{m0, m0, l0, l0, oInit});
      b.setInsertionPointToStart(&any.getThenRegion().front());
      scf::YieldOp::create(b, emitBlocks(nBlocks));
    }
    if (pingPong && !persistent)
      e.when(e.eq(wg, c0), [&] { waitTurn(); });
    return any.getResults();
  }

  /// The prologue, steady-state loop and epilogue of emitSchedule's
  /// schedule for n = `nBlocks` > 0 key blocks.
  SmallVector<Value> emitBlocks(Value nBlocks) {
    waitTurn();
    Value s0 = issueS(c0);
    passTurn();
    buildWgmmaWait(b, 0);
    release(kEmpty(stageOf(c0)));
    // The first block always takes the masked softmax (one copy of the code
    // less; the test costs little on one block).
    // Loop state: m[2], l[2], O, then P of the previous step (N / 4
    // registers).
    SmallVector<Value> st =
        computeSoftmax(s0, e.mul(blocks.begin, e.idx(N)), c0,
                       ValueRange{m0, m0, l0, l0}, /*masked=*/true);
    SmallVector<Value> init = {st[0], st[1], st[2], st[3], oInit};
    init.append(st.begin() + 6, st.end());
    ValueRange loop =
        e.loop(c1, nBlocks, c1, init,
               [&](Value j, ValueRange iter) -> SmallVector<Value> {
                 Value jPrev = e.sub(j, c1);
                 waitTurn();
                 Value s = issueS(j);
                 Value o = issuePV(jPrev, iter[4], iter.drop_front(5));
                 passTurn();
                 buildWgmmaWait(b, 1);
                 release(kEmpty(stageOf(j)));
                 SmallVector<Value> sm = softmaxStep(s, j, iter.take_front(4));
                 buildWgmmaWait(b, 0);
                 release(pvEmpty(stageOf(jPrev)));
                 // Always: skipping it where no row's max moved (a vote and
                 // a branch, as the latent decode kernel does) measured 2-4%
                 // slower here (H200, docs/gpu-results.md, 2026-12-04).
                 o = softmax.rescale(o, {sm[4], sm[5]});
                 SmallVector<Value> next = {sm[0], sm[1], sm[2], sm[3], o};
                 next.append(sm.begin() + 6, sm.end());
                 return next;
               });
    releaseQ();
    Value last = e.sub(nBlocks, c1);
    Value o = issuePV(last, loop[4], loop.drop_front(5));
    buildWgmmaWait(b, 0);
    release(pvEmpty(stageOf(last)));
    return {loop[0], loop[1], loop[2], loop[3], o};
  }

  /// computeSoftmax with the mask only where the key block crosses the
  /// band's edge.
  SmallVector<Value> softmaxStep(Value s, Value j, ValueRange ml) {
    Value k0 = e.mul(e.add(blocks.begin, j), e.idx(N));
    Value full = e.land(e.sle(blocks.fullFrom, k0),
                        e.sle(e.add(k0, e.idx(N)), blocks.fullTo));
    SmallVector<Type> types(6, f32);
    types.append(pRegisters, b.getI32Type());
    return ifFullBlock(e, full, types, [&](bool masked) {
      return computeSoftmax(s, k0, j, ml, masked);
    });
  }

  /// The softmax of S_j (keys from k0): new m, l (partial), alpha and P_j.
  /// `masked` adds the per-element test of the key range and the band.
  /// Returns m[2], l[2], alpha[2], then P_j's N / 4 registers.
  SmallVector<Value> computeSoftmax(Value s, Value k0, Value j, ValueRange ml,
                                    bool masked) {
    // Step 2: logits in the exp2 domain, masked outside the band (raw
    // scores: see rawScores).
    Value factor = getScoreFactor(e, spec, args);
    SmallVector<SmallVector<Value, 4>> x(N / 8);
    for (int64_t n = 0; n < N / 8; ++n)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t jj = 0; jj < 2; ++jj) {
          Value v = getAccumulatorElement(b, b.getLoc(), s, n, i, jj);
          x[n].push_back(scores->apply(
              b, b.getLoc(), v, row[i],
              [&] { return lanes.column(e, k0, n, jj); }, masked));
        }
    // Step 3: the rows' new running max (raw maxima scaled once), alpha.
    OnlineSoftmax::RowUpdate rows[2];
    for (int64_t i = 0; i < 2; ++i) {
      SmallVector<Value> terms;
      for (int64_t n = 0; n < N / 8; ++n)
        for (int64_t jj = 0; jj < 2; ++jj)
          terms.push_back(x[n][i * 2 + jj]);
      Value mx = softmax.rowMax(terms);
      if (rawScores)
        mx = e.fmul(mx, factor);
      rows[i] = softmax.update(e.fmax(mx, ml[i]), ml[i], ml[2 + i]);
    }
    SmallVector<Value> p =
        fp8 ? packFp8P(x, factor, rows) : packP(x, factor, rows);
    SmallVector<Value> result = {rows[0].max, rows[1].max,   rows[0].sum,
                                 rows[1].sum, rows[0].alpha, rows[1].alpha};
    result.append(p);
    return result;
  }

  /// P = exp2(x - m's) of logits `x` as wgmma's register-A operand, and
  /// the rows' sums added to `rows`. The thread's columns 8n + 2t, + 1 of
  /// row i (g, g + 8) pack into one 32-bit register; k-step kk (keys 16kk
  /// ..) takes (n, i) = (2kk, 0), (2kk, 1), (2kk + 1, 0), (2kk + 1, 1), the
  /// A fragment's a0 .. a3.
  SmallVector<Value> packP(ArrayRef<SmallVector<Value, 4>> x, Value factor,
                           MutableArrayRef<OnlineSoftmax::RowUpdate> rows) {
    auto pairType = VectorType::get({2}, f16);
    SmallVector<Value> p;
    // exp2(x·factor - m) as one FFMA (raw scores) or FADD: LLVM emits
    // mul.rn/sub.rn for separate operations, which ptxas may not contract.
    Value negM[2];
    for (int64_t i = 0; i < 2; ++i)
      negM[i] = arith::NegFOp::create(b, rows[i].safeMax);
    SmallVector<Value> terms[2];
    for (int64_t n = 0; n < N / 8; ++n)
      for (int64_t i = 0; i < 2; ++i) {
        SmallVector<Value> pair;
        for (int64_t jj = 0; jj < 2; ++jj) {
          Value xv = x[n][i * 2 + jj];
          Value p = softmax.exp2(rawScores ? e.fma(xv, factor, negM[i])
                                           : e.fadd(xv, negM[i]));
          terms[i].push_back(p);
          pair.push_back(arith::TruncFOp::create(b, f16, p));
        }
        p.push_back(vector::BitCastOp::create(
            b, VectorType::get({1}, b.getI32Type()),
            vector::FromElementsOp::create(b, pairType, pair)));
        p.back() = vector::ExtractOp::create(b, p.back(), ArrayRef<int64_t>{0});
      }
    for (int64_t i = 0; i < 2; ++i)
      rows[i].sum = e.fadd(rows[i].sum, softmax.rowSum(terms[i]));
    return p;
  }

  /// FP8's P = exp2(x - m + 8) of logits `x` (raw scores: x·factor;
  /// FlashAttention-3's
  /// offset: P in [0, 256], where e4m3 is precise), the rows' sums (before
  /// rounding) added to `rows`, and P rounded to e4m3 (cvt.rn.satfinite)
  /// as the register-A operand of the m64nNk32 wgmma: k-step kk (keys 32kk
  /// ..) is tiles n = 4kk .. 4kk + 3, its registers a0 .. a3 rows (g, g +
  /// 8) of tiles (4kk, 4kk + 1), then of (4kk + 2, 4kk + 3), each register
  /// the bytes of columns (2t, 2t + 1) of its two tiles. The fragment reads
  /// those as columns 4t .. 4t + 3 (and 16 + 4t ..): Vᵀ holds its keys in
  /// that order (emitTransposer).
  SmallVector<Value> packFp8P(ArrayRef<SmallVector<Value, 4>> x, Value factor,
                              MutableArrayRef<OnlineSoftmax::RowUpdate> rows) {
    Value negM[2];
    for (int64_t i = 0; i < 2; ++i)
      negM[i] = e.fsub(e.f(kFp8POffset), rows[i].safeMax);
    SmallVector<Value> terms[2];
    // half[n][i]: the two bytes of tile n, row i, as i16 (column 2t low).
    SmallVector<std::array<Value, 2>> half(N / 8);
    auto fp8Type = Float8E4M3FNType::get(ctx);
    for (int64_t n = 0; n < N / 8; ++n)
      for (int64_t i = 0; i < 2; ++i) {
        Value p[2];
        for (int64_t jj = 0; jj < 2; ++jj) {
          Value xv = x[n][i * 2 + jj];
          p[jj] = softmax.exp2(rawScores ? e.fma(xv, factor, negM[i])
                                         : e.fadd(xv, negM[i]));
          terms[i].push_back(p[jj]);
        }
        half[n][i] = NVVM::ConvertF32x2ToF8x2Op::create(
            b, b.getI16Type(), p[1], p[0], NVVM::FPRoundingMode::RN,
            NVVM::SaturationMode::SATFINITE, /*relu=*/false, fp8Type);
      }
    for (int64_t i = 0; i < 2; ++i)
      rows[i].sum = e.fadd(rows[i].sum, softmax.rowSum(terms[i]));
    auto word = [&](Value lo, Value hi) -> Value {
      Type i32 = b.getI32Type();
      Value l = arith::ExtUIOp::create(b, i32, lo);
      Value h = arith::ShLIOp::create(b, arith::ExtUIOp::create(b, i32, hi),
                                      ci32(16));
      return arith::OrIOp::create(b, l, h);
    };
    SmallVector<Value> regs;
    for (int64_t kk = 0; kk < N / 32; ++kk)
      for (int64_t pair = 0; pair < 2; ++pair)
        for (int64_t i = 0; i < 2; ++i) {
          int64_t n = 4 * kk + 2 * pair;
          regs.push_back(word(half[n][i], half[n + 1][i]));
        }
    return regs;
  }

  ImplicitLocOpBuilder b;
  Emitter e;
  OnlineSoftmax softmax;
  const AttentionSpec &spec;
  /// A copy: FP8's consumers fold the descales into its score factor.
  AttentionKernelArgs args;
  /// The Q, K and V tensor maps.
  ValueRange tmaDescriptors;
  MLIRContext *ctx;
  /// The element type of Q, K and V, and of the TMA boxes (i8 for FP8).
  Type f16, boxElt, f32, i64;
  gpu::AddressSpaceAttr workgroup;
  bool rawScores;
  const bool fp8;
  const int64_t D, Dv, N, kStages, panelColumns;
  /// Shared memory: panels of Q, K and V, byte offsets of the K and V
  /// rings (and FP8's ring of transposed V tiles).
  const int64_t qPanels, vPanels, qBytes, kStageBytes, vStageBytes,
      vtStageBytes, kBase, vBase, vtBase;
  /// P's 32-bit registers a step: N / 4 (f16/bf16 pairs), N / 8 (e4m3).
  const int64_t pRegisters;
  /// Query rows of the block, its consumer threads and warps; whether two
  /// consumer warpgroups take GEMM turns (ping-pong).
  const int64_t blockRows, consumerThreads, consumerWarps;
  const bool pingPong;
  /// The persistent schedule, and within its tile loop this block's tiles
  /// and key blocks before the current tile (null outside it).
  const bool persistent;
  /// What the consumers of a plain kernel take (WgmmaTiling).
  const int64_t consumerRegisters;
  Value tileCount, ringBase;
  /// What the persistent schedule's consumers get
  /// (kPersistentProducerRegisters).
  int64_t persistentConsumerRegisters() const { return pingPong ? 232 : 216; }

  Value tid, c0, c1, h, bIdx, wg, warp, lane, q0, kvh, off;
  FragmentLanes lanes;
  Value smem, smemAddr, barriers, qBarrier, ticks;
  KeyBlocks blocks;
  /// Consumer state: rows, initial m and l, O = 0, operand addresses.
  Value row[2];
  Value m0, l0;
  Type oType, sType;
  Value oInit, qDescBase, myTurn, otherTurn;
  /// FP8 with raw scores: whether the score factor is negative (S is then
  /// computed negated; null otherwise).
  Value negateScores;
  std::optional<ScoreTransform> scores;
};
} // namespace
} // namespace detail
} // namespace attn
} // namespace mlir

void mlir::attn::detail::buildWgmmaKernelBody(OpBuilder &builder, Location loc,
                                              gpu::GPUFuncOp func,
                                              const AttentionSpec &spec,
                                              const AttentionKernelArgs &args,
                                              ValueRange tmaDescriptors,
                                              const WgmmaTiling &tiling) {
  WgmmaKernel(builder, loc, spec, args, tmaDescriptors, tiling)
      .emit(builder, func);
}

/// The kernels a resolved wgmma spec gets beside its default one, each
/// preferred over some sizes (docs/design-length-choice.md). Keys a step
/// trade per-step overhead (row reductions, O's rescale, the consumers'
/// hand-over) against the last, partly masked step and against the number
/// of blocks that fill the SMs, and so turn on the key count, which only
/// the launch knows.
///
/// FlashAttention-3's 176 keys a step at D = Dv = 128, non-causal, against
/// 128 (bf16, H200, both kernels in one process, 8 interleaved rounds;
/// docs/bench/2026-12-04-h200-528a59f-block-kv): 1.017x at 8k x 2 and
/// 1.020x at 16k; 0.984x at 4k x 4, 0.968x at 2k x 8 and 0.933x at 1k x 16.
/// Hence from 8192 keys up.
///
/// Causal at D = Dv = 128: one consumer warpgroup of 64 rows and 64 keys a
/// step (80 KB, two blocks an SM, so one block's set-up, pipeline fill and
/// epilogue overlap the other's steps, and the diagonal wastes a 64 x 64
/// tile, not a 128 x 128 one) against the default 128 x 128 (bf16, H200,
/// 8 interleaved rounds; docs/bench/2026-12-04-h200-d64-one-warpgroup,
/// ab-q64-kv64-d128.txt): 1.088x at 1k x 16 and 0.877x at 16k. The sweep
/// of 2026-12-06 (H200, 5 interleaved rounds of CUDA graphs;
/// docs/bench/2026-12-06-h200-stop51): 1.197x at 512 x 32, 1.153x at
/// 1k x 16, 1.033x at 2k x 8, 0.935x at 4k x 4 (Llama-3.1-8B GQA: 1.155x,
/// 1.009x, 0.888x at 1k, 2k, 4k). Hence through 2048 keys. Other causal
/// steps with two warpgroups lost at every length up to 4k.
///
/// Causal at D = Dv = 64: one consumer warpgroup with 64 keys a step, three
/// blocks an SM (WgmmaTiling::blocksPerSM), against the default 128 keys a
/// step and two blocks (the same sweep): 1.313x at 512 x 32, 1.177x at
/// 1k x 16, 0.970x at 2k x 8, 0.938x at 4k x 4. The crossover, log-linear
/// between 1k and 2k, is near 1.85k: below 1792 keys. Non-causal it was
/// 1.029x at 1k x 16 and 0.954x at 2k x 8: left out.
///
/// A bias or a softcap (more registers a step) were not measured: they
/// keep one kernel.
SmallVector<AttentionSpec>
mlir::attn::detail::getLengthAlternatives(const AttentionSpec &resolved) {
  SmallVector<AttentionSpec> alternatives;
  const AttentionSpec &s = resolved;
  if (s.kernel != AttentionKernelKind::Wgmma || s.blockQ || s.blockKV ||
      !s.prefer.empty() || s.persistent)
    return alternatives;
  if (!(s.dtype == ScalarType::F16 || s.dtype == ScalarType::BF16) ||
      s.headDim != s.valueHeadDim || s.bias || s.softcap)
    return alternatives;
  auto addIfTiled = [&](AttentionSpec alternative) {
    if (succeeded(getWgmmaTiling(alternative, /*why=*/nullptr)))
      alternatives.push_back(std::move(alternative));
  };
  // One consumer warpgroup of 64 rows, 64 keys a step, below `end` keys.
  auto addShort = [&](int64_t end) {
    AttentionSpec small = s;
    small.blockQ = 64;
    small.blockKV = 64;
    small.prefer = {SizeRange{"Sk", 0, end}};
    addIfTiled(std::move(small));
  };
  if (s.headDim == 128 && s.mask.kind == MaskKind::None) {
    AttentionSpec wide = s;
    wide.blockKV = 176;
    wide.prefer = {SizeRange{"Sk", 8192, std::nullopt}};
    addIfTiled(std::move(wide));
  }
  if (s.headDim == 128 && s.mask.kind == MaskKind::Causal)
    addShort(2049);
  if (s.headDim == 64 && s.mask.kind == MaskKind::Causal)
    addShort(1792);
  return alternatives;
}
