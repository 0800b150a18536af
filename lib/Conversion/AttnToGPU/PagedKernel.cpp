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
// clamped to what its table row can name (buildPagedSequenceLength). The number
// of splits is a launch-time size (the host's heuristic, python/attn/gpu.py).
//
//===----------------------------------------------------------------------===//

#include "PagedKernel.h"
#include "KernelCommon.h"
#include "Kernels.h"

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
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>

using namespace mlir;
using namespace mlir::attn;

using attn::detail::createKernel;
using attn::detail::flat;
using attn::detail::hexBits;
using attn::detail::memrefParam;
using attn::detail::sizeParam;
using attn::detail::typeName;

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
/// Dynamic shared memory of a block on sm_90 (227 KB).
constexpr int64_t kMaxSharedMemory = 227 * 1024;
constexpr double kLog2e = 1.4426950408889634, kLn2 = 0.6931471805599453;

} // namespace

/// Whether `spec` takes the latent split kernel (PagedLatentKernel.cpp):
/// heads wider than the narrow tiling whose values are a prefix of the key
/// rows.
static bool isLatent(const PagedAttentionSpec &spec) {
  const int64_t d = spec.headDim, dv = spec.valueHeadDim;
  if (ShapedType::isDynamic(d) || ShapedType::isDynamic(dv) ||
      (d == dv && d <= 256))
    return false;
  return spec.valuesArePrefixOfKeys &&
         llvm::all_of(attn::detail::kLatentRowTileCounts, [&](int64_t m) {
           return attn::detail::LatentTiling{m}.accepts(d, dv);
         });
}

LogicalResult
mlir::attn::detail::checkPagedKernelEligible(const PagedAttentionSpec &spec,
                                             std::string *why) {
  auto fail = [&](const Twine &msg) {
    if (why)
      *why = msg.str();
    return failure();
  };
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
          PagedTiling::get(d, dv).sharedMemoryBytes(d) <= kMaxSharedMemory) ||
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
  if (spec.mask.isWindow())
    os << "_l" << spec.mask.left << "_r" << spec.mask.right;
  os << "_s" << hexBits(spec.scale);
  if (spec.softcap)
    os << "_cap" << hexBits(*spec.softcap);
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

