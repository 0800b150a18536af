//===- PagedKernel.cpp - paged decode kernels (split-KV, mma.sync) --------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// attn.paged_attention on sm_80+ tensor cores, as two kernels:
//
// * The split kernel. A block of 4 warps owns one KV head of one sequence,
//   16 packed query rows and one split of the sequence's keys. The rows are
//   (query token, query head of the KV head's group) pairs, row r = token ·
//   G + head % G, so every K/V byte a block loads feeds all the query heads
//   that read it (GQA/MQA). Keys stream through a three-stage cp.async pipeline
//   of 64-key tiles gathered row by row through the block table (any page
//   size; NHD or HND pages), XOR-swizzled in shared memory. Warp w takes
//   keys 16w..16w+15 of each tile: S = Q·Kᵀ and O += P·V as m16n8k16
//   mma.sync on ldmatrix fragments, the online softmax on the accumulator
//   fragments (each warp its own m, l, O). At the end the 4 warps' states
//   are merged through shared memory and the block writes its normalized
//   partial output (f32) and log-sum-exp.
// * The combine kernel merges the splits of each (sequence, token, head):
//   lse = log Σ_s exp(lse_s) (+ exp(sink)), O = Σ_s exp(lse_s - lse) · O_s,
//   in the output's element type, with the LSE if requested.
//
// Keys past a sequence's length, and pages past its last, are never read
// (zero-filled copies from a valid address), so whatever the cache holds
// there (NaN included) cannot reach an output; nor are the block-table
// entries of those pages (-1 or any index is fine there), and a length is
// clamped to what its table row can name (buildPagedSequenceLength). The
// number of splits is a launch-time size (the host's heuristic,
// python/attn/gpu.py).
//
// NSA's selected branch (attn.nsa, "nsa.attend") runs the general split
// kernel's phases with another key list and epilogue: a block per query
// token's selected blocks of the dense K and V, no split, and the three
// branches' gated sum written directly (NsaAttendKernel).
//
// Each kernel is built by a class whose methods are its phases: the general
// split kernel (GeneralSplitKernel), NSA's (NsaAttendKernel) and the combine
// kernel (CombineKernel) here, the latent split kernel in
// PagedLatentKernel.cpp, on the pieces both split kernels share
// (PagedSplitKernel.h).
//
//===----------------------------------------------------------------------===//

#include "PagedKernel.h"
#include "KernelCommon.h"
#include "Kernels.h"
#include "PagedSplitKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

namespace {
constexpr int64_t kWarps = 4, kThreads = 32 * kWarps;
/// Packed query rows per block (one m16 MMA tile) and keys per pipeline step
/// (16 per warp).
constexpr int64_t kRows = 16, kTileKeys = 16 * kWarps;

/// How a paged variant is tiled. Up to head dim 256 with D = Dv: 3 stages
/// (two tiles load while one is computed; two blocks fit an SM at head dim
/// 128 -- 2 stages left decode at a quarter of the copy bandwidth), Q's
/// fragments in registers, K and V rows shared by each thread's copies with
/// their block-table entries read a step ahead. Wider heads (MLA's latent
/// decode, D = 576, Dv = 512): the value columns are split across blocks
/// (`dvChunk` each; each block recomputes S), 2 stages, Q re-read from shared
/// memory at every step, block-table entries read with the copies.
struct PagedTiling {
  int64_t stages = 3;
  int64_t dvChunk = 0;
  bool narrow = true;

  static PagedTiling get(int64_t d, int64_t dv) {
    PagedTiling t;
    t.narrow = d == dv && d <= 256;
    t.dvChunk = t.narrow ? dv : std::min<int64_t>(dv, 128);
    t.stages = t.narrow ? 3 : 2;
    return t;
  }
  int64_t dvChunks(int64_t dv) const { return dv / dvChunk; }
  int64_t sharedMemoryBytes(int64_t d) const {
    return 2 * (kRows * d + stages * kTileKeys * (d + dvChunk));
  }
};

} // namespace

int64_t mlir::attn::detail::pagedValueChunks(int64_t d, int64_t dv) {
  return PagedTiling::get(d, dv).dvChunks(dv);
}

/// Whether `spec` takes the latent split kernel (PagedLatentKernel.cpp):
/// heads wider than the narrow tiling whose values are a prefix of the key
/// rows.
static bool isLatent(const PagedAttentionSpec &spec) {
  const int64_t d = spec.headDim, dv = spec.valueHeadDim;
  if (ShapedType::isDynamic(d) || ShapedType::isDynamic(dv) ||
      (d == dv && d <= 256))
    return false;
  return spec.valuesArePrefixOfKeys &&
         llvm::all_of(kLatentRowTileCounts, [&](int64_t m) {
           return LatentTiling{m}.accepts(d, dv);
         });
}

LogicalResult
mlir::attn::detail::checkPagedKernelEligible(const PagedAttentionSpec &spec,
                                             std::string *why) {
  auto fail = [&](const Twine &msg) { return failWith(why, msg); };
  if (spec.dtype != ScalarType::F16 && spec.dtype != ScalarType::BF16)
    return fail("the paged GPU kernel takes f16 or bf16 (got " +
                stringifyScalarType(spec.dtype) + ")");
  if (ShapedType::isDynamic(spec.headDim) ||
      ShapedType::isDynamic(spec.valueHeadDim) ||
      ShapedType::isDynamic(spec.pageSize))
    return fail("the paged GPU kernel needs static head dims and page size");
  const int64_t d = spec.headDim, dv = spec.valueHeadDim;
  bool ok = d % 16 == 0 && dv % 16 == 0 && d > 0 && dv > 0;
  if (ok && !(d == dv && d <= 256))
    ok = (d <= 576 && (dv <= 128 || dv % 128 == 0) && dv <= 512 &&
          PagedTiling::get(d, dv).sharedMemoryBytes(d) <=
              kMaxPagedSharedMemory) ||
         isLatent(spec);
  if (!ok)
    return fail("the paged GPU kernel needs head dims that are multiples of "
                "16, D = Dv up to 256, D up to 576 with Dv up to 128 or a "
                "multiple of 128 up to 512 (MLA: 576 / 512), or values that "
                "are the first Dv columns of the key rows (Dv a multiple of "
                "128, D of 32); got D = " +
                Twine(d) + ", Dv = " + Twine(dv));
  return success();
}

