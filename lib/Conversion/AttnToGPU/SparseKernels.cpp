//===- SparseKernels.cpp - NSA block selection, DSA indexer kernels -------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The kernels of the sparse ops that are not softmax attention over a key
// list (that part runs on the paged kernels, python/attn/gpu.py):
//
// * attn.nsa's block selection ("nsa.select"). A block of 8 warps takes 8
//   consecutive tokens of one KV head, a warp per token: the group's G <= 16
//   query heads are the rows of one m16 tile, so S = Q·K_cmpᵀ over the
//   visible compressed tokens is m16n8k16 mma.sync with Q's fragments in
//   registers for the whole loop. The compressed keys come in tiles of 64
//   that the block copies to shared memory once for its 8 tokens (which see
//   the same tokens, give or take one), the warps taking their fragments by
//   ldmatrix. P = exp(S - lse) with the compressed branch's LSE (an input:
//   that branch runs first), summed over the group's rows by lane shuffles,
//   staged per tile in shared memory and added into the scores of the
//   selection blocks each compressed token overlaps. The forced blocks get
//   +inf, and num_selected rounds of a warp arg-max (ties to the lower
//   block) write the indices (-1 once the candidate blocks run out). The
//   key tiles come through a two-slot cp.async ring. On sm_90a (head dims
//   in whole 64-column panels) S is m64n64k16 wgmma instead: a warpgroup's
//   four warps are four tokens, their fragments Q's register-A operand,
//   the tile 128-byte-swizzled panels; since a warp's accumulator rows are
//   still its token's heads, the rest is the same, with the sums over heads
//   a reduce-scatter across the lanes.
//
// * attn.nsa's selected branch with the branches' gated sum ("nsa.attend")
//   is the general paged split kernel's phases over each token's selected
//   blocks (PagedKernel.cpp, NsaAttendKernel), built beside the selection
//   kernel where its selection blocks are whole 16-key warp tiles.
//
// * attn.sparse_attention has no kernel of its own: the host compacts each
//   (query row, KV head)'s valid selections into the page table of a
//   sequence of the paged kernels (pages of block_size keys, the length the
//   selected keys, a causal row's last block cut at its position), so its
//   lowering is the paged kernels of that variant (no mask; the latent split
//   kernel when the values are the keys' first columns).
//
// * attn.lightning_indexer's scores ("indexer.scores"). One block per
//   (256 keys, token, sequence): the token's Hi x Di query in shared memory
//   (rows padded by 8 elements: conflict-free fragment reads), each warp 64
//   keys in steps of 16 (two n8 tiles, K's fragments from global memory
//   once per step), Q·Kᵀ for all Hi heads as mma.sync, then relu, the head
//   weights and the sum over heads on the accumulators (lane shuffles).
//   Keys the mask does not admit get -inf, the op's convention; steps with
//   no admitted key skip the math. The top-k runs on the host for now.
//
//===----------------------------------------------------------------------===//

#include "KernelBody.h"
#include "KernelCommon.h"
#include "Kernels.h"
#include "WgmmaOps.h"

#include "attn/Conversion/AttnToGPU.h"
#include "attn/IR/AttnOps.h"
#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using attn::detail::addManifest;
using attn::detail::createKernel;
using attn::detail::EmitErrorFn;
using attn::detail::hexBits;
using attn::detail::KernelBody;
using attn::detail::KernelSignature;
using attn::detail::Manifests;
using attn::detail::typeName;

namespace {
constexpr int64_t kWarps = 4, kThreads = 32 * kWarps;
/// nsa.select: warps (tokens) per block, which share each tile of keys.
constexpr int64_t kSelectWarps = 8, kSelectThreads = 32 * kSelectWarps;
/// nsa.select: compressed tokens per staging step, and the most selection
/// blocks a warp scores in shared memory (2048 blocks: 128k keys in blocks
/// of 64).
constexpr int64_t kCmpTile = 64, kMaxSelectBlocks = 2048;
/// nsa.select: tiles of compressed keys in flight (the next one is copied
/// while the warps score the current one).
constexpr int64_t kCmpStages = 2;
/// indexer.scores: keys per block (64 per warp).
constexpr int64_t kIndexerKeys = 256;

bool isHalfType(ScalarType t) {
  return t == ScalarType::F16 || t == ScalarType::BF16;
}

/// Shared memory of nsa.select: the block's ring of two tiles of 64
/// compressed keys (rows padded by 8 elements: conflict-free ldmatrix), then
/// per warp its block scores and one staging step of compressed-token sums.
/// On wgmma the tiles are unpadded 128-byte-swizzled panels of 64 columns.
int64_t nsaKeyTileBytes(int64_t d, bool wgmma) {
  return kCmpStages * 2 * kCmpTile * (wgmma ? d : d + 8);
}
int64_t nsaSelectSharedMemory(int64_t d, bool wgmma) {
  return nsaKeyTileBytes(d, wgmma) +
         4 * kSelectWarps * (kMaxSelectBlocks + kCmpTile);
}
/// Whether nsa.select computes S on wgmma: sm_90a (kernel auto or wgmma)
/// and head dims in whole 64-column panels.
bool nsaSelectOnWgmma(const NsaSelectSpec &spec, const KernelOptions &options) {
  return options.chip == "sm_90a" &&
         (options.kernel == "auto" || options.kernel == "wgmma") &&
         spec.headDim % 64 == 0;
}
} // namespace

//===----------------------------------------------------------------------===//
// attn.nsa: block selection
//===----------------------------------------------------------------------===//