/// The split kernel's body (see the file comment).
// Over 150 lines: one kernel body, written before the phase split of
// issue 19 (kernels from a spec, shared emitter pieces), which owns
// splitting it into named phases with byte-identical PTX.
static void buildSplitKernelBody(OpBuilder &builder, gpu::GPUFuncOp func,
                                 const PagedAttentionSpec &spec, Location loc) {
  MLIRContext *ctx = builder.getContext();
  ImplicitLocOpBuilder b(loc, builder);
  Block &body = func.getBody().front();
  b.setInsertionPointToStart(&body);
  const int64_t D = spec.headDim, Dv = spec.valueHeadDim;
  const int64_t P = spec.pageSize;
  const bool hnd = spec.cacheLayout == CacheLayout::HND;
  const PagedTiling tiling = PagedTiling::get(D, Dv);
  const int64_t kStages = tiling.stages, DvB = tiling.dvChunk;
  const int64_t chunks = tiling.dvChunks(Dv);
  Type elt = getType(ctx, spec.dtype);
  Type f32 = b.getF32Type();
  MaskAttr mask = spec.mask.getAttr(ctx);
  std::optional<double> softcap = spec.softcap;
  const double factor = spec.scale * (softcap ? 1.0 / *softcap : kLog2e);

  unsigned n = 0;
  Value qArg = body.getArgument(n++), kArg = body.getArgument(n++),
        vArg = body.getArgument(n++), tableArg = body.getArgument(n++),
        lensArg = body.getArgument(n++), oPart = body.getArgument(n++),
        lsePart = body.getArgument(n++);
  Value batch = body.getArgument(n++), hq = body.getArgument(n++),
        hkv = body.getArgument(n++), sq = body.getArgument(n++),
        maxPages = body.getArgument(n++), splits = body.getArgument(n++),
        vStride = body.getArgument(n++);

  auto idx = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, v);
  };
  auto cf = [&](double v) -> Value {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
  };
  auto add = [&](Value x, Value y) -> Value {
    return arith::AddIOp::create(b, x, y);
  };
  auto sub = [&](Value x, Value y) -> Value {
    return arith::SubIOp::create(b, x, y);
  };
  auto mul = [&](Value x, Value y) -> Value {
    return arith::MulIOp::create(b, x, y);
  };
  auto divu = [&](Value x, Value y) -> Value {
    return arith::DivUIOp::create(b, x, y);
  };
  auto remu = [&](Value x, Value y) -> Value {
    return arith::RemUIOp::create(b, x, y);
  };
  auto smin = [&](Value x, Value y) -> Value {
    return arith::MinSIOp::create(b, x, y);
  };
  auto smax = [&](Value x, Value y) -> Value {
    return arith::MaxSIOp::create(b, x, y);
  };
  auto slt = [&](Value x, Value y) -> Value {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::slt, x, y);
  };
  auto ceilDiv = [&](Value x, Value y) -> Value {
    return arith::CeilDivSIOp::create(b, x, y);
  };
  auto select = [&](Value c, Value x, Value y) -> Value {
    return arith::SelectOp::create(b, c, x, y);
  };
  auto loadIndex = [&](Value m, Value i) -> Value {
    Value v = memref::LoadOp::create(b, m, i);
    return arith::IndexCastOp::create(b, b.getIndexType(), v);
  };

  // Shared memory: Q [16, D], K stages [2, 64, D], V stages [2, 64, Dv]
  // (16-byte chunks XOR-swizzled by row); after the key loop the K/V area
  // holds the warps' f32 states for the merge.
  auto workgroup = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  Value smem = attn::detail::getDynamicSharedMemory(b, loc, func);
  int64_t offset = 0;
  auto carve = [&](ArrayRef<int64_t> dims, Type t, int64_t at) -> Value {
    auto type = MemRefType::get(dims, t, AffineMap(), workgroup);
    return memref::ViewOp::create(b, type, smem, idx(at), ValueRange{});
  };
  Value qS = carve({kRows, D}, elt, offset);
  offset += kRows * D * 2;
  const int64_t kvOffset = offset;
  Value kS = carve({kStages, kTileKeys, D}, elt, offset);
  offset += kStages * kTileKeys * D * 2;
  Value vS = carve({kStages, kTileKeys, DvB}, elt, offset);
  Value oW = carve({kWarps, kRows, DvB}, f32, kvOffset);
  Value mW = carve({kWarps, kRows}, f32, kvOffset + kWarps * kRows * DvB * 4);
  Value lW =
      carve({kWarps, kRows}, f32, kvOffset + kWarps * kRows * (DvB + 1) * 4);

  Value c0 = idx(0), c1 = idx(1);
  Value bx = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  // blockIdx.y: KV head and (wide heads) value-column chunk.
  Value by = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value kvh = chunks > 1 ? divu(by, idx(chunks)) : by;
  Value col0 = chunks > 1 ? mul(remu(by, idx(chunks)), idx(DvB)) : c0;
  Value bIdx = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value split = remu(bx, splits), rowTile = divu(bx, splits);
  Value warp = divu(tid, idx(32)), lane = remu(tid, idx(32));
  Value g = divu(lane, idx(4)), t = remu(lane, idx(4));
  Value group = divu(hq, hkv);
  Value rows = mul(group, sq);
  Value r0 = mul(rowTile, idx(kRows));
  // The sequence's keys, clamped to what its row of the table can name.
  Value len = buildPagedSequenceLength(b, loc, loadIndex(lensArg, bIdx),
                                       mul(maxPages, idx(P)));
  Value off = sub(len, sq);

  // Keys of this block: the band of its rows (the band's ends only grow
  // with the token), cut to its split (whole tiles of the length's share).
  Value lastRow = sub(smin(add(r0, idx(kRows)), rows), c1);
  auto firstBand =
      buildAdmittedKeys(b, loc, mask, add(divu(r0, group), off), len);
  auto lastBand =
      buildAdmittedKeys(b, loc, mask, add(divu(lastRow, group), off), len);
  Value chunk =
      mul(ceilDiv(ceilDiv(len, splits), idx(kTileKeys)), idx(kTileKeys));
  Value kBegin = smax(firstBand.first, mul(split, chunk));
  Value kEnd = smin(lastBand.second, mul(add(split, c1), chunk));
  Value steps =
      select(slt(kBegin, kEnd), ceilDiv(sub(kEnd, kBegin), idx(kTileKeys)), c0);

  // Element offset of packed row r's query (or output) [b, token, head, 0]
  // in [B, Sq, Hq, dim].
  auto rowElement = [&](Value r, int64_t dim) -> Value {
    Value token = divu(r, group);
    Value head = add(mul(kvh, group), remu(r, group));
    return mul(add(mul(add(mul(bIdx, sq), token), hq), head), idx(dim));
  };
  auto swizzle = [&](Value r, Value c, int64_t dim) -> Value {
    if ((dim / 8) % 8 != 0)
      return c;
    Value chunkIdx = arith::XOrIOp::create(b, divu(c, idx(8)), remu(r, idx(8)));
    return mul(chunkIdx, idx(8));
  };

  // Q: rows past the packed rows are zero.
  auto vec8 = VectorType::get({8}, elt);
  {
    Value zero = arith::ConstantOp::create(
        b, vec8, DenseElementsAttr::get(vec8, b.getZeroAttr(elt)));
    scf::ForOp::create(
        b, tid, idx(kRows * D / 8), idx(kThreads), ValueRange{},
        [&](OpBuilder &nb, Location, Value e, ValueRange) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          Value e8 = mul(e, idx(8));
          Value r = divu(e8, idx(D)), c = remu(e8, idx(D));
          Value row = add(r0, r);
          Value inside = slt(row, rows);
          auto ifOp = scf::IfOp::create(b, TypeRange{vec8}, inside,
                                        /*withElse=*/true);
          b.setInsertionPointToStart(&ifOp.getThenRegion().front());
          Value x = vector::LoadOp::create(
              b, vec8, qArg, ValueRange{add(rowElement(row, D), c)});
          scf::YieldOp::create(b, x);
          b.setInsertionPointToStart(&ifOp.getElseRegion().front());
          scf::YieldOp::create(b, zero);
          b.setInsertionPointAfter(ifOp);
          vector::StoreOp::create(b, ifOp.getResult(0), qS,
                                  ValueRange{r, swizzle(r, c, D)});
          scf::YieldOp::create(b);
        });
  }

  // The copies of a key tile: each thread moves 16-byte chunks of D / 16
  // key rows (the same rows of K and of V, D = Dv), row k at tile row
  // (tid * 8 + k * 8 * kThreads) / D. A key's row comes from its page,
  // block_table[b, key / P]; keys at or past kEnd copy nothing (zero fill)
  // from row 0 of the cache, without looking at their (possibly unset)
  // block-table entries. The entries of a tile are read one step before its
  // copies are issued, so that their latency hides behind a step's math.
  auto asyncTokenType = nvgpu::DeviceAsyncTokenType::get(ctx);
  Value tableRow = mul(bIdx, maxPages);
  const int64_t rowsPerThread = kTileKeys * D / (8 * kThreads);
  auto tileKey = [&](Value step, int64_t k) -> std::pair<Value, Value> {
    Value r = divu(mul(add(tid, idx(k * kThreads)), idx(8)), idx(D));
    return {r, add(add(kBegin, mul(step, idx(kTileKeys))), r)};
  };
  auto tableEntry = [&](Value key) -> Value {
    return loadIndex(
        tableArg,
        select(slt(key, kEnd), add(tableRow, divu(key, idx(P))), tableRow));
  };
  auto loadPages = [&](Value step) -> SmallVector<Value> {
    SmallVector<Value> pages;
    if (!tiling.narrow)
      return pages;
    for (int64_t k = 0; k < rowsPerThread; ++k)
      pages.push_back(tableEntry(tileKey(step, k).second));
    return pages;
  };
  // Copies of `dim` columns (from column `srcCol0` of rows `srcStride`
  // elements apart) of every key row of tile `step` into `dst` at `stage`;
  // the pages from `pages` (narrow tiling) or read here.
  auto copyRows = [&](SmallVectorImpl<Value> &tokens, Value step, Value stage,
                      Value src, Value dst, int64_t dim, Value srcStride,
                      Value srcCol0, ValueRange pages) {
    for (int64_t k = 0; k < kTileKeys * dim / (8 * kThreads); ++k) {
      Value e8 = mul(add(tid, idx(k * kThreads)), idx(8));
      Value r = divu(e8, idx(dim)), c = remu(e8, idx(dim));
      Value key = add(add(kBegin, mul(step, idx(kTileKeys))), r);
      Value inside = slt(key, kEnd);
      Value slot = remu(key, idx(P));
      Value page = pages.empty() ? tableEntry(key) : pages[k];
      Value row = hnd ? add(mul(add(mul(page, hkv), kvh), idx(P)), slot)
                      : add(mul(add(mul(page, idx(P)), slot), hkv), kvh);
      row = select(inside, row, c0);
      tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
          b, asyncTokenType, dst, ValueRange{stage, r, swizzle(r, c, dim)}, src,
          ValueRange{add(add(mul(row, srcStride), srcCol0), c)},
          b.getIndexAttr(8), select(inside, idx(8), c0),
          /*bypassL1=*/b.getUnitAttr()));
    }
  };
  Value cD = idx(D);
  auto issueTile = [&](Value step, Value stage, ValueRange pages) -> Value {
    SmallVector<Value> tokens;
    copyRows(tokens, step, stage, kArg, kS, D, cD, c0, pages);
    copyRows(tokens, step, stage, vArg, vS, DvB, vStride, col0, pages);
    return nvgpu::DeviceAsyncCreateGroupOp::create(b, asyncTokenType, tokens);
  };

  // Fragments of m16n8k16 mma.sync.
  auto aType = VectorType::get({4, 2}, elt);
  auto cType = VectorType::get({2, 2}, f32);
  auto mmaSync = [&](Value a, Value bv, Value c) -> Value {
    return attn::detail::buildMmaSync(b, loc, a, bv, c);
  };
  auto splitPair = [&](Value v) {
    return attn::detail::splitLdMatrixPair(b, loc, v);
  };
  Value lane8 = remu(lane, idx(8)), j8 = divu(lane, idx(8));
  Value jLo = remu(j8, idx(2)), jHi = divu(j8, idx(2));

  // Issue tile 0, then load Q's A fragments (Q's copies are plain stores,
  // fenced by the barrier).
  // (The waits count groups; any dominating group token names them.)
  Value firstGroup = issueTile(c0, c0, loadPages(c0));
  for (int64_t k = 1; k < kStages - 1; ++k)
    issueTile(idx(k), idx(k), loadPages(idx(k)));
  SmallVector<Value> nextPages = loadPages(idx(kStages - 1));
  gpu::BarrierOp::create(b);
  auto loadQ = [&](int64_t kk) -> Value {
    Value c = mul(add(idx(2 * kk), divu(lane, idx(16))), idx(8));
    Value r = remu(lane, idx(16));
    return nvgpu::LdMatrixOp::create(b, aType, qS,
                                     ValueRange{r, swizzle(r, c, D)},
                                     /*transpose=*/false, 4);
  };
  SmallVector<Value> qa;
  if (tiling.narrow)
    for (int64_t kk = 0; kk < D / 16; ++kk)
      qa.push_back(loadQ(kk));

  // This thread's rows g and g + 8: their key positions.
  Value pos[2];
  for (int64_t i = 0; i < 2; ++i)
    pos[i] = add(divu(add(r0, add(g, idx(8 * i))), group), off);

  // The key loop: state m[2], l[2] (thread-partial), O fragments [Dv / 8].
  SmallVector<Value> init{cf(-INFINITY), cf(-INFINITY), cf(0.0), cf(0.0)};
  Value zeroAcc = arith::ConstantOp::create(
      b, cType, DenseElementsAttr::get(cType, b.getF32FloatAttr(0.0)));
  for (int64_t e = 0; e < DvB / 8; ++e)
    init.push_back(zeroAcc);
  const size_t pagesAt = init.size();
  llvm::append_range(init, nextPages);
  auto loop = scf::ForOp::create(b, c0, steps, c1, init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value step = loop.getInductionVar();
    ValueRange iter = loop.getRegionIterArgs();
    Value stage = remu(step, idx(kStages));
    // Tile step + kStages - 1 (zero-filled past the end) into the stage
    // freed by the last step, then wait for this step's tile.
    Value ahead = add(step, idx(kStages - 1));
    Value nextGroup =
        issueTile(ahead, remu(ahead, idx(kStages)), iter.drop_front(pagesAt));
    SmallVector<Value> pagesAhead = loadPages(add(ahead, c1));
    nvgpu::DeviceAsyncWaitOp::create(b, nextGroup,
                                     b.getI32IntegerAttr(kStages - 1));
    gpu::BarrierOp::create(b);

    // S = Q·Kᵀ for this warp's 16 keys (two 8-key tiles).
    Value wKey = mul(warp, idx(16));
    Value sAcc[2] = {zeroAcc, zeroAcc};
    for (int64_t kk = 0; kk < D / 16; ++kk) {
      Value r = add(wKey, add(lane8, mul(jHi, idx(8))));
      Value c = mul(add(idx(2 * kk), jLo), idx(8));
      Value frag = nvgpu::LdMatrixOp::create(
          b, aType, kS, ValueRange{stage, r, swizzle(r, c, D)},
          /*transpose=*/false, 4);
      auto [b0, b1] = splitPair(frag);
      Value a = tiling.narrow ? qa[kk] : loadQ(kk);
      sAcc[0] = mmaSync(a, b0, sAcc[0]);
      sAcc[1] = mmaSync(a, b1, sAcc[1]);
    }

    // Logits in the exp2 domain, masked to each row's band and the block's
    // keys; x[i][n * 2 + j]: row g + 8i, key 8n + 2t + j of the warp's 16.
    Value tileKey0 = add(add(kBegin, mul(step, idx(kTileKeys))), wKey);
    Value x[2][4];
    for (int64_t nt = 0; nt < 2; ++nt)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j) {
          Value s =
              vector::ExtractOp::create(b, sAcc[nt], ArrayRef<int64_t>{i, j});
          s = arith::MulFOp::create(b, s, cf(factor));
          if (softcap)
            s = arith::MulFOp::create(b, math::TanhOp::create(b, s),
                                      cf(*softcap * kLog2e));
          Value key = add(add(tileKey0, idx(8 * nt + j)), mul(t, idx(2)));
          Value ok = slt(key, kEnd);
          if (Value inBand = buildAdmitsKey(b, loc, mask, pos[i], key))
            ok = arith::AndIOp::create(b, ok, inBand);
          x[i][nt * 2 + j] = select(ok, s, cf(-INFINITY));
        }

    // Online softmax of the warp's rows.
    SmallVector<Value> next(iter.begin(), iter.end());
    Value alpha[2], p[2][4];
    for (int64_t i = 0; i < 2; ++i) {
      Value mx = attn::detail::treeReduce(
          ArrayRef<Value>{iter[i], x[i][0], x[i][1], x[i][2], x[i][3]},
          [&](Value u, Value v) -> Value {
            return arith::MaximumFOp::create(b, u, v);
          });
      for (int32_t o : {1, 2})
        mx = arith::MaximumFOp::create(
            b, mx,
            gpu::ShuffleOp::create(b, mx, o, 32, gpu::ShuffleMode::XOR)
                .getShuffleResult());
      Value isNinf = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx,
                                           cf(-INFINITY));
      Value mSafe = select(isNinf, cf(0.0), mx);
      alpha[i] =
          math::Exp2Op::create(b, arith::SubFOp::create(b, iter[i], mSafe));
      SmallVector<Value> terms;
      for (int64_t k = 0; k < 4; ++k) {
        p[i][k] =
            math::Exp2Op::create(b, arith::SubFOp::create(b, x[i][k], mSafe));
        terms.push_back(p[i][k]);
      }
      next[i] = mx;
      next[2 + i] = arith::AddFOp::create(
          b, arith::MulFOp::create(b, iter[2 + i], alpha[i]),
          attn::detail::treeReduce(terms, [&](Value u, Value v) -> Value {
            return arith::AddFOp::create(b, u, v);
          }));
    }
    // P as the A fragment of m16n8k16 (rows g, g + 8; keys 2t.. of each
    // 8-key tile), then O = O·alpha + P·V.
    SmallVector<Value> pElems;
    for (int64_t nt = 0; nt < 2; ++nt)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j)
          pElems.push_back(arith::TruncFOp::create(b, elt, p[i][nt * 2 + j]));
    Value pa = vector::FromElementsOp::create(b, aType, pElems);
    for (int64_t ee = 0; ee < DvB / 16; ++ee) {
      Value r = add(wKey, add(lane8, mul(jLo, idx(8))));
      Value c = mul(add(idx(2 * ee), jHi), idx(8));
      Value frag = nvgpu::LdMatrixOp::create(
          b, aType, vS, ValueRange{stage, r, swizzle(r, c, DvB)},
          /*transpose=*/true, 4);
      auto [b0, b1] = splitPair(frag);
      for (auto [e, bf] :
           {std::pair<int64_t, Value>{2 * ee, b0}, {2 * ee + 1, b1}}) {
        Value acc = iter[4 + e];
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t j = 0; j < 2; ++j) {
            Value a =
                vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j});
            acc = vector::InsertOp::create(
                b, arith::MulFOp::create(b, a, alpha[i]), acc,
                ArrayRef<int64_t>{i, j});
          }
        next[4 + e] = mmaSync(pa, bf, acc);
      }
    }
    // Every warp is done with this stage before the next step refills it.
    gpu::BarrierOp::create(b);
    next.resize(pagesAt);
    llvm::append_range(next, pagesAhead);
    scf::YieldOp::create(b, next);
  }
  nvgpu::DeviceAsyncWaitOp::create(b, firstGroup, b.getI32IntegerAttr(0));
  gpu::BarrierOp::create(b);

  // Merge the warps: each writes m, l (quad-summed) and O for its rows g,
  // g + 8 into the (now free) K/V area.
  ValueRange fin = loop.getResults();
  for (int64_t i = 0; i < 2; ++i) {
    Value r = add(g, idx(8 * i));
    Value l = fin[2 + i];
    for (int32_t o : {1, 2})
      l = arith::AddFOp::create(
          b, l,
          gpu::ShuffleOp::create(b, l, o, 32, gpu::ShuffleMode::XOR)
              .getShuffleResult());
    auto first = scf::IfOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, t, c0),
        /*withElse=*/false);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&first.getThenRegion().front());
      memref::StoreOp::create(b, fin[i], mW, ValueRange{warp, r});
      memref::StoreOp::create(b, l, lW, ValueRange{warp, r});
    }
    for (int64_t e = 0; e < DvB / 8; ++e)
      for (int64_t j = 0; j < 2; ++j)
        memref::StoreOp::create(
            b,
            vector::ExtractOp::create(b, fin[4 + e], ArrayRef<int64_t>{i, j}),
            oW, ValueRange{warp, r, add(idx(8 * e + j), mul(t, idx(2)))});
  }
  gpu::BarrierOp::create(b);

  // Each thread merges elements of the block's output rows: m* = max m_w,
  // l* = Σ l_w 2^(m_w - m*), O = Σ O_w 2^(m_w - m*) / l*, and the split's
  // LSE (natural log); rows without keys give O = 0, LSE = -inf.
  Value rowsAll = mul(mul(batch, sq), hq);
  scf::ForOp::create(
      b, tid, idx(kRows * DvB), idx(kThreads), ValueRange{},
      [&](OpBuilder &nb, Location, Value e, ValueRange) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        Value r = divu(e, idx(DvB)), col = remu(e, idx(DvB));
        Value row = add(r0, r);
        auto inside = scf::IfOp::create(b, slt(row, rows),
                                        /*withElse=*/false);
        b.setInsertionPointToStart(&inside.getThenRegion().front());
        Value mStar = cf(-INFINITY);
        Value mws[kWarps];
        for (int64_t w = 0; w < kWarps; ++w) {
          mws[w] = memref::LoadOp::create(b, mW, ValueRange{idx(w), r});
          mStar = arith::MaximumFOp::create(b, mStar, mws[w]);
        }
        Value empty = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mStar,
                                            cf(-INFINITY));
        Value mSafe = select(empty, cf(0.0), mStar);
        Value lSum = cf(0.0), oSum = cf(0.0);
        for (int64_t w = 0; w < kWarps; ++w) {
          Value scale =
              math::Exp2Op::create(b, arith::SubFOp::create(b, mws[w], mSafe));
          lSum = arith::AddFOp::create(
              b, lSum,
              arith::MulFOp::create(
                  b, memref::LoadOp::create(b, lW, ValueRange{idx(w), r}),
                  scale));
          oSum = arith::AddFOp::create(
              b, oSum,
              arith::MulFOp::create(
                  b, memref::LoadOp::create(b, oW, ValueRange{idx(w), r, col}),
                  scale));
        }
        Value o = select(empty, cf(0.0), arith::DivFOp::create(b, oSum, lSum));
        // Partial buffers: [splits, B, Sq, Hq, Dv] and [splits, B, Sq, Hq].
        Value outRow = add(mul(split, rowsAll), rowElement(row, 1));
        memref::StoreOp::create(
            b, o, oPart, ValueRange{add(mul(outRow, idx(Dv)), add(col0, col))});
        // One thread per row writes the split's LSE (the chunk-0 block).
        Value first = arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                                            add(col0, col), c0);
        auto writeLse = scf::IfOp::create(b, first, /*withElse=*/false);
        b.setInsertionPointToStart(&writeLse.getThenRegion().front());
        Value lse = arith::MulFOp::create(
            b, arith::AddFOp::create(b, mStar, math::Log2Op::create(b, lSum)),
            cf(kLn2));
        memref::StoreOp::create(b, select(empty, cf(-INFINITY), lse), lsePart,
                                ValueRange{outRow});
        b.setInsertionPointAfter(inside);
        scf::YieldOp::create(b);
      });
}