/// The name of the split kernel of `spec` (the latent kernels add their row
/// count).
static std::string getPagedKernelName(const PagedAttentionSpec &spec) {
  std::string name;
  llvm::raw_string_ostream os(name);
  os << "attn_paged_" << stringifyScalarType(spec.dtype) << "_d" << spec.headDim
     << "_dv" << spec.valueHeadDim << "_"
     << stringifyCacheLayout(spec.cacheLayout) << "_p" << spec.pageSize;
  os << "_" << stringifyMaskKind(spec.mask.kind);
  // Values left to run time appear as what the kernel takes: a softcap, and
  // the mask's kind.
  if (!spec.runtimeValues) {
    if (spec.mask.isWindow())
      os << "_l" << spec.mask.left << "_r" << spec.mask.right;
    os << "_s" << hexBits(spec.scale);
  }
  if (spec.softcap)
    os << "_cap";
  if (spec.softcap && !spec.runtimeValues)
    os << hexBits(*spec.softcap);
  // The index type of the block table and lengths (i32 unnamed): a kernel
  // reads them with their width, so two tables make two kernels.
  if (spec.tableDtype != ScalarType::I32)
    os << "_" << stringifyScalarType(spec.tableDtype);
  return name;
}

/// The combine kernel's name: it depends on the output type, Dv, the sinks'
/// type and whether the LSE is written.
static std::string getCombineKernelName(const PagedAttentionSpec &spec) {
  std::string name;
  llvm::raw_string_ostream os(name);
  os << "attn_paged_combine_" << stringifyScalarType(spec.dtype) << "_dv"
     << spec.valueHeadDim;
  if (spec.sinks)
    os << "_sinks" << stringifyScalarType(*spec.sinks);
  if (spec.lse)
    os << "_lse";
  return name;
}

namespace {
/// The general split kernel's builder (see the file comment); build() emits
/// its phases in order.
/// The class is over 150 lines only because its phases are methods defined
/// in it; each phase is a function well under the limit.
class GeneralSplitKernel : protected PagedSplitKernel {
public:
  GeneralSplitKernel(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                     const PagedAttentionSpec &spec)
      : PagedSplitKernel(b, func, spec, /*separateValues=*/true),
        tiling(PagedTiling::get(D, Dv)), kStages(tiling.stages),
        DvB(tiling.dvChunk), qInRegisters(tiling.narrow) {}
  virtual ~GeneralSplitKernel() = default;

  void build() {
    carveSharedMemory();
    emitKeys();
    stageQuery(qS, kRows, kThreads, [&](Value r, Value c, int64_t dim) {
      return swizzle(r, c, dim);
    });
    auto [firstGroup, nextPages] = startPipeline();
    ValueRange fin = keyLoop(nextPages);
    nvgpu::DeviceAsyncWaitOp::create(b, firstGroup, b.getI32IntegerAttr(0));
    barrier();
    mergeWarps(fin);
    writeOutputs();
  }

protected:
  /// For a kernel of another signature over the same phases (NSA's
  /// selected branch): the subclass binds the arguments.
  GeneralSplitKernel(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                     const PagedAttentionSpec &spec, OwnArguments own,
                     PagedTiling tiling)
      : PagedSplitKernel(b, func, spec, own), tiling(tiling),
        kStages(tiling.stages), DvB(tiling.dvChunk),
        qInRegisters(tiling.narrow) {}

  // The phases a kernel over another key list replaces.

  /// The block's coordinates and keys (emitBlockIndices, emitKeyRange).
  virtual void emitKeys() {
    emitBlockIndices(tiling.dvChunks(Dv), DvB);
    emitKeyRange(kRows, kTileKeys);
  }
  /// The cache row (of the [rows, D] view) that holds `key`, and whether
  /// the key is copied at all (else zero-filled from row 0); `page` emits
  /// the read of its table entry.
  virtual std::pair<Value, Value> keyRow(Value key,
                                         function_ref<Value()> page) {
    Value inside = slt(key, kEnd);
    Value slot = rem(key, idx(P));
    Value row = sel(inside, cacheRow(page(), slot), c0);
    return {row, inside};
  }
  /// The logits of the warp's S tiles (keys from `tileKey0`), -inf where a
  /// row does not take a key.
  virtual std::array<SmallVector<Value>, 2> logits(ArrayRef<Value> sAcc,
                                                   Value tileKey0) {
    return maskedLogits(sAcc, tileKey0, pos);
  }
  /// After the merge: the partial output and LSE of the split.
  virtual void writeOutputs() { writePartials(); }

  /// Shared memory: Q [16, D], K stages [kStages, 64, D], V stages [kStages,
  /// 64, DvB] (16-byte chunks XOR-swizzled by row); after the key loop the
  /// K/V area holds the warps' f32 states for the merge.
  void carveSharedMemory() {
    Value smem = getDynamicSharedMemory(b, loc, func);
    int64_t offset = 0;
    qS = sharedView(smem, {kRows, D}, elt, offset);
    offset += kRows * D * 2;
    const int64_t kvOffset = offset;
    kS = sharedView(smem, {kStages, kTileKeys, D}, elt, offset);
    offset += kStages * kTileKeys * D * 2;
    vS = sharedView(smem, {kStages, kTileKeys, DvB}, elt, offset);
    oW = sharedView(smem, {kWarps, kRows, DvB}, f32, kvOffset);
    mW = sharedView(smem, {kWarps, kRows}, f32,
                    kvOffset + kWarps * kRows * DvB * 4);
    lW = sharedView(smem, {kWarps, kRows}, f32,
                    kvOffset + kWarps * kRows * (DvB + 1) * 4);
  }

  /// Column `c` (a multiple of 8) of row `r` in a swizzled buffer of rows of
  /// `dim` elements.
  Value swizzle(Value r, Value c, int64_t dim) {
    if ((dim / 8) % 8 != 0)
      return c;
    Value chunkIdx = xori(div(c, idx(8)), rem(r, idx(8)));
    return mul(chunkIdx, idx(8));
  }

  /// The block-table entries of tile `step` that this thread's copies read
  /// (narrow tiling, where they are read a step ahead; none otherwise): the
  /// key of copy row k is at tile row (tid * 8 + k * 8 * kThreads) / D.
  SmallVector<Value> loadPages(Value step) {
    SmallVector<Value> pages;
    if (!tiling.narrow)
      return pages;
    for (int64_t k = 0; k < kTileKeys * D / (8 * kThreads); ++k) {
      Value r = div(mul(add(tid, idx(k * kThreads)), idx(8)), idx(D));
      Value key = tileKey(step, r);
      pages.push_back(readPage(tableRow, slt(key, kEnd), key));
    }
    return pages;
  }