LogicalResult
mlir::attn::detail::checkNsaKernelEligible(const NsaSelectSpec &spec,
                                           std::string *why) {
  auto fail = [&](const Twine &msg) { return failWith(why, msg); };
  if (!isHalfType(spec.dtype))
    return fail("the NSA GPU kernels take f16 or bf16 (got " +
                stringifyScalarType(spec.dtype) + ")");
  int64_t d = spec.headDim, dv = spec.valueHeadDim;
  if (ShapedType::isDynamic(d) || ShapedType::isDynamic(dv))
    return fail("the NSA GPU kernels need static head dims");
  // The branches run on the paged split kernel's tilings (nsa.attend or
  // the paged kernels) and the attention kernels: head dims that are
  // multiples of 16 up to 256, and D = Dv or Dv up to 128 or a multiple of
  // 128 (the value columns in chunks of 128).
  if (d % 16 || dv % 16 || d <= 0 || dv <= 0 || d > 256 || dv > 256 ||
      (d != dv && dv > 128 && dv % 128 != 0))
    return fail("the NSA GPU kernels need head dims that are multiples of 16 "
                "up to 256, with D = Dv or Dv up to 128 or a multiple of 128 "
                "(got " +
                Twine(d) + " / " + Twine(dv) + ")");
  // The kernels' grids hold the KV heads in y (times the value-column
  // chunks of the paged tilings that run the selected branch), which CUDA
  // caps at 65535.
  int64_t chunks = pagedValueChunks(d, dv);
  if (spec.kvHeads > 65535 / chunks)
    return fail("the NSA GPU kernels launch a grid row per KV head" +
                Twine(chunks > 1 ? " and value-column chunk" : "") +
                ": at most " + Twine(65535 / chunks) + " KV heads (got " +
                Twine(spec.kvHeads) + ")");
  int64_t group = spec.queryHeads / spec.kvHeads;
  if (group > 16)
    return fail("the NSA block selection packs a KV head's query heads into "
                "one 16-row tile: at most 16 per KV head (got " +
                Twine(group) + ")");
  // The spec's scale is 0 where the op leaves it unknown (scales are
  // positive).
  if (spec.scale == 0)
    return fail("the NSA GPU kernels need a known scale");
  return success();
}

namespace {
/// The block-selection kernel (see the file comment). Its phases: the
/// candidate blocks (scores zeroed), Q's fragments, per tile of compressed
/// keys the copy, the probabilities and their sums into the block scores,
/// the forced blocks and the arg-max rounds.
class NsaSelectKernel : KernelBody {
public:
  /// `wgmma`: S on register-A wgmma (sm_90a; nsaSelectOnWgmma), else on
  /// mma.sync.
  NsaSelectKernel(OpBuilder &builder, gpu::GPUFuncOp func,
                  const NsaSelectSpec &spec, Location loc, bool wgmma);

  void build() {
    candidateBlocks();
    queryFragments();
    if (wgmma)
      registerA();
    // The visible compressed tokens, 64 at a time: the block copies the
    // tile, each warp multiplies it with its token's rows while the tile
    // holds keys it sees.
    accType = VectorType::get({2, 2}, b.getF32Type());
    lane8 = e.rem(lane, e.idx(8)), j8 = e.div(lane, e.idx(8));
    jLo = e.rem(j8, e.idx(2)), jHi = e.div(j8, e.idx(2));
    // Tile i + 1 is copied (cp.async) while tile i is scored.
    Value tiles = e.ceilDiv(blockVisible, e.idx(kCmpTile));
    e.when(e.slt(c0, tiles), [&] { copyKeyTile(c0, c0); });
    e.loop(c0, tiles, c1, [&](Value i) {
      Value cBase = e.mul(i, e.idx(kCmpTile));
      Value next = copyKeyTile(e.add(cBase, e.idx(kCmpTile)),
                               e.rem(e.add(i, c1), e.idx(kCmpStages)));
      nvgpu::DeviceAsyncWaitOp::create(b, next, b.getI32IntegerAttr(1));
      Value slot = e.rem(i, e.idx(kCmpStages));
      if (!wgmma) {
        e.barrier();
        e.when(e.lt(cBase, visible), [&] {
          stageTileSums(cBase, slot);
          addToBlocks(cBase);
        });
      } else {
        // The copies (generic proxy) made visible to wgmma (async proxy);
        // every warp of a warpgroup takes part in its wgmma, so S is
        // computed for every tile of the block's range.
        NVVM::FenceProxyOp::create(
            b,
            NVVM::ProxyKindAttr::get(b.getContext(),
                                     NVVM::ProxyKind::async_shared),
            NVVM::SharedSpaceAttr::get(b.getContext(),
                                       NVVM::SharedSpace::shared_cta));
        e.barrier();
        SmallVector<Value> sTile = wgmmaScores(slot);
        e.when(e.lt(cBase, visible), [&] {
          stageWgmmaSums(cBase, sTile);
          addToBlocks(cBase);
        });
      }
      // Every warp is done with the stage before it is refilled.
      e.barrier();
    });
    forcedBlocks();
    selectBlocks();
  }

private:
  /// A position's visible compressed tokens (c·d + l <= p + 1).
  Value visibleAt(Value token) {
    Value num = e.sub(e.add(e.sub(e.add(token, sk), sq), c1), e.idx(l));
    return e.sel(
        e.slt(num, c0), c0,
        e.smin(e.add(arith::DivSIOp::create(b, num, e.idx(stride)), c1), tc));
  }
  void candidateBlocks();
  void queryFragments();
  Value copyKeyTile(Value cBase, Value slot);
  void stageTileSums(Value cBase, Value slot);
  void registerA();
  SmallVector<Value> wgmmaScores(Value slot);
  void stageWgmmaSums(Value cBase, ArrayRef<Value> sTile);
  void addToBlocks(Value cBase);
  void forcedBlocks();
  void selectBlocks();