/// The combine kernel's body: one block per (b, token, head) row, a thread
/// per output column.
static void buildCombineKernelBody(OpBuilder &builder, gpu::GPUFuncOp func,
                                   const PagedAttentionSpec &spec,
                                   Location loc) {
  ImplicitLocOpBuilder b(loc, builder);
  Block &body = func.getBody().front();
  b.setInsertionPointToStart(&body);
  const int64_t Dv = spec.valueHeadDim;
  Type elt = getType(builder.getContext(), spec.dtype);
  Type f32 = b.getF32Type();
  bool sinks = spec.sinks.has_value(), hasLse = spec.lse;
  unsigned n = 0;
  Value oPart = body.getArgument(n++), lsePart = body.getArgument(n++);
  Value sinksArg = sinks ? body.getArgument(n++) : Value();
  Value oArg = body.getArgument(n++);
  Value lseArg = hasLse ? body.getArgument(n++) : Value();
  Value batch = body.getArgument(n++), hq = body.getArgument(n++),
        sq = body.getArgument(n++), splits = body.getArgument(n++);
  auto idx = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, v);
  };
  auto cf = [&](double v) -> Value {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
  };
  Value row = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value col = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value rowsAll =
      arith::MulIOp::create(b, arith::MulIOp::create(b, batch, sq), hq);
  Value head = arith::RemUIOp::create(b, row, hq);
  Value c0 = idx(0), c1 = idx(1);

  // Pass 1: the largest partial LSE (and the sink's logit).
  Value m0 = cf(-INFINITY);
  Value sink;
  if (sinks) {
    sink = memref::LoadOp::create(b, sinksArg, head);
    if (sink.getType() != f32)
      sink = arith::ExtFOp::create(b, f32, sink);
    m0 = sink;
  }
  auto maxLoop = scf::ForOp::create(
      b, c0, splits, c1, ValueRange{m0},
      [&](OpBuilder &nb, Location loc, Value s, ValueRange iter) {
        Value at = arith::AddIOp::create(
            nb, loc, arith::MulIOp::create(nb, loc, s, rowsAll), row);
        Value l = memref::LoadOp::create(nb, loc, lsePart, at);
        scf::YieldOp::create(
            nb, loc, Value(arith::MaximumFOp::create(nb, loc, iter[0], l)));
      });
  Value m = maxLoop.getResult(0);
  Value empty =
      arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, m, cf(-INFINITY));
  Value mSafe = arith::SelectOp::create(b, empty, cf(0.0), m);
  // Pass 2: weights exp(lse_s - m).
  Value l0 = cf(0.0);
  if (sinks)
    l0 = math::ExpOp::create(b, arith::SubFOp::create(b, sink, mSafe));
  auto sumLoop = scf::ForOp::create(
      b, c0, splits, c1, ValueRange{l0, cf(0.0)},
      [&](OpBuilder &nb, Location loc, Value s, ValueRange iter) {
        Value at = arith::AddIOp::create(
            nb, loc, arith::MulIOp::create(nb, loc, s, rowsAll), row);
        Value w = math::ExpOp::create(
            nb, loc,
            arith::SubFOp::create(
                nb, loc, memref::LoadOp::create(nb, loc, lsePart, at), mSafe));
        Value oAt = arith::AddIOp::create(
            nb, loc, arith::MulIOp::create(nb, loc, at, idx(Dv)), col);
        Value o = memref::LoadOp::create(nb, loc, oPart, oAt);
        scf::YieldOp::create(
            nb, loc,
            ValueRange{
                arith::AddFOp::create(nb, loc, iter[0], w),
                arith::AddFOp::create(nb, loc, iter[1],
                                      arith::MulFOp::create(nb, loc, w, o))});
      });
  Value lSum = sumLoop.getResult(0);
  Value o = arith::SelectOp::create(
      b, empty, cf(0.0), arith::DivFOp::create(b, sumLoop.getResult(1), lSum));
  Value oAt =
      arith::AddIOp::create(b, arith::MulIOp::create(b, row, idx(Dv)), col);
  memref::StoreOp::create(b, arith::TruncFOp::create(b, elt, o), oArg, oAt);
  if (hasLse) {
    // Rows are (b, token, head); the LSE is [B, Hq, Sq].
    auto first = scf::IfOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, col, c0),
        /*withElse=*/false);
    b.setInsertionPointToStart(&first.getThenRegion().front());
    Value bt = arith::DivUIOp::create(b, row, hq);
    Value token = arith::RemUIOp::create(b, bt, sq);
    Value bIdx = arith::DivUIOp::create(b, bt, sq);
    Value at = arith::AddIOp::create(
        b,
        arith::MulIOp::create(
            b,
            arith::AddIOp::create(b, arith::MulIOp::create(b, bIdx, hq), head),
            sq),
        token);
    Value lse = arith::AddFOp::create(b, m, math::LogOp::create(b, lSum));
    memref::StoreOp::create(
        b, arith::SelectOp::create(b, empty, cf(-INFINITY), lse), lseArg, at);
  }
}