  /// Copies of `dim` columns (from column `srcCol0` of rows `srcStride`
  /// elements apart) of every key row of tile `step` into `dst` at `stage`;
  /// the pages from `pages` (narrow tiling) or read here. Keys at or past
  /// kEnd copy nothing (zero fill) from row 0 of the cache, without looking
  /// at their (possibly unset) block-table entries.
  void copyRows(SmallVectorImpl<Value> &tokens, Value step, Value stage,
                Value src, Value dst, int64_t dim, Value srcStride,
                Value srcCol0, ValueRange pages) {
    for (int64_t k = 0; k < kTileKeys * dim / (8 * kThreads); ++k) {
      Value e8 = mul(add(tid, idx(k * kThreads)), idx(8));
      Value r = div(e8, idx(dim)), c = rem(e8, idx(dim));
      Value key = tileKey(step, r);
      auto [row, inside] = keyRow(key, [&] {
        return pages.empty() ? readPage(tableRow, slt(key, kEnd), key)
                             : pages[k];
      });
      tokens.push_back(copyChunk(dst, {stage, r, swizzle(r, c, dim)}, src,
                                 add(add(mul(row, srcStride), srcCol0), c),
                                 inside));
    }
  }

  /// The copies of key tile `step` (K and this block's V columns) into
  /// `stage`, as one cp.async group.
  Value issueTile(Value step, Value stage, ValueRange pages) {
    SmallVector<Value> tokens;
    copyRows(tokens, step, stage, kArg, kS, D, cD, c0, pages);
    copyRows(tokens, step, stage, vArg, vS, DvB, vStride, chunkCol0, pages);
    return nvgpu::DeviceAsyncCreateGroupOp::create(
        b, nvgpu::DeviceAsyncTokenType::get(ctx), tokens);
  }

  /// Q's A fragment for k-step kk, from shared memory.
  Value loadQ(int64_t kk) {
    Value c = mul(add(idx(2 * kk), div(lane, idx(16))), idx(8));
    Value r = rem(lane, idx(16));
    return ldmatrix(qS, {r, swizzle(r, c, D)}, /*transpose=*/false);
  }

  /// The pipeline's start: tiles 0 .. kStages - 2 in flight, the pages of
  /// the next, then (Q's copies are plain stores, fenced by the barrier) Q's
  /// A fragments in registers (narrow tiling). Returns the first tile's
  /// group (the waits count groups; any dominating group token names them)
  /// and the pages of tile kStages - 1.
  std::pair<Value, SmallVector<Value>> startPipeline() {
    if (!tableRow) // set by emitKeys where the table is not per sequence
      tableRow = mul(bIdx, maxPages);
    cD = idx(D);
    lane8 = rem(lane, idx(8));
    Value j8 = div(lane, idx(8));
    jLo = rem(j8, idx(2));
    jHi = div(j8, idx(2));
    Value firstGroup = issueTile(c0, c0, loadPages(c0));
    for (int64_t k = 1; k < kStages - 1; ++k)
      issueTile(idx(k), idx(k), loadPages(idx(k)));
    SmallVector<Value> nextPages = loadPages(idx(kStages - 1));
    barrier();
    if (qInRegisters)
      for (int64_t kk = 0; kk < D / 16; ++kk)
        qa.push_back(loadQ(kk));
    return {firstGroup, nextPages};
  }

  /// The key loop, carrying m[2], l[2] (thread-partial, rows g and g + 8),
  /// the O fragments [DvB / 8] and the pages of the tile a step ahead; the
  /// rows' key positions first.
  ValueRange keyLoop(ValueRange nextPages) {
    for (int64_t i = 0; i < 2; ++i)
      pos[i] = add(div(add(r0, add(g, idx(8 * i))), group), off);
    SmallVector<Value> init{f(-INFINITY), f(-INFINITY), f(0.0), f(0.0)};
    zeroAcc = zeroAccumulator();
    init.append(DvB / 8, zeroAcc);
    pagesAt = init.size();
    llvm::append_range(init, nextPages);
    return loop(c0, steps, c1, init, [&](Value step, ValueRange iter) {
      return keyStep(step, iter);
    });
  }

  /// One step of the key loop: tile step + kStages - 1 (zero-filled past the
  /// end) into the stage freed by the last step, a wait for this step's
  /// tile, then S, the online softmax and O += P·V.
  SmallVector<Value> keyStep(Value step, ValueRange iter) {
    Value stage = rem(step, idx(kStages));
    Value ahead = add(step, idx(kStages - 1));
    Value nextGroup =
        issueTile(ahead, rem(ahead, idx(kStages)), iter.drop_front(pagesAt));
    SmallVector<Value> pagesAhead = loadPages(add(ahead, c1));
    nvgpu::DeviceAsyncWaitOp::create(b, nextGroup,
                                     b.getI32IntegerAttr(kStages - 1));
    barrier();

    Value wKey = mul(warp, idx(16));
    std::array<Value, 2> sAcc = scores(stage, wKey);
    // x[i][n * 2 + j]: row g + 8i, key 8n + 2t + j of the warp's 16.
    Value tileKey0 = tileKey(step, wKey);
    auto x = logits(sAcc, tileKey0);
    SmallVector<Value> next(iter.begin(), iter.end());
    RowStep rowSteps[2];
    for (int64_t i = 0; i < 2; ++i)
      rowSteps[i] = softmax(iter[i], iter[2 + i], x[i], next[i], next[2 + i]);
    accumulatePV(stage, wKey, rowSteps, iter, next);
    // Every warp is done with this stage before the next step refills it.
    barrier();
    next.resize(pagesAt);
    llvm::append_range(next, pagesAhead);
    return next;
  }

  /// S = Q·Kᵀ for this warp's 16 keys of the tile at `stage` (two 8-key
  /// tiles).
  std::array<Value, 2> scores(Value stage, Value wKey) {
    std::array<Value, 2> sAcc = {zeroAcc, zeroAcc};
    for (int64_t kk = 0; kk < D / 16; ++kk) {
      Value r = add(wKey, add(lane8, mul(jHi, idx(8))));
      Value c = mul(add(idx(2 * kk), jLo), idx(8));
      auto [b0, b1] =
          loadBPair(kS, {stage, r, swizzle(r, c, D)}, /*transpose=*/false);
      Value a = qInRegisters ? qa[kk] : loadQ(kk);
      sAcc[0] = buildMmaSync(b, loc, a, b0, sAcc[0]);
      sAcc[1] = buildMmaSync(b, loc, a, b1, sAcc[1]);
    }
    return sAcc;
  }

  /// The online softmax of one of the warp's rows: its new max (over the
  /// running one and the quad's logits `x`) and sum into `m`, `l`.
  RowStep softmax(Value mOld, Value lOld, ArrayRef<Value> x, Value &m,
                  Value &l) {
    Value mx = treeReduce(ArrayRef<Value>{mOld, x[0], x[1], x[2], x[3]},
                          [&](Value u, Value v) { return fmax(u, v); });
    mx = laneMax(mx, 4);
    RowStep step = softmaxStep(mOld, lOld, mx, x);
    m = mx;
    l = step.l;
    return step;
  }