  const NsaSelectSpec &spec;
  const bool wgmma;
  const int64_t D, Hq, Hkv, G, N, l, stride, sel;
  /// The scale in the exp2 domain.
  const double factor;
  // Arguments: q, k_cmp, lse_cmp, indices, Sq, Sk, Tc.
  Value qArg, kcArg, lseArg, idxArg, sq, sk, tc;
  // Shared memory: the tile of compressed keys; per warp the block scores
  // and one step's compressed-token sums.
  Value kS, scores, stage;
  Value tid, warp, lane, c0, c1, t0, active, t, kvh, bIdx;
  // The row's position, its visible compressed tokens, those of the
  // block's last token, its last block and its candidate blocks.
  Value pos, visible, blockVisible, last, candidates;
  // Fragment coordinates; Q's A fragments per k-step; the rows' LSEs
  // (exp2 domain).
  Value g, tq;
  SmallVector<Value> aFrags;
  /// wgmma: the same fragments as register-A words (four a k-step), and
  /// the key ring's shared address.
  SmallVector<Value> aRegs;
  Value kAddr;
  SmallVector<Value, 2> lse2;
  // ldmatrix coordinates of the key tile.
  VectorType accType;
  Value lane8, j8, jLo, jHi;
};
} // namespace

NsaSelectKernel::NsaSelectKernel(OpBuilder &builder, gpu::GPUFuncOp func,
                                 const NsaSelectSpec &spec, Location loc,
                                 bool wgmma)
    : KernelBody(builder, func, loc, getType(builder.getContext(), spec.dtype)),
      spec(spec), wgmma(wgmma), D(spec.headDim), Hq(spec.queryHeads),
      Hkv(spec.kvHeads), G(Hq / Hkv), N(spec.numSelected), l(spec.cmpBlock),
      stride(spec.cmpStride), sel(spec.selBlock),
      factor(spec.scale * llvm::numbers::log2e) {
  qArg = arg(), kcArg = arg(), lseArg = arg(), idxArg = arg();
  sq = arg(), sk = arg(), tc = arg();

  // The key ring first: wgmma's swizzled panels need 1024-byte alignment,
  // which the dynamic shared memory's start has.
  kS = wgmma ? shared({kCmpStages * kCmpTile * D}, e.elt)
             : shared({kCmpStages, kCmpTile, D + 8}, e.elt);
  assert(sharedBytes == nsaKeyTileBytes(D, wgmma) && "shared memory layout");
  scores = shared({kSelectWarps, kMaxSelectBlocks});
  stage = shared({kSelectWarps, kCmpTile});
  assert(sharedBytes == nsaSelectSharedMemory(D, wgmma) &&
         "shared memory layout");
  if (wgmma)
    kAddr = arith::IndexCastUIOp::create(
        b, b.getI64Type(),
        memref::ExtractAlignedPointerAsIndexOp::create(b, kS));

  tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  warp = e.div(tid, e.idx(32)), lane = e.rem(tid, e.idx(32));
  c0 = e.idx(0), c1 = e.idx(1);
  // The block's warps take consecutive tokens (a warp past the last token
  // recomputes the last one and writes nothing): they share each tile of
  // compressed keys.
  t0 = e.mul(gpu::BlockIdOp::create(b, gpu::Dimension::x), e.idx(kSelectWarps));
  active = e.lt(e.add(t0, warp), sq);
  t = e.smin(e.add(t0, warp), e.sub(sq, c1));
  kvh = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  bIdx = gpu::BlockIdOp::create(b, gpu::Dimension::z);
}

/// The row's position, its visible compressed tokens and its candidate
/// blocks (those starting at or before p), whose scores start at 0.
void NsaSelectKernel::candidateBlocks() {
  pos = e.sub(e.add(t, sk), sq);
  visible = visibleAt(t);
  blockVisible =
      visibleAt(e.smin(e.add(t0, e.idx(kSelectWarps - 1)), e.sub(sq, c1)));
  last = e.div(pos, e.idx(sel));
  Value blocks = arith::CeilDivSIOp::create(b, sk, e.idx(sel));
  candidates = e.smin(e.add(e.smin(last, e.sub(blocks, c1)), c1),
                      e.idx(kMaxSelectBlocks));
  e.loop(lane, candidates, e.idx(32),
         [&](Value j) { e.store(e.f(0.0), scores, {warp, j}); });
  e.syncWarp();
}

/// Q's A fragments (rows g and g + 8: the group's heads; rows past G are
/// zero) and the rows' LSEs in the exp2 domain (+inf for the padding rows,
/// whose P is then 0).
void NsaSelectKernel::queryFragments() {
  g = e.div(lane, e.idx(4)), tq = e.rem(lane, e.idx(4));
  Value tokenRow = e.mul(e.add(e.mul(bIdx, sq), t), e.idx(Hq));
  Value head0 = e.mul(kvh, e.idx(G));
  SmallVector<Value, 2> rowValid, qBase;
  for (int64_t half = 0; half < 2; ++half) {
    Value r = e.add(g, e.idx(8 * half));
    Value valid = e.lt(r, e.idx(G));
    Value head = e.add(head0, e.sel(valid, r, c0));
    rowValid.push_back(valid);
    qBase.push_back(e.mul(e.add(tokenRow, head), e.idx(D)));
    Value lse = e.loadF32(lseArg, e.add(tokenRow, head));
    lse2.push_back(
        e.sel(valid, e.fmul(lse, e.f(llvm::numbers::log2e)), e.f(INFINITY)));
  }
  Value zero2 = e.zeros(VectorType::get({2}, e.elt));
  for (int64_t ks = 0; ks < D / 16; ++ks) {
    SmallVector<Value, 4> rows;
    for (int64_t hiK = 0; hiK < 2; ++hiK)
      for (int64_t half = 0; half < 2; ++half) {
        Value col = e.add(e.idx(ks * 16 + 8 * hiK), e.mul(tq, e.idx(2)));
        rows.push_back(e.sel(rowValid[half],
                             e.pair(qArg, {e.add(qBase[half], col)}), zero2));
      }
    aFrags.push_back(e.fragment(rows));
  }
}