LogicalResult mlir::attn::detail::buildPagedKernels(
    OpBuilder &builder, ModuleOp module, const PagedAttentionSpec &spec,
    Location loc, EmitErrorFn emitError, Manifests &manifests) {
  std::string why;
  if (failed(checkPagedKernelEligible(spec, &why)))
    return emitError() << why;
  MLIRContext *ctx = builder.getContext();
  const int64_t D = spec.headDim, Dv = spec.valueHeadDim;
  Type elt = getType(ctx, spec.dtype);
  Type f32 = builder.getF32Type();
  Type tableElt = getType(ctx, spec.tableDtype);
  Type lensElt = getType(ctx, spec.lensDtype);
  auto addManifest = [&](StringRef name, llvm::json::Object manifest) {
    attn::detail::addManifest(builder, manifests, name, std::move(manifest));
  };
  const MaskSpec &mask = spec.mask;
  std::string cacheLayout = stringifyCacheLayout(spec.cacheLayout).str();
  llvm::json::Array cacheShape =
      spec.cacheLayout == CacheLayout::HND
          ? llvm::json::Array{"NumPages", "Hkv", spec.pageSize, D}
          : llvm::json::Array{"NumPages", spec.pageSize, "Hkv", D};

  // The split kernel(s): the general one, or for a latent cache one per
  // row-tile count (the host picks by the query rows of a KV head).
  llvm::json::Object variant{
      {"op", "paged_attention"},
      {"dtype", typeName(elt)},
      {"head_dim", D},
      {"value_head_dim", Dv},
      {"page_size", spec.pageSize},
      {"cache_layout", cacheLayout},
      {"table_dtype", typeName(tableElt)},
      {"lens_dtype", typeName(lensElt)},
      {"mask", stringifyMaskKind(mask.kind)},
      {"scale", static_cast<double>(static_cast<float>(spec.scale))},
      {"softcap", spec.softcap ? llvm::json::Value(*spec.softcap)
                               : llvm::json::Value(nullptr)}};
  if (mask.isWindow()) {
    variant["window_left"] = mask.left;
    variant["window_right"] = mask.right;
  }
  const bool latent = isLatent(spec);
  variant["values"] = latent ? "key_prefix" : "separate";
  llvm::json::Array params;
  params.push_back(
      memrefParam("q", "query", elt, llvm::json::Array{"B", "Sq", "Hq", D}));
  params.push_back(memrefParam("k_cache", "key_cache", elt, cacheShape));
  SmallVector<Type> argTypes{flat(elt), flat(elt)};
  if (!latent) {
    llvm::json::Array vShape = cacheShape;
    vShape.back() = Dv;
    params.push_back(
        memrefParam("v_cache", "value_cache", elt, std::move(vShape)));
    argTypes.push_back(flat(elt));
  }
  params.push_back(memrefParam("block_table", "block_table", tableElt,
                               llvm::json::Array{"B", "MaxPages"}));
  params.push_back(
      memrefParam("seq_lens", "seq_lens", lensElt, llvm::json::Array{"B"}));
  params.push_back(
      memrefParam("o_part", "partial_output", f32,
                  llvm::json::Array{"Splits", "B", "Sq", "Hq", Dv}));
  params.push_back(memrefParam("lse_part", "partial_lse", f32,
                               llvm::json::Array{"Splits", "B", "Sq", "Hq"}));
  argTypes.append({flat(tableElt), flat(lensElt), flat(f32), flat(f32)});
  // VStride (general kernel): elements between two value rows of the cache
  // (Dv, or the key row's length when the values are a prefix of the key
  // cache the kernel does not know about).
  for (StringRef s : {"B", "Hq", "Hkv", "Sq", "MaxPages", "Splits"})
    params.push_back(sizeParam(s));
  argTypes.append(6, builder.getIndexType());
  if (!latent) {
    params.push_back(sizeParam("VStride"));
    argTypes.push_back(builder.getIndexType());
  }
  // GridX = ceil(Hq / Hkv * Sq / rows_per_block) * Splits and GridY = Hkv *
  // value_chunks, set by the host.
  auto addSplitKernel = [&](StringRef name, StringRef kind, int64_t threads,
                            int64_t rows, int64_t chunks, int64_t stages,
                            int64_t smemBytes,
                            function_ref<void(gpu::GPUFuncOp)> buildBody) {
    llvm::json::Object manifest{
        {"entry", name},
        {"params", llvm::json::Array(params)},
        {"grid", llvm::json::Array{"GridX", "GridY", "B"}},
        {"block", llvm::json::Array{threads, 1, 1}},
        {"kernel", kind},
        {"rows_per_block", rows},
        {"value_chunks", chunks},
        {"stages", stages},
        {"dynamic_shared_memory", smemBytes},
        {"variant", llvm::json::Object(variant)}};
    if (!module.lookupSymbol<gpu::GPUModuleOp>(name)) {
      gpu::GPUFuncOp func =
          createKernel(builder, module, loc, name, argTypes, threads);
      OpBuilder::InsertionGuard guard(builder);
      buildBody(func);
      builder.setInsertionPointToEnd(&func.getBody().front());
      gpu::ReturnOp::create(builder, loc);
    }
    addManifest(name, std::move(manifest));
  };
  if (latent) {
    for (int64_t m : attn::detail::kLatentRowTileCounts) {
      attn::detail::LatentTiling tiling{m};
      std::string name =
          getPagedKernelName(spec) + "_vk_r" + std::to_string(tiling.rows());
      addSplitKernel(name, "paged.latent.mma.sync",
                     attn::detail::LatentTiling::kThreads, tiling.rows(), 1,
                     attn::detail::LatentTiling::kStages,
                     tiling.sharedMemoryBytes(D), [&](gpu::GPUFuncOp func) {
                       attn::detail::buildLatentSplitKernelBody(
                           builder, func, spec, loc, tiling);
                     });
    }
  } else {
    PagedTiling tiling = PagedTiling::get(D, Dv);
    addSplitKernel(getPagedKernelName(spec), "paged.mma.sync", kThreads, kRows,
                   tiling.dvChunks(Dv), tiling.stages,
                   tiling.sharedMemoryBytes(D), [&](gpu::GPUFuncOp func) {
                     buildSplitKernelBody(builder, func, spec, loc);
                   });
  }

  // The combine kernel.
  {
    std::string name = getCombineKernelName(spec);
    bool sinks = spec.sinks.has_value();
    Type sinksElt = sinks ? getType(ctx, *spec.sinks) : Type();
    llvm::json::Array params;
    SmallVector<Type> argTypes{flat(f32), flat(f32)};
    params.push_back(
        memrefParam("o_part", "partial_output", f32,
                    llvm::json::Array{"Splits", "B", "Sq", "Hq", Dv}));
    params.push_back(memrefParam("lse_part", "partial_lse", f32,
                                 llvm::json::Array{"Splits", "B", "Sq", "Hq"}));
    if (sinks) {
      params.push_back(
          memrefParam("sinks", "sinks", sinksElt, llvm::json::Array{"Hq"}));
      argTypes.push_back(flat(sinksElt));
    }
    params.push_back(memrefParam("o", "output", elt,
                                 llvm::json::Array{"B", "Sq", "Hq", Dv}));
    argTypes.push_back(flat(elt));
    if (spec.lse) {
      params.push_back(
          memrefParam("lse", "lse", f32, llvm::json::Array{"B", "Hq", "Sq"}));
      argTypes.push_back(flat(f32));
    }
    for (StringRef s : {"B", "Hq", "Sq", "Splits"})
      params.push_back(sizeParam(s));
    argTypes.append(4, builder.getIndexType());
    llvm::json::Object variant{{"op", "paged_combine"},
                               {"dtype", typeName(elt)},
                               {"value_head_dim", Dv},
                               {"sinks", sinks},
                               {"lse", spec.lse}};
    if (sinks)
      variant["sinks_dtype"] = typeName(sinksElt);
    llvm::json::Object manifest{{"entry", name},
                                {"params", std::move(params)},
                                {"grid", llvm::json::Array{"Rows", 1, 1}},
                                {"block", llvm::json::Array{Dv, 1, 1}},
                                {"kernel", "paged.combine"},
                                {"dynamic_shared_memory", 0},
                                {"variant", std::move(variant)}};
    if (!module.lookupSymbol<gpu::GPUModuleOp>(name)) {
      gpu::GPUFuncOp func =
          createKernel(builder, module, loc, name, argTypes, Dv);
      OpBuilder::InsertionGuard guard(builder);
      buildCombineKernelBody(builder, func, spec, loc);
      builder.setInsertionPointToEnd(&func.getBody().front());
      gpu::ReturnOp::create(builder, loc);
    }
    addManifest(name, std::move(manifest));
  }
  return success();
}