  /// P as the A fragment of m16n8k16 (rows g, g + 8; keys 2t.. of each
  /// 8-key tile), then O = O·alpha + P·V into next[4..].
  void accumulatePV(Value stage, Value wKey, const RowStep rowSteps[2],
                    ValueRange iter, SmallVectorImpl<Value> &next) {
    SmallVector<Value> pElems;
    for (int64_t nt = 0; nt < 2; ++nt)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j)
          pElems.push_back(
              arith::TruncFOp::create(b, elt, rowSteps[i].p[nt * 2 + j]));
    Value pa = vector::FromElementsOp::create(b, aType, pElems);
    for (int64_t ee = 0; ee < DvB / 16; ++ee) {
      Value r = add(wKey, add(lane8, mul(jLo, idx(8))));
      Value c = mul(add(idx(2 * ee), jHi), idx(8));
      auto [b0, b1] =
          loadBPair(vS, {stage, r, swizzle(r, c, DvB)}, /*transpose=*/true);
      for (auto [e, bf] :
           {std::pair<int64_t, Value>{2 * ee, b0}, {2 * ee + 1, b1}}) {
        Value acc =
            scaleRows(iter[4 + e], rowSteps[0].alpha, rowSteps[1].alpha);
        next[4 + e] = buildMmaSync(b, loc, pa, bf, acc);
      }
    }
  }

  /// Each warp writes m, l (quad-summed) and O for its rows g, g + 8 into
  /// the (now free) K/V area.
  void mergeWarps(ValueRange fin) {
    for (int64_t i = 0; i < 2; ++i) {
      Value r = add(g, idx(8 * i));
      Value l = laneSum(fin[2 + i], 4);
      when(eq(t, c0), [&] {
        store(fin[i], mW, {warp, r});
        store(l, lW, {warp, r});
      });
      for (int64_t e = 0; e < DvB / 8; ++e)
        for (int64_t j = 0; j < 2; ++j)
          store(
              vector::ExtractOp::create(b, fin[4 + e], ArrayRef<int64_t>{i, j}),
              oW, {warp, r, add(idx(8 * e + j), mul(t, idx(2)))});
    }
    barrier();
  }

  /// Each thread merges elements of the block's output rows: m* = max m_w,
  /// l* = Σ l_w 2^(m_w - m*), O = Σ O_w 2^(m_w - m*) / l*, into the partial
  /// buffers [Splits, B, Sq, Hq, Dv] and, with the split's LSE (natural
  /// log), [Splits, B, Sq, Hq]; rows without keys give O = 0, LSE = -inf.
  void writePartials() {
    Value rowsAll = mul(mul(batch, sq), hq);
    loop(tid, idx(kRows * DvB), idx(kThreads), [&](Value e) {
      Value r = div(e, idx(DvB)), col = rem(e, idx(DvB));
      Value row = add(r0, r);
      when(slt(row, rows), [&] {
        MergedRow merged = mergeRow(r, col);
        Value outRow = partialRow(rowsAll, row);
        store(merged.o, oPart, add(mul(outRow, idx(Dv)), add(chunkCol0, col)));
        // One thread per row writes the split's LSE (the chunk-0 block).
        when(eq(add(chunkCol0, col), c0), [&] {
          Value lse = naturalLse(merged.m, merged.l);
          store(sel(merged.empty, f(-INFINITY), lse), lsePart, outRow);
        });
      });
    });
  }

  /// Block row `r`'s state merged over the warps (m* = max m_w, l* = Σ l_w
  /// 2^(m_w - m*)) and its normalized output at column `col`, Σ O_w 2^(m_w -
  /// m*) / l* (0 where the row took no key: `empty`).
  struct MergedRow {
    Value o, m, l, empty;
  };
  MergedRow mergeRow(Value r, Value col) {
    Value mStar = f(-INFINITY);
    Value mws[kWarps];
    for (int64_t w = 0; w < kWarps; ++w) {
      mws[w] = load(mW, {idx(w), r});
      mStar = fmax(mStar, mws[w]);
    }
    Value empty = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mStar,
                                        f(-INFINITY));
    Value mSafe = sel(empty, f(0.0), mStar);
    Value lSum = f(0.0), oSum = f(0.0);
    for (int64_t w = 0; w < kWarps; ++w) {
      Value scale = exp2(fsub(mws[w], mSafe));
      lSum = fadd(lSum, fmul(load(lW, {idx(w), r}), scale));
      oSum = fadd(oSum, fmul(load(oW, {idx(w), r, col}), scale));
    }
    return {sel(empty, f(0.0), fdiv(oSum, lSum)), mStar, lSum, empty};
  }

  const PagedTiling tiling;
  const int64_t kStages, DvB;
  /// Q's A fragments loaded once into registers (the narrow tiling), or
  /// re-read from shared memory at every step.
  bool qInRegisters;
  Value qS, kS, vS, oW, mW, lW;
  Value tableRow, cD, lane8, jLo, jHi, zeroAcc;
  SmallVector<Value> qa;
  Value pos[2];
  size_t pagesAt = 0;
};
} // namespace

namespace {
/// NSA's selected branch and the branches' gated sum ("nsa.attend"): the
/// general split kernel's phases over one token's selected blocks. A block
/// owns one query token of one KV head of one sequence: its rows are the
/// token's G query heads (one m16 tile; rows past G are zero and not
/// written), its keys the entries of indices[b, t, h, :], each a page of
/// sel_block keys of the dense key and value tensors [B, Sk, Hkv, D]
/// (virtual key k is key k mod sel_block of entry k / sel_block; the
/// entries need not be sorted). An entry that is negative or names a block
/// that starts past the token's position, and a block's keys past the
/// position, are neither read (zero-filled copies) nor admitted (-inf), so
/// whatever the unselected rows hold cannot reach the output. With one
/// split the block normalizes its rows itself and writes
/// out = g0 · o_cmp + g1 · O_sel + g2 · o_win in f32 (gates f32 [B, Sq, Hq,
/// 3]; o_cmp and o_win the other branches' outputs), so the host neither
/// sorts the selections, copies the keys head-major, combines splits nor
/// runs a gating pass.
class NsaAttendKernel : GeneralSplitKernel {
public:
  NsaAttendKernel(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                  const NsaSelectSpec &spec)
      : GeneralSplitKernel(b, func, getSelectedBranchSpec(spec), OwnArguments{},
                           getTiling(spec.headDim, spec.valueHeadDim)),
        G(spec.queryHeads / spec.kvHeads), N(spec.numSelected),
        Hq(spec.queryHeads), Hkv(spec.kvHeads) {
    // Past head dim 128, Q's fragments beside O's would spill (ptxas: 92
    // and 224 bytes at 192 and 256).
    qInRegisters = tiling.narrow && D <= 128;
    bindArguments(func, {&qArg, &kArg, &vArg, &tableArg, &oCmp, &oWin,
                         &gatesArg, &outArg, &sq, &sk});
  }
  using GeneralSplitKernel::build;