/// The block's copies of the tile of compressed keys from `cBase` into
/// ring slot `slot`, as one cp.async group (16-byte chunks; keys past Tc
/// copy nothing from the last one's row and are zero-filled). Only called
/// with Tc > 0.
Value NsaSelectKernel::copyKeyTile(Value cBase, Value slot) {
  SmallVector<Value> tokens;
  const int64_t chunks = kCmpTile * D / 8;
  const int64_t copies = llvm::divideCeil(chunks, kSelectThreads);
  for (int64_t k = 0; k < copies; ++k) {
    Value i = e.add(tid, e.idx(k * kSelectThreads));
    Value r = e.div(e.mul(i, e.idx(8)), e.idx(D));
    Value col = e.rem(e.mul(i, e.idx(8)), e.idx(D));
    Value key = e.add(cBase, r);
    Value inside = e.lt(key, tc);
    if (chunks % kSelectThreads)
      inside = e.land(inside, e.lt(i, e.idx(chunks)));
    Value row = e.add(
        e.mul(e.add(e.mul(bIdx, tc), e.smin(key, e.sub(tc, c1))), e.idx(Hkv)),
        kvh);
    // wgmma: chunk col / 8 of row r in the slot's swizzled panels.
    SmallVector<Value, 3> dst{slot, r, col};
    if (wgmma)
      dst.assign({e.div(attn::detail::buildSwizzledChunkOffset(
                            b, e.mul(slot, e.idx(kCmpTile * D * 2)), r,
                            e.div(col, e.idx(8)), kCmpTile),
                        e.idx(2))});
    tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
        b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), kS, dst, kcArg,
        ValueRange{e.add(e.mul(row, e.idx(D)), col)}, b.getIndexAttr(8),
        e.sel(inside, e.idx(8), c0), /*bypassL1=*/b.getUnitAttr()));
  }
  return nvgpu::DeviceAsyncCreateGroupOp::create(
      b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), tokens);
}

/// S = Q·K_cmpᵀ over the tile (m16n8k16, K's fragments by ldmatrix), P =
/// exp(S - lse) summed over the group's rows, per compressed token into the
/// warp's staging row.
void NsaSelectKernel::stageTileSums(Value cBase, Value slot) {
  for (int64_t np = 0; np < kCmpTile / 16; ++np) {
    SmallVector<Value, 2> acc(2, e.zeros(accType));
    for (int64_t ks = 0; ks < D / 16; ++ks) {
      Value r = e.add(e.idx(np * 16), e.add(lane8, e.mul(jHi, e.idx(8))));
      Value col = e.mul(e.add(e.idx(2 * ks), jLo), e.idx(8));
      Value frag = nvgpu::LdMatrixOp::create(b, VectorType::get({4, 2}, e.elt),
                                             kS, ValueRange{slot, r, col},
                                             /*transpose=*/false, 4);
      auto [b0, b1] = attn::detail::splitLdMatrixPair(b, b.getLoc(), frag);
      acc[0] = e.mmaSync(aFrags[ks], b0, acc[0]);
      acc[1] = e.mmaSync(aFrags[ks], b1, acc[1]);
    }
    for (int64_t half8 = 0; half8 < 2; ++half8)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t nt = 2 * np + half8;
        Value colIdx = e.add(e.idx(nt * 8 + j), e.mul(tq, e.idx(2)));
        Value p = e.f(0.0);
        for (int64_t half = 0; half < 2; ++half)
          p = e.fadd(
              p, e.exp2(e.fsub(e.fmul(e.at(acc[half8], half, j), e.f(factor)),
                               lse2[half])));
        p = e.sel(e.lt(e.add(cBase, colIdx), visible), p, e.f(0.0));
        p = e.rowGroupSum(p);
        e.when(e.lt(lane, e.idx(4)),
               [&] { e.store(p, stage, {warp, colIdx}); });
      }
  }
  e.syncWarp();
}

/// wgmma: Q's A fragments as register-A words. A warp's m16 fragment is
/// the warpgroup fragment of its 16 rows (rows 16w + g and + 8, columns 2t
/// and 2t + 8 of each k-step), so the four warps of a warpgroup hold its 64
/// rows: their four tokens' heads.
void NsaSelectKernel::registerA() {
  auto wordType = VectorType::get({1}, b.getI32Type());
  for (Value frag : aFrags)
    for (int64_t i = 0; i < 4; ++i) {
      Value pair = vector::ExtractOp::create(b, frag, ArrayRef<int64_t>{i});
      Value word = vector::BitCastOp::create(b, wordType, pair);
      aRegs.push_back(vector::ExtractOp::create(b, word, ArrayRef<int64_t>{0}));
    }
}

/// wgmma: S = Q·K_cmpᵀ for the warpgroup's 64 rows and the tile in `slot`
/// (64 keys, K-major panels) as m64n64k16 with Q from registers; the
/// accumulator's 32 values, (8-key tile n, row g + 8i, column 2t + j) at 4n
/// + 2i + j.
SmallVector<Value> NsaSelectKernel::wgmmaScores(Value slot) {
  Value base = e.add(
      kAddr, arith::IndexCastUIOp::create(
                 b, b.getI64Type(), e.mul(slot, e.idx(kCmpTile * D * 2))));
  Value desc = attn::detail::buildWgmmaDescriptor(b, base, 0);
  Value acc = attn::detail::buildWgmmaRegisterAChain(
      b, e.elt, /*acc=*/Value(), aRegs, kCmpTile,
      [&](int64_t kk) {
        return attn::detail::advanceWgmmaDescriptor(
            b, desc, attn::detail::getKMajorStepOffset(kk, kCmpTile));
      },
      /*bKMajor=*/true);
  attn::detail::buildWgmmaWait(b, 0);
  SmallVector<Value> values;
  for (int64_t i = 0; i < kCmpTile / 2; ++i)
    values.push_back(LLVM::ExtractValueOp::create(b, acc, i));
  return values;
}