  /// The narrow paged tiling in two stages (68 KB of shared memory at head
  /// dim 128): three blocks an SM instead of two. H200, the NSA benchmark's
  /// shape: the branch 2.55 / 10.1 / 20.4 ms at 8k / 32k / 64k tokens
  /// against 3.24 / 12.9 / 25.9 in three stages (the kernel waits on L2,
  /// and a third block hides more of it than a third stage). O's rescale
  /// skipped by a warp vote where no max moved gained nothing (within
  /// 1%).
  /// With D != Dv (the NSA paper's 192 / 128) the wide tiling, as paged
  /// attention's: Q re-read from shared memory, the value columns in chunks
  /// of at most 128 over blocks (grid y = Hkv x chunks), two stages too.
  static PagedTiling getTiling(int64_t d, int64_t dv) {
    PagedTiling t = PagedTiling::get(d, dv);
    t.stages = 2;
    return t;
  }

  /// The selected branch as paged attention: pages of sel_block keys (NHD:
  /// the dense tensors' rows), no mask (causality is per entry here).
  static PagedAttentionSpec getSelectedBranchSpec(const NsaSelectSpec &spec) {
    PagedAttentionSpec s;
    s.dtype = spec.dtype;
    s.headDim = spec.headDim;
    s.valueHeadDim = spec.valueHeadDim;
    s.pageSize = spec.selBlock;
    s.scale = spec.scale;
    return s;
  }

private:
  /// blockIdx = (token, KV head x value chunk, sequence); the keys are the
  /// N · sel_block
  /// virtual keys of the token's entries, in 64-key tiles.
  void emitKeys() override {
    splits = idx(1);
    hq = idx(Hq);
    hkv = idx(Hkv);
    vStride = idx(Dv);
    emitBlockIndices(tiling.dvChunks(Dv), DvB);
    tileKeys = kTileKeys;
    group = idx(G);
    r0 = mul(rowTile, group);
    rows = add(r0, group);
    off = sub(sk, sq);
    position = add(rowTile, off);
    kBegin = c0;
    kEnd = idx(N * P);
    steps = idx(llvm::divideCeil(N * P, kTileKeys));
    tableRow = mul(add(mul(add(mul(bIdx, sq), rowTile), hkv), kvh), idx(N));
  }

  /// Key `key`'s entry (`page`) names block blk: the key is row
  /// blk · sel_block + key mod sel_block of the sequence, copied if the
  /// entry is listed, blk >= 0 and that row is at or before the position.
  std::pair<Value, Value> keyRow(Value key,
                                 function_ref<Value()> page) override {
    Value listed = slt(key, kEnd);
    Value blk = page();
    Value real = add(mul(blk, idx(P)), rem(key, idx(P)));
    Value inside = land(listed, land(sle(c0, blk), sle(real, position)));
    Value row = sel(inside, add(mul(add(mul(bIdx, sk), real), hkv), kvh), c0);
    return {row, inside};
  }

  /// A warp's 16 keys of a tile lie in one entry (sel_block a multiple of
  /// 16): one read of it, then each key admitted as keyRow copies it.
  std::array<SmallVector<Value>, 2> logits(ArrayRef<Value> sAcc,
                                           Value tileKey0) override {
    Value listed = slt(tileKey0, kEnd);
    Value entry = div(tileKey0, idx(P));
    Value blk =
        loadIndex(tableArg, sel(listed, add(tableRow, entry), tableRow));
    Value shift = mul(sub(blk, entry), idx(P)); // real key = virtual + shift
    Value entryOk = land(listed, sle(c0, blk));
    return maskedLogits(sAcc, tileKey0, [&](int64_t, Value key) {
      return land(entryOk, sle(add(key, shift), position));
    });
  }

  /// The gated sum of the three branches, in the output's type (this
  /// block's value columns).
  void writeOutputs() override {
    loop(tid, idx(kRows * DvB), idx(kThreads), [&](Value e) {
      Value r = div(e, idx(DvB)), col = rem(e, idx(DvB));
      Value row = add(r0, r);
      when(slt(row, rows), [&] {
        MergedRow merged = mergeRow(r, col);
        Value at = add(rowElement(row, Dv), add(chunkCol0, col));
        Value gateAt = rowElement(row, 3);
        Value gate[3];
        for (int64_t i = 0; i < 3; ++i)
          gate[i] = loadF32(gatesArg, add(gateAt, idx(i)));
        Value o = fadd(
            fmul(gate[0], loadF32(oCmp, at)),
            fadd(fmul(gate[1], merged.o), fmul(gate[2], loadF32(oWin, at))));
        store(arith::TruncFOp::create(b, elt, o), outArg, at);
      });
    });
  }

  const int64_t G, N, Hq, Hkv;
  Value oCmp, oWin, gatesArg, outArg, sk, position;
};
} // namespace

namespace {
/// The combine kernel's shape: a warp per 128 columns of an output row, lane
/// c taking columns c, c + 32, c + 64, c + 96 of them (every load and store
/// of a warp coalesced, no alignment asked of the buffers), eight warps a
/// block, and eight splits a step of one online pass (onlinePass), so that a
/// thread keeps 32 loads of the partial outputs in flight.
/// (A block per row and a thread per column, launched B · Sq · Hq blocks of
/// Dv threads, took 25 us for MLA's 8192 rows of 512 columns on the H200:
/// blocks too small to keep the memory busy; a warp per row took 0.6x as
/// long there, but 1.7x as long as that for 128 rows of 64 splits, with too
/// few warps in flight; docs/gpu-results.md, 2026-12-04.)
constexpr int64_t kCombineWarps = 8, kCombineChunk = 128,
                  kCombineSplitsPerStep = 8;

/// The warps a row of `dv` columns takes in the combine kernel.
int64_t getCombineWarpsPerRow(int64_t dv) {
  return llvm::divideCeil(dv, kCombineChunk);
}

/// The combine kernel's builder (see kCombineWarps).
class CombineKernel : Emitter {
public:
  CombineKernel(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                const PagedAttentionSpec &spec)
      : Emitter{b}, Dv(spec.valueHeadDim),
        cols(llvm::divideCeil(std::min(Dv, kCombineChunk), 32)),
        elt(getType(b.getContext(), spec.dtype)), hasSinks(spec.sinks),
        hasLse(spec.lse) {
    SmallVector<Value *> slots{&oPart, &lsePart};
    if (hasSinks)
      slots.push_back(&sinksArg);
    slots.push_back(&oArg);
    if (hasLse)
      slots.push_back(&lseArg);
    slots.append({&batch, &hq, &sq, &splits});
    bindArguments(func, slots);
  }

  void build() {
    Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    lane = rem(tid, idx(32));
    Value w = add(
        mul(gpu::BlockIdOp::create(b, gpu::Dimension::x), idx(kCombineWarps)),
        div(tid, idx(32)));
    const int64_t warpsPerRow = getCombineWarpsPerRow(Dv);
    row = div(w, idx(warpsPerRow));
    col0 = mul(rem(w, idx(warpsPerRow)), idx(kCombineChunk));
    rowsAll = mul(mul(batch, sq), hq);
    c0 = idx(0);
    c1 = idx(1);
    when(slt(row, rowsAll), [&] {
      head = rem(row, hq);
      SmallVector<Value> state = onlinePass();
      Value m = state[0], lSum = state[1];
      ArrayRef<Value> oSum = ArrayRef<Value>(state).drop_front(2);
      Value empty =
          arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, m, f(-INFINITY));
      Value inv = fdiv(f(1.0), lSum);
      for (int64_t k = 0; k < cols; ++k)
        forColumn(k, [&] {
          Value o = sel(empty, f(0.0), fmul(oSum[k], inv));
          store(arith::TruncFOp::create(b, elt, o), oArg,
                add(mul(row, idx(Dv)), column(k)));
        });
      if (hasLse)
        when(eq(col0, c0), [&] { writeLse(m, lSum, empty); });
    });
  }

private:
  /// Column k of this lane.
  Value column(int64_t k) { return add(col0, add(lane, idx(32 * k))); }
  /// Runs `body` where column k is one of the row's: always where Dv is
  /// whole chunks (or, under one chunk, whole groups of 32), else tested.
  void forColumn(int64_t k, function_ref<void()> body) {
    if (Dv >= kCombineChunk ? Dv % kCombineChunk == 0 : 32 * (k + 1) <= Dv)
      return body();
    when(slt(column(k), idx(Dv)), body);
  }

  /// One pass over the splits, kCombineSplitsPerStep a step, as the split
  /// kernels' online softmax: the running max m of the partial LSEs (from
  /// the sink's logit, or -inf), the weights' sum l and the weighted sums of
  /// the lane's columns, both relative to m and rescaled by exp(m - m') when
  /// a step raises it to m'. Returns m, l, then the sums. (A max pass, then
  /// a sum pass, made 2 · splits / 4 dependent steps: 0.94x the old kernel at
  /// 128 rows of 64 splits, docs/bench/2026-12-04-h200-mla-combine.) Splits
  /// past the last read the last one again with weight 0.
  SmallVector<Value> onlinePass() {
    Value m0 = f(-INFINITY), l0 = f(0.0);
    if (hasSinks) {
      sink = loadF32(sinksArg, head);
      m0 = sink;
      l0 = f(1.0); // exp(sink - m) at m = sink
    }
    SmallVector<Value> init(cols + 2, f(0.0));
    init[0] = m0;
    init[1] = l0;
    Value last = sub(splits, c1);
    ValueRange state = loop(
        c0, splits, idx(kCombineSplitsPerStep), init,
        [&](Value s0, ValueRange iter) {
          SmallVector<Value> lse, base;
          Value stepMax = iter[0];
          for (int64_t u = 0; u < kCombineSplitsPerStep; ++u) {
            Value s = add(s0, idx(u));
            Value at = add(mul(smin(s, last), rowsAll), row);
            lse.push_back(sel(slt(s, splits), load(lsePart, at), f(-INFINITY)));
            base.push_back(mul(at, idx(Dv)));
            stepMax = fmax(stepMax, lse.back());
          }
          // -inf only while no split (nor sink) has mass: weights 0 then.
          Value mSafe = sel(arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ,
                                                  stepMax, f(-INFINITY)),
                            f(0.0), stepMax);
          Value rescale = math::ExpOp::create(b, fsub(iter[0], mSafe));
          SmallVector<Value> next = {stepMax, fmul(iter[1], rescale)};
          for (int64_t k = 0; k < cols; ++k)
            next.push_back(fmul(iter[2 + k], rescale));
          for (int64_t u = 0; u < kCombineSplitsPerStep; ++u) {
            Value w = math::ExpOp::create(b, fsub(lse[u], mSafe));
            next[1] = fadd(next[1], w);
            for (int64_t k = 0; k < cols; ++k) {
              // Lanes past Dv (a partial last chunk) read column 0 instead.
              Value c = column(k);
              if (!(Dv >= kCombineChunk ? Dv % kCombineChunk == 0
                                        : 32 * (k + 1) <= Dv))
                c = sel(slt(c, idx(Dv)), c, c0);
              next[2 + k] = fma(w, load(oPart, add(base[u], c)), next[2 + k]);
            }
          }
          return next;
        });
    return SmallVector<Value>(state);
  }

  /// The row's LSE (natural log; -inf without keys): rows are (b, token,
  /// head), the LSE is [B, Hq, Sq]. Lane 0 of the row's first warp.
  void writeLse(Value m, Value lSum, Value empty) {
    when(eq(lane, c0), [&] {
      Value bt = div(row, hq);
      Value token = rem(bt, sq);
      Value bIdx = div(bt, sq);
      Value at = add(mul(add(mul(bIdx, hq), head), sq), token);
      Value lse = fadd(m, math::LogOp::create(b, lSum));
      store(sel(empty, f(-INFINITY), lse), lseArg, at);
    });
  }

  const int64_t Dv, cols;
  Type elt;
  bool hasSinks, hasLse;
  Value oPart, lsePart, sinksArg, oArg, lseArg, batch, hq, sq, splits;
  Value row, col0, lane, rowsAll, head, c0, c1, sink;
};
} // namespace