/// wgmma: the staging of stageTileSums from the accumulator's values, with
/// fewer instructions an element than the mma.sync path's (issue-bound
/// here once the products moved to wgmma): the exponent as one FMA, and
/// the sums over the group's rows as a reduce-scatter across the 8 lanes of
/// a column quad (14 shuffles for the 16 columns instead of 48), which
/// leaves lane 4g + t the sums of columns 8g + 2t and 8g + 2t + 1.
void NsaSelectKernel::stageWgmmaSums(Value cBase, ArrayRef<Value> sTile) {
  Value negLse[2] = {arith::NegFOp::create(b, lse2[0]),
                     arith::NegFOp::create(b, lse2[1])};
  // vals[2nt + j]: column 8nt + 2t + j.
  SmallVector<Value> vals;
  for (int64_t nt = 0; nt < kCmpTile / 8; ++nt)
    for (int64_t j = 0; j < 2; ++j) {
      Value p = e.f(0.0);
      for (int64_t half = 0; half < 2; ++half)
        p = e.fadd(p, e.exp2(e.fma(sTile[4 * nt + 2 * half + j], e.f(factor),
                                   negLse[half])));
      Value colIdx = e.add(e.idx(nt * 8 + j), e.mul(tq, e.idx(2)));
      vals.push_back(e.sel(e.lt(e.add(cBase, colIdx), visible), p, e.f(0.0)));
    }
  // Lane distance 16, 8, 4 (bits 2, 1, 0 of g): a lane with the bit set
  // keeps the upper half of its values, sends the lower half, and adds.
  for (int32_t width = 16; width >= 4; width /= 2) {
    Value upper = e.lt(e.idx(width - 1), e.rem(lane, e.idx(2 * width)));
    const size_t half = vals.size() / 2;
    SmallVector<Value> kept;
    for (size_t k = 0; k < half; ++k) {
      Value send = e.sel(upper, vals[k], vals[k + half]);
      Value keep = e.sel(upper, vals[k + half], vals[k]);
      kept.push_back(e.fadd(keep, e.shuffleXor(send, width)));
    }
    vals = std::move(kept);
  }
  for (int64_t j = 0; j < 2; ++j)
    e.store(vals[j], stage,
            {warp,
             e.add(e.add(e.mul(g, e.idx(8)), e.mul(tq, e.idx(2))), e.idx(j))});
  e.syncWarp();
}

/// Adds the step's sums into the blocks they overlap: block j holds
/// compressed tokens c with c·d < (j + 1)·l' and c·d + l > j·l'.
void NsaSelectKernel::addToBlocks(Value cBase) {
  Value cEnd = e.smin(e.add(cBase, e.idx(kCmpTile)), visible);
  Value jFirst = e.div(e.mul(cBase, e.idx(stride)), e.idx(sel));
  Value jEnd = e.smin(
      e.add(e.div(e.add(e.mul(e.sub(cEnd, c1), e.idx(stride)), e.idx(l - 1)),
                  e.idx(sel)),
            c1),
      candidates);
  e.loop(e.add(jFirst, lane), jEnd, e.idx(32), [&](Value j) {
    Value lo = arith::FloorDivSIOp::create(
        b, e.sub(e.mul(j, e.idx(sel)), e.idx(l)), e.idx(stride));
    Value cLo = e.smax(cBase, e.add(lo, c1));
    Value cHi = e.smin(
        cEnd,
        e.add(e.div(e.sub(e.mul(e.add(j, c1), e.idx(sel)), c1), e.idx(stride)),
              c1));
    Value sum = e.loop(cLo, cHi, c1, ValueRange{e.f(0.0)},
                       [&](Value c, ValueRange acc) {
                         Value x = e.load(stage, {warp, e.sub(c, cBase)});
                         return SmallVector<Value>{e.fadd(acc[0], x)};
                       })[0];
    e.store(e.fadd(e.load(scores, {warp, j}), sum), scores, {warp, j});
  });
  e.syncWarp();
}

/// The always-selected blocks get +inf: the first `initial_blocks` and the
/// `local_blocks` ending at p's block.
void NsaSelectKernel::forcedBlocks() {
  Value initial = e.idx(spec.initialBlocks), local = e.idx(spec.localBlocks);
  e.loop(lane, candidates, e.idx(32), [&](Value j) {
    Value forced = e.lor(e.lt(j, initial), e.lt(last, e.add(j, local)));
    e.when(forced, [&] { e.store(e.f(INFINITY), scores, {warp, j}); });
  });
  e.syncWarp();
}