/// The split kernels' "variant": the spec's fields, with whether the values
/// are read from the key rows (the latent kernels) or a cache of their own.
static llvm::json::Object getSplitVariant(const PagedAttentionSpec &spec,
                                          bool latent) {
  const MaskSpec &mask = spec.mask;
  llvm::json::Object variant{
      {"op", "paged_attention"},
      {"dtype", stringifyScalarType(spec.dtype)},
      {"head_dim", spec.headDim},
      {"value_head_dim", spec.valueHeadDim},
      {"page_size", spec.pageSize},
      {"cache_layout", stringifyCacheLayout(spec.cacheLayout)},
      {"table_dtype", stringifyScalarType(spec.tableDtype)},
      {"lens_dtype", stringifyScalarType(spec.lensDtype)},
      {"mask", stringifyMaskKind(mask.kind)},
      {"scale", static_cast<double>(static_cast<float>(spec.scale))},
      {"softcap", spec.softcap ? llvm::json::Value(*spec.softcap)
                               : llvm::json::Value(nullptr)}};
  if (mask.isWindow()) {
    variant["window_left"] = mask.left;
    variant["window_right"] = mask.right;
  }
  if (spec.runtimeValues) {
    // What the launcher passes as arguments (as the spec's JSON says).
    variant["scale"] = "runtime";
    if (spec.softcap)
      variant["softcap"] = "runtime";
    if (mask.isWindow())
      variant["window_left"] = variant["window_right"] = "runtime";
  }
  variant["values"] = latent ? "key_prefix" : "separate";
  return variant;
}

/// The split kernels' parameters: q, k_cache, v_cache (general kernel),
/// block_table, seq_lens, o_part, lse_part, the sizes, VStride (general
/// kernel): elements between two value rows of the cache (Dv, or the key
/// row's length when the values are a prefix of the key cache the kernel
/// does not know about), and the values a spec leaves to run time.
static KernelSignature getSplitSignature(MLIRContext *ctx,
                                         const PagedAttentionSpec &spec,
                                         bool latent) {
  const int64_t D = spec.headDim, Dv = spec.valueHeadDim;
  Type elt = getType(ctx, spec.dtype), f32 = Float32Type::get(ctx);
  llvm::json::Array cacheShape =
      spec.cacheLayout == CacheLayout::HND
          ? llvm::json::Array{"NumPages", "Hkv", spec.pageSize, D}
          : llvm::json::Array{"NumPages", spec.pageSize, "Hkv", D};
  KernelSignature sig;
  sig.tensor("q", "query", elt, llvm::json::Array{"B", "Sq", "Hq", D});
  sig.tensor("k_cache", "key_cache", elt, cacheShape);
  if (!latent) {
    llvm::json::Array vShape = cacheShape;
    vShape.back() = Dv;
    sig.tensor("v_cache", "value_cache", elt, std::move(vShape));
  }
  sig.tensor("block_table", "block_table", getType(ctx, spec.tableDtype),
             llvm::json::Array{"B", "MaxPages"});
  sig.tensor("seq_lens", "seq_lens", getType(ctx, spec.lensDtype),
             llvm::json::Array{"B"});
  sig.tensor("o_part", "partial_output", f32,
             llvm::json::Array{"Splits", "B", "Sq", "Hq", Dv});
  sig.tensor("lse_part", "partial_lse", f32,
             llvm::json::Array{"Splits", "B", "Sq", "Hq"});
  sig.sizes(ctx, {"B", "Hq", "Hkv", "Sq", "MaxPages", "Splits"});
  if (!latent)
    sig.sizes(ctx, {"VStride"});
  if (spec.runtimeValues)
    sig.runtimeValues(ctx, spec.softcap.has_value(), spec.mask.isWindow());
  return sig;
}

/// Adds kernel `name` with `argTypes` and `threads` threads, its body built
/// by `buildBody` (before the return), unless the module has it; and its
/// manifest.
static void addKernel(
    OpBuilder &builder, ModuleOp module, Location loc, Manifests &manifests,
    StringRef name, ArrayRef<Type> argTypes, int64_t threads,
    llvm::json::Object manifest,
    function_ref<void(ImplicitLocOpBuilder &, gpu::GPUFuncOp)> buildBody) {
  if (!module.lookupSymbol<gpu::GPUModuleOp>(name)) {
    gpu::GPUFuncOp func =
        createKernel(builder, module, loc, name, argTypes, threads);
    OpBuilder::InsertionGuard guard(builder);
    ImplicitLocOpBuilder b(loc, builder);
    b.setInsertionPointToStart(&func.getBody().front());
    buildBody(b, func);
    builder.setInsertionPointToEnd(&func.getBody().front());
    gpu::ReturnOp::create(builder, loc);
  }
  addManifest(builder, manifests, name, std::move(manifest));
}

/// Adds the split kernel(s): the general one, or for a latent cache one per
/// row-tile count (the host picks by the query rows of a KV head).
static void addSplitKernels(OpBuilder &builder, ModuleOp module,
                            const PagedAttentionSpec &spec,
                            const KernelOptions &options, Location loc,
                            Manifests &manifests) {
  const bool latent = isLatent(spec);
  KernelSignature sig = getSplitSignature(builder.getContext(), spec, latent);
  llvm::json::Object variant = getSplitVariant(spec, latent);
  // The grid: (row tiles of a KV head's packed query rows) x Splits, KV
  // heads x value-column chunks, sequences. Splits is the one size the host
  // chooses (attn.gpu.num_splits).
  auto add = [&](StringRef name, StringRef kind, int64_t threads, int64_t rows,
                 int64_t chunks, int64_t stages, int64_t smemBytes,
                 function_ref<void(ImplicitLocOpBuilder &, gpu::GPUFuncOp)>
                     buildBody) {
    llvm::json::Object manifest{
        {"entry", name},
        {"params", llvm::json::Array(sig.params)},
        {"grid",
         llvm::json::Array{
             grid::mul({grid::ceilDiv(grid::mul({grid::div("Hq", "Hkv"), "Sq"}),
                                      rows),
                        "Splits"}),
             grid::mul({"Hkv", chunks}), "B"}},
        {"block", llvm::json::Array{threads, 1, 1}},
        {"kernel", kind},
        {"rows_per_block", rows},
        {"value_chunks", chunks},
        {"stages", stages},
        {"dynamic_shared_memory", smemBytes},
        {"variant", llvm::json::Object(variant)}};
    addKernel(builder, module, loc, manifests, name, sig.types, threads,
              std::move(manifest), buildBody);
  };
  const int64_t D = spec.headDim, Dv = spec.valueHeadDim;
  if (!latent) {
    PagedTiling tiling = PagedTiling::get(D, Dv);
    add(getPagedKernelName(spec), "paged.mma.sync", kThreads, kRows,
        tiling.dvChunks(Dv), tiling.stages, tiling.sharedMemoryBytes(D),
        [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp func) {
          GeneralSplitKernel(b, func, spec).build();
        });
    return;
  }
  // On sm_90a one kernel, on wgmma (FlashMLA's shape), for any number of
  // rows: with 16 heads (16 rows of 64 padded) it still reads the cache
  // faster than the 16-row mma.sync kernel (H200, batch 64, 16k keys: 96%
  // of copy bandwidth against 87%; docs/gpu-results.md).
  if (options.chip == "sm_90a" &&
      (options.kernel == "auto" || options.kernel == "wgmma") &&
      LatentWgmmaTiling::accepts(D, Dv)) {
    add(getPagedKernelName(spec) + "_vk_wg_r" +
            std::to_string(LatentWgmmaTiling::kRows),
        "paged.latent.wgmma", LatentWgmmaTiling::kThreads,
        LatentWgmmaTiling::kRows, 1, LatentWgmmaTiling::kStages,
        LatentWgmmaTiling::sharedMemoryBytes(D),
        [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp func) {
          buildLatentWgmmaKernelBody(b, func, spec);
        });
    return;
  }
  for (int64_t m : kLatentRowTileCounts) {
    LatentTiling tiling{m};
    add(getPagedKernelName(spec) + "_vk_r" + std::to_string(tiling.rows()),
        "paged.latent.mma.sync", LatentTiling::kThreads, tiling.rows(), 1,
        LatentTiling::kStages, tiling.sharedMemoryBytes(D),
        [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp func) {
          buildLatentSplitKernelBody(b, func, spec, tiling);
        });
  }
}

/// Adds the combine kernel: o_part, lse_part, sinks (if any), o, lse (if
/// asked for), then the sizes; a warp per 128 columns of an output row,
/// eight a block.
static void addCombineKernel(OpBuilder &builder, ModuleOp module,
                             const PagedAttentionSpec &spec, Location loc,
                             Manifests &manifests) {
  MLIRContext *ctx = builder.getContext();
  const int64_t Dv = spec.valueHeadDim;
  Type elt = getType(ctx, spec.dtype), f32 = builder.getF32Type();
  KernelSignature sig;
  sig.tensor("o_part", "partial_output", f32,
             llvm::json::Array{"Splits", "B", "Sq", "Hq", Dv});
  sig.tensor("lse_part", "partial_lse", f32,
             llvm::json::Array{"Splits", "B", "Sq", "Hq"});
  if (spec.sinks)
    sig.tensor("sinks", "sinks", getType(ctx, *spec.sinks),
               llvm::json::Array{"Hq"});
  sig.tensor("o", "output", elt, llvm::json::Array{"B", "Sq", "Hq", Dv});
  if (spec.lse)
    sig.tensor("lse", "lse", f32, llvm::json::Array{"B", "Hq", "Sq"});
  sig.sizes(ctx, {"B", "Hq", "Sq", "Splits"});
  llvm::json::Object variant{{"op", "paged_combine"},
                             {"dtype", stringifyScalarType(spec.dtype)},
                             {"value_head_dim", Dv},
                             {"sinks", spec.sinks.has_value()},
                             {"lse", spec.lse}};
  if (spec.sinks)
    variant["sinks_dtype"] = stringifyScalarType(*spec.sinks);
  std::string name = getCombineKernelName(spec);
  llvm::json::Object manifest{
      {"entry", name},
      {"params", std::move(sig.params)},
      {"grid",
       llvm::json::Array{grid::ceilDiv(grid::mul({"B", "Sq", "Hq",
                                                  getCombineWarpsPerRow(Dv)}),
                                       kCombineWarps),
                         1, 1}},
      {"block", llvm::json::Array{32 * kCombineWarps, 1, 1}},
      {"kernel", "paged.combine"},
      {"dynamic_shared_memory", 0},
      {"variant", std::move(variant)}};
  addKernel(builder, module, loc, manifests, name, sig.types,
            32 * kCombineWarps, std::move(manifest),
            [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp func) {
              CombineKernel(b, func, spec).build();
            });
}

LogicalResult mlir::attn::detail::buildPagedKernels(
    OpBuilder &builder, ModuleOp module, const PagedAttentionSpec &spec,
    const KernelOptions &options, Location loc, EmitErrorFn emitError,
    Manifests &manifests) {
  std::string why;
  if (failed(checkPagedKernelEligible(spec, &why)))
    return emitError() << why;
  addSplitKernels(builder, module, spec, options, loc, manifests);
  addCombineKernel(builder, module, spec, loc, manifests);
  return success();
}

bool mlir::attn::detail::nsaAttendAccepts(const NsaSelectSpec &spec) {
  // A warp's 16 keys of a tile in one entry. (The head dims are
  // checkNsaKernelEligible's, which the paged tilings take.)
  return spec.selBlock > 0 && spec.selBlock % 16 == 0;
}

void mlir::attn::detail::addNsaAttendKernel(OpBuilder &builder, ModuleOp module,
                                            const NsaSelectSpec &spec,
                                            StringRef name, Location loc,
                                            llvm::json::Object variant,
                                            Manifests &manifests) {
  MLIRContext *ctx = builder.getContext();
  const int64_t D = spec.headDim, Dv = spec.valueHeadDim, Hq = spec.queryHeads,
                Hkv = spec.kvHeads;
  Type elt = getType(ctx, spec.dtype), f32 = builder.getF32Type();
  KernelSignature sig;
  sig.tensor("q", "query", elt, llvm::json::Array{"B", "Sq", Hq, D});
  sig.tensor("k", "key", elt, llvm::json::Array{"B", "Sk", Hkv, D});
  sig.tensor("v", "value", elt, llvm::json::Array{"B", "Sk", Hkv, Dv});
  sig.tensor("indices", "indices", builder.getI32Type(),
             llvm::json::Array{"B", "Sq", Hkv, spec.numSelected});
  sig.tensor("o_cmp", "input", elt, llvm::json::Array{"B", "Sq", Hq, Dv});
  sig.tensor("o_win", "input", elt, llvm::json::Array{"B", "Sq", Hq, Dv});
  sig.tensor("gates", "gates", f32, llvm::json::Array{"B", "Sq", Hq, 3});
  sig.tensor("out", "output", elt, llvm::json::Array{"B", "Sq", Hq, Dv});
  sig.sizes(ctx, {"Sq", "Sk"});
  PagedTiling tiling = NsaAttendKernel::getTiling(D, Dv);
  llvm::json::Object manifest{
      {"entry", name},
      {"params", llvm::json::Array(sig.params)},
      {"grid", llvm::json::Array{"Sq", Hkv * tiling.dvChunks(Dv), "B"}},
      {"block", llvm::json::Array{kThreads, 1, 1}},
      {"kernel", "nsa.attend"},
      {"rows_per_block", kRows},
      {"stages", tiling.stages},
      {"dynamic_shared_memory", tiling.sharedMemoryBytes(D)},
      {"variant", std::move(variant)}};
  addKernel(builder, module, loc, manifests, name, sig.types, kThreads,
            std::move(manifest),
            [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp func) {
              NsaAttendKernel(b, func, spec).build();
            });
}