/// num_selected rounds of a warp arg-max (ties: the lower block; taken
/// blocks become -inf, scores are otherwise >= 0) write the indices (-1
/// once the candidates run out).
void NsaSelectKernel::selectBlocks() {
  Type i32 = b.getI32Type();
  Value outRow =
      e.mul(e.add(e.mul(e.add(e.mul(bIdx, sq), t), e.idx(Hkv)), kvh), e.idx(N));
  Value none = arith::ConstantOp::create(b, b.getI32IntegerAttr(-1));
  Value noBlock = arith::ConstantOp::create(b, b.getI32IntegerAttr(INT32_MAX));
  e.loop(c0, e.idx(N), c1, [&](Value i) {
    ValueRange best =
        e.loop(lane, candidates, e.idx(32), ValueRange{e.f(-INFINITY), noBlock},
               [&](Value j, ValueRange cur) {
                 Value x = e.load(scores, {warp, j});
                 Value better = e.fgt(x, cur[0]);
                 Value j32 = e.cast(i32, j);
                 return SmallVector<Value>{e.sel(better, x, cur[0]),
                                           e.sel(better, j32, cur[1])};
               });
    Value v = best[0], bj = best[1];
    for (int32_t o = 16; o >= 1; o /= 2) {
      Value ov = e.shuffleXor(v, o), oj = e.shuffleXor(bj, o);
      Value take = e.lor(e.fgt(ov, v), e.land(e.feq(ov, v), e.slt(oj, bj)));
      v = e.sel(take, ov, v);
      bj = e.sel(take, oj, bj);
    }
    Value found = e.fgt(v, e.f(-INFINITY));
    e.when(e.land(active, e.eq(lane, c0)), [&] {
      e.store(e.sel(found, bj, none), idxArg, {e.add(outRow, i)});
      e.when(found, [&] {
        e.store(e.f(-INFINITY), scores, {warp, e.cast(b.getIndexType(), bj)});
      });
    });
    e.syncWarp();
  });
}

LogicalResult mlir::attn::detail::buildNsaSelectKernel(
    OpBuilder &builder, ModuleOp module, const NsaSelectSpec &spec,
    const KernelOptions &options, Location loc, EmitErrorFn emitError,
    Manifests &manifests) {
  std::string why;
  if (failed(checkNsaKernelEligible(spec, &why)))
    return emitError() << why;
  const int64_t D = spec.headDim, Hq = spec.queryHeads, Hkv = spec.kvHeads;
  MLIRContext *ctx = builder.getContext();
  Type elt = getType(ctx, spec.dtype), f32 = builder.getF32Type(),
       i32 = builder.getI32Type();
  const double scale = spec.scale;
  std::string name;
  llvm::raw_string_ostream os(name);
  // Dv where it is not D: the selected branch's kernel, named alike, reads
  // values.
  os << "attn_nsa_select_" << typeName(elt) << "_d" << D;
  if (spec.valueHeadDim != D)
    os << "_dv" << spec.valueHeadDim;
  os << "_h" << Hq << "_" << Hkv << "_l" << spec.cmpBlock << "_d"
     << spec.cmpStride << "_sel" << spec.selBlock << "_n" << spec.numSelected
     << "_i" << spec.initialBlocks << "_w" << spec.localBlocks << "_s"
     << hexBits(scale);
  const bool wgmma = nsaSelectOnWgmma(spec, options);
  std::string attend = name;
  attend.replace(0, std::string("attn_nsa_select").size(), "attn_nsa_attend");
  if (wgmma)
    os << "_wg";
  KernelSignature sig;
  sig.tensor("q", "query", elt, llvm::json::Array{"B", "Sq", Hq, D});
  sig.tensor("k_cmp", "key_cmp", elt, llvm::json::Array{"B", "Tc", Hkv, D});
  sig.tensor("lse_cmp", "workspace", f32, llvm::json::Array{"B", "Sq", Hq});
  sig.tensor("indices", "output", i32,
             llvm::json::Array{"B", "Sq", Hkv, spec.numSelected});
  sig.sizes(ctx, {"Sq", "Sk", "Tc"});
  // The variant: everything the selection and the selected branch depend
  // on (the window belongs to the window branch's kernel).
  llvm::json::Object variant{
      {"op", "nsa"},
      {"dtype", typeName(elt)},
      {"head_dim", D},
      {"value_head_dim", spec.valueHeadDim},
      {"q_heads", Hq},
      {"kv_heads", Hkv},
      {"cmp_block", spec.cmpBlock},
      {"cmp_stride", spec.cmpStride},
      {"sel_block", spec.selBlock},
      {"num_selected", spec.numSelected},
      {"initial_blocks", spec.initialBlocks},
      {"local_blocks", spec.localBlocks},
      {"scale", static_cast<double>(static_cast<float>(scale))}};
  llvm::json::Object manifest{
      {"entry", name},
      {"params", std::move(sig.params)},
      {"grid", llvm::json::Array{grid::ceilDiv("Sq", kSelectWarps), Hkv, "B"}},
      {"block", llvm::json::Array{kSelectThreads, 1, 1}},
      {"kernel", "nsa.select"},
      {"max_key_blocks", kMaxSelectBlocks},
      {"dynamic_shared_memory", nsaSelectSharedMemory(D, wgmma)},
      {"variant", llvm::json::Object(variant)}};
  if (!module.lookupSymbol<gpu::GPUModuleOp>(name)) {
    gpu::GPUFuncOp func =
        createKernel(builder, module, loc, name, sig.types, kSelectThreads);
    OpBuilder::InsertionGuard guard(builder);
    NsaSelectKernel(builder, func, spec, loc, wgmma).build();
    builder.setInsertionPointToEnd(&func.getBody().front());
    gpu::ReturnOp::create(builder, loc);
  }
  addManifest(builder, manifests, name, std::move(manifest));
  // The selected branch with the gated sum, where its kernel takes the
  // selection blocks (else the host runs the branch on the paged kernels).
  if (detail::nsaAttendAccepts(spec)) {
    detail::addNsaAttendKernel(builder, module, spec, attend, loc,
                               std::move(variant), manifests);
  }
  return success();
}

//===----------------------------------------------------------------------===//
// attn.lightning_indexer: scores
//===----------------------------------------------------------------------===//

LogicalResult
mlir::attn::detail::checkIndexerKernelEligible(const IndexerSpec &spec,
                                               std::string *why) {
  auto fail = [&](const Twine &msg) { return failWith(why, msg); };
  if (!isHalfType(spec.dtype))
    return fail("the indexer GPU kernel takes f16 or bf16 (got " +
                stringifyScalarType(spec.dtype) + ")");
  int64_t hi = spec.heads, di = spec.headDim;
  if (ShapedType::isDynamic(hi) || ShapedType::isDynamic(di) || hi <= 0 ||
      di <= 0 || hi % 16 || di % 16 || hi > 128 || di > 256)
    return fail("the indexer GPU kernel needs static head counts and dims, "
                "positive multiples of 16, at most 128 heads of at most 256 "
                "(got " +
                Twine(hi) + " x " + Twine(di) + ")");
  return success();
}

namespace {
/// The indexer's scores kernel (see the file comment). Its phases: the
/// token's query into shared memory, the head weights and the admitted
/// keys, then per step of 16 keys K's fragments, the weighted sum over
/// heads of relu(Q·Kᵀ) and the scores.
class IndexerScoresKernel : KernelBody {
public:
  IndexerScoresKernel(OpBuilder &builder, gpu::GPUFuncOp func,
                      const IndexerSpec &spec, Location loc);

  void build() {
    loadQuery();
    loadWeights();
    admittedKeys();
    e.loop(c0, e.idx(kIndexerKeys / kWarps), e.idx(16), [&](Value step) {
      Value k0 = e.add(warpKeys, step);
      Value any = e.land(e.slt(k0, hi), e.slt(lo, e.add(k0, e.idx(16))));
      SmallVector<Value> neg(4, e.f(-INFINITY));
      SmallVector<Value> sums =
          e.ifElse(any, neg, [&] { return headScores(keyFragments(k0)); });
      storeScores(k0, sums);
    });
  }

private:
  void loadQuery();
  void loadWeights();
  void admittedKeys();
  SmallVector<SmallVector<Value>> keyFragments(Value k0);
  SmallVector<Value> headScores(ArrayRef<SmallVector<Value>> bFrags);
  void storeScores(Value k0, ArrayRef<Value> sums);

  const IndexerSpec &spec;
  const int64_t Hi, Di;
  // Arguments: q, k, weights, scores, Sq, Sk.
  Value qArg, kArg, wArg, sArg, sq, sk;
  // Shared memory: the token's query (rows padded by 8 elements).
  Value qS;
  Value tid, warp, lane, tile, t, bIdx, c0, c1, token;
  // Fragment coordinates; the head weights of rows g and g + 8 of every
  // 16-head tile.
  Value g, tq;
  SmallVector<Value> weights;
  // The admitted keys [lo, hi); the warp's first key; the token's row of
  // scores.
  Value lo, hi, warpKeys, zero, scoreRow;
};
} // namespace

IndexerScoresKernel::IndexerScoresKernel(OpBuilder &builder,
                                         gpu::GPUFuncOp func,
                                         const IndexerSpec &spec, Location loc)
    : KernelBody(builder, func, loc, getType(builder.getContext(), spec.dtype)),
      spec(spec), Hi(spec.heads), Di(spec.headDim) {
  qArg = arg(), kArg = arg(), wArg = arg(), sArg = arg();
  sq = arg(), sk = arg();

  qS = shared({Hi, Di + 8}, e.elt);

  tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  warp = e.div(tid, e.idx(32)), lane = e.rem(tid, e.idx(32));
  tile = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  t = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  bIdx = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  c0 = e.idx(0), c1 = e.idx(1);
  token = e.add(e.mul(bIdx, sq), t);
}

/// The token's query into shared memory, 8 elements per copy.
void IndexerScoresKernel::loadQuery() {
  e.copyRows8(tid, kThreads, Hi, Di, qArg, qS, [&](Value r, Value c) {
    return e.add(e.mul(e.add(e.mul(token, e.idx(Hi)), r), e.idx(Di)), c);
  });
  e.barrier();
}

/// The head weights of rows g and g + 8 of every 16-head tile.
void IndexerScoresKernel::loadWeights() {
  g = e.div(lane, e.idx(4)), tq = e.rem(lane, e.idx(4));
  for (int64_t mt = 0; mt < Hi / 16; ++mt)
    for (int64_t half = 0; half < 2; ++half)
      weights.push_back(
          e.loadF32(wArg, e.add(e.mul(token, e.idx(Hi)),
                                e.add(g, e.idx(mt * 16 + 8 * half)))));
}

/// The keys the mask admits for the token's position, and the warp's keys.
void IndexerScoresKernel::admittedKeys() {
  Value pos = e.sub(e.add(t, sk), sq);
  std::pair<Value, Value> band = buildAdmittedKeys(
      b, b.getLoc(), spec.mask.getAttr(b.getContext()), pos, sk);
  lo = band.first, hi = band.second;
  warpKeys = e.add(e.mul(tile, e.idx(kIndexerKeys)),
                   e.mul(warp, e.idx(kIndexerKeys / kWarps)));
  zero = e.f(0.0);
  scoreRow = e.mul(token, sk);
}

/// K's B fragments of the step's two n8 tiles from `k0` (keys past Sk read
/// the last key; their scores are not written).
SmallVector<SmallVector<Value>> IndexerScoresKernel::keyFragments(Value k0) {
  SmallVector<SmallVector<Value>> bFrags(2);
  for (int64_t nt = 0; nt < 2; ++nt) {
    Value key = e.smin(e.add(k0, e.add(e.idx(nt * 8), g)), e.sub(sk, c1));
    Value base = e.mul(e.add(e.mul(bIdx, sk), key), e.idx(Di));
    for (int64_t ks = 0; ks < Di / 16; ++ks) {
      Value col = e.add(base, e.add(e.idx(ks * 16), e.mul(tq, e.idx(2))));
      bFrags[nt].push_back(e.fragment(
          {e.pair(kArg, {col}), e.pair(kArg, {e.add(col, e.idx(8))})}));
    }
  }
  return bFrags;
}

/// Q·Kᵀ for every 16-head tile (mma.sync, Q's fragments from shared
/// memory), relu, the head weights and the sum over heads: this thread's
/// four key columns, summed over the lane groups.
SmallVector<Value>
IndexerScoresKernel::headScores(ArrayRef<SmallVector<Value>> bFrags) {
  auto accType = VectorType::get({2, 2}, b.getF32Type());
  SmallVector<Value> cols(4, zero);
  for (int64_t mt = 0; mt < Hi / 16; ++mt) {
    SmallVector<Value> acc(2, e.zeros(accType));
    for (int64_t ks = 0; ks < Di / 16; ++ks) {
      SmallVector<Value, 4> rows;
      for (int64_t hiK = 0; hiK < 2; ++hiK)
        for (int64_t half = 0; half < 2; ++half)
          rows.push_back(e.pair(
              qS, {e.add(g, e.idx(mt * 16 + 8 * half)),
                   e.add(e.idx(ks * 16 + 8 * hiK), e.mul(tq, e.idx(2)))}));
      Value aFrag = e.fragment(rows);
      for (int64_t nt = 0; nt < 2; ++nt)
        acc[nt] = e.mmaSync(aFrag, bFrags[nt][ks], acc[nt]);
    }
    for (int64_t nt = 0; nt < 2; ++nt)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t half = 0; half < 2; ++half) {
          Value s = e.fmax(e.at(acc[nt], half, j), zero);
          cols[nt * 2 + j] =
              e.fadd(cols[nt * 2 + j], e.fmul(s, weights[mt * 2 + half]));
        }
  }
  for (Value &c : cols)
    c = e.rowGroupSum(c);
  return cols;
}

/// The step's scores (lanes 0-3 hold them), -inf where the mask does not
/// admit the key, for keys below Sk.
void IndexerScoresKernel::storeScores(Value k0, ArrayRef<Value> sums) {
  e.when(e.lt(lane, e.idx(4)), [&] {
    for (int64_t nt = 0; nt < 2; ++nt)
      for (int64_t j = 0; j < 2; ++j) {
        Value key = e.add(k0, e.add(e.idx(nt * 8 + j), e.mul(tq, e.idx(2))));
        e.when(e.lt(key, sk), [&] {
          Value in = e.land(e.slt(key, hi), e.sle(lo, key));
          e.store(e.sel(in, sums[nt * 2 + j], e.f(-INFINITY)), sArg,
                  {e.add(scoreRow, key)});
        });
      }
  });
}

LogicalResult mlir::attn::detail::buildIndexerKernel(
    OpBuilder &builder, ModuleOp module, const IndexerSpec &spec, Location loc,
    EmitErrorFn emitError, Manifests &manifests) {
  std::string why;
  if (failed(checkIndexerKernelEligible(spec, &why)))
    return emitError() << why;
  const int64_t Hi = spec.heads, Di = spec.headDim;
  MLIRContext *ctx = builder.getContext();
  Type elt = getType(ctx, spec.dtype), f32 = builder.getF32Type();
  Type welt = getType(ctx, spec.weightsDtype);
  const MaskSpec &mask = spec.mask;
  std::string name;
  llvm::raw_string_ostream os(name);
  os << "attn_indexer_scores_" << typeName(elt) << "_h" << Hi << "_d" << Di
     << "_w" << typeName(welt) << "_" << stringifyMaskKind(mask.kind);
  if (mask.isWindow())
    os << "_l" << mask.left << "_r" << mask.right;
  llvm::json::Object variant{{"op", "lightning_indexer"},
                             {"dtype", typeName(elt)},
                             {"heads", Hi},
                             {"head_dim", Di},
                             {"weights_dtype", typeName(welt)},
                             {"mask", stringifyMaskKind(mask.kind)}};
  if (mask.isWindow()) {
    variant["window_left"] = mask.left;
    variant["window_right"] = mask.right;
  }
  KernelSignature sig;
  sig.tensor("q", "query", elt, llvm::json::Array{"B", "Sq", Hi, Di});
  sig.tensor("k", "key", elt, llvm::json::Array{"B", "Sk", Di});
  sig.tensor("weights", "weights", welt, llvm::json::Array{"B", "Sq", Hi});
  sig.tensor("scores", "output", f32, llvm::json::Array{"B", "Sq", "Sk"});
  sig.sizes(ctx, {"Sq", "Sk"});
  const int64_t sharedMemory = 2 * Hi * (Di + 8);
  llvm::json::Object manifest{
      {"entry", name},
      {"params", std::move(sig.params)},
      {"grid", llvm::json::Array{grid::ceilDiv("Sk", kIndexerKeys), "Sq", "B"}},
      {"block", llvm::json::Array{kThreads, 1, 1}},
      {"kernel", "indexer.scores"},
      {"dynamic_shared_memory", sharedMemory},
      {"variant", std::move(variant)}};
  if (!module.lookupSymbol<gpu::GPUModuleOp>(name)) {
    gpu::GPUFuncOp func =
        createKernel(builder, module, loc, name, sig.types, kThreads);
    OpBuilder::InsertionGuard guard(builder);
    IndexerScoresKernel(builder, func, spec, loc).build();
    builder.setInsertionPointToEnd(&func.getBody().front());
    gpu::ReturnOp::create(builder, loc);
  }
  addManifest(builder, manifests, name, std::move(manifest));
  return success();
}
