//===- DenseKernels.h - the dense attention kernels -------------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Internal to lib/Conversion/AttnToGPU: the tilings and the bodies of the
// three dense attention kernels (attn.attention), all generated from an
// AttentionSpec. DenseKernel.cpp builds the kernel around a body: its
// signature, manifest and gpu.func.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_DENSEKERNELS_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_DENSEKERNELS_H

#include "KernelCommon.h"
#include "OnlineSoftmax.h"

#include "attn/IR/KernelSpec.h"
#include "attn/IR/MaskUtils.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Builders.h"

#include <string>

namespace mlir {
namespace attn {
namespace detail {

/// The tiling of the sm_90a kernel: one or two consumer warpgroups of 64
/// query rows, K/V tiles of `keys` rows in two TMA stages.
struct WgmmaTiling {
  int64_t keys = 128;
  /// Stages of each of the K and V rings.
  int64_t stages = 2;
  /// FP8 (e4m3) inputs: one byte an element, and a third ring of V tiles
  /// transposed in shared memory by the producer warpgroup (FP8 wgmma takes
  /// B only K-major, WgmmaKernel.cpp).
  bool fp8 = false;
  /// Consumer warpgroups of 64 query rows: two in ping-pong (one block an
  /// SM), or one (block-q 64: two blocks an SM where shared memory allows).
  int64_t consumerWarpgroups = 2;
  /// The persistent schedule (AttentionSpec::persistent): blocks walk query
  /// tiles; the grid is min(tiles, blocksPerSM() x the SM count).
  bool persistent = false;
  /// No bias and no softcap: a step's scores need no more registers than
  /// S, so one consumer warpgroup of short steps fits three blocks an SM
  /// (blocksPerSM). A bias's loads spill there (bf16 d64, 64 keys: 20 bytes).
  bool lean = false;
  int64_t rows() const { return 64 * consumerWarpgroups; }
  /// Blocks an SM holds (`d`, `dv`: the head dims): with one consumer
  /// warpgroup three where the tiling is lean, its steps are of at most 64
  /// keys at head dims up to 64 and three blocks' shared memory fits, else
  /// two where two fit; with two warpgroups one.
  int64_t blocksPerSM(int64_t d, int64_t dv) const;
  /// Registers a consumer thread takes with setmaxnreg in a plain (not FP8,
  /// not persistent) kernel: what the block's launch share leaves beside
  /// the producer's 24 (WgmmaKernel.cpp's constants).
  int64_t consumerRegisters(int64_t d, int64_t dv) const;
  /// The consumer warpgroups and one producer warpgroup.
  int64_t threads() const { return 128 * (consumerWarpgroups + 1); }
  int64_t elementBytes() const { return fp8 ? 1 : 2; }
  /// Columns of a 128-byte swizzle panel (one TMA box).
  int64_t panelColumns() const { return 128 / elementBytes(); }
  int64_t sharedMemoryBytes(int64_t d, int64_t dv) const;
};

/// How the mma.sync kernel tiles the problem: 4 warps, each owning
/// `rowTiles` 16-row MMA tiles of the query block; K/V stream through
/// `stages` shared-memory buffers of `keys` rows.
struct MmaTiling {
  int64_t rowTiles = 2;
  int64_t keys = 64;
  int64_t stages = 2;
  /// Whether Q's MMA fragments are loaded once into registers (small head
  /// dims) or re-read from shared memory at every step.
  bool qInRegisters = false;

  int64_t rows() const { return 4 * 16 * rowTiles; }
  int64_t threads() const { return 128; }
  /// Dynamic shared memory of a block: the Q tile and the K and V stages.
  int64_t sharedMemoryBytes(int64_t d, int64_t dv) const;
};

/// The tiling of the mma.sync kernel for `spec`, with its query rows per
/// block and keys per step where `spec.blockQ`/`spec.blockKV` are non-zero;
/// failure (with the reason in `why`) where the kernel cannot run the spec.
FailureOr<MmaTiling> getMmaTiling(const AttentionSpec &spec, std::string *why);

/// Whether the mma.sync kernel takes `spec`'s variant at its default tiling.
bool isMmaKernelEligible(const AttentionSpec &spec);

/// The tiling of the sm_90a kernel for `spec`; failure (with the reason in
/// `why`) where it cannot run the spec.
FailureOr<WgmmaTiling> getWgmmaTiling(const AttentionSpec &spec,
                                      std::string *why);

/// The length alternatives of a resolved spec : specs of
/// kernels that compute the same with other tiling, each with the sizes at
/// which launchers prefer it (`prefer`). Empty where the spec fixes its
/// tiling (block sizes, or a `prefer` of its own) or none was measured
/// faster.
SmallVector<AttentionSpec> getLengthAlternatives(const AttentionSpec &resolved);

/// The kernel arguments of a dense attention kernel, in signature order
/// (bias, sinks and lse null where the spec has none).
struct AttentionKernelArgs {
  Value q, k, v, bias, sinks, o, lse;
  /// FP8's descales (f32 memrefs of 1 or B·Hkv elements).
  Value descaleQ, descaleK, descaleV;
  Value batch, hq, hkv, sq, sk;
  /// A spec that leaves its values to run time (runtimeValues) gets them
  /// after the sizes: scale, softcap (f32) and window extents (index). At
  /// the kernel's entry they become what the body uses (null where the
  /// spec compiles them in): the exp2-domain factors and the clamped
  /// extents.
  Value scoreFactor, softcapFactor, windowLeft, windowRight;
};

/// The factor that takes a raw score to the exp2 domain: scale·log2 e, or
/// scale / softcap before the tanh. A constant, or computed at the entry
/// from the kernel's arguments.
Value getScoreFactor(Emitter &e, const AttentionSpec &spec,
                     const AttentionKernelArgs &args);

/// softcap·log2 e, the factor after the tanh (specs with a softcap).
Value getSoftcapFactor(Emitter &e, const AttentionSpec &spec,
                       const AttentionKernelArgs &args);

/// The spec's mask with its window extents: the attribute's, or the
/// kernel's arguments.
MaskBand getMaskBand(MLIRContext *ctx, const AttentionSpec &spec,
                     const AttentionKernelArgs &args);

//===----------------------------------------------------------------------===//
// Pieces of the bodies (DenseKernel.cpp)
//===----------------------------------------------------------------------===//

/// The element offset of [batch, head, s, 0] in a contiguous 4-D tensor of
/// `layout` (BHSD or BSHD) with rows of `dim` elements.
Value getRowOffset(Emitter &e, Layout layout, Value batch, Value heads,
                   Value seqLen, Value head, Value s, int64_t dim);

/// The element offset of bias[batch, head, row, key] in the spec's bias
/// tensor ([B|1, Hq|1, Sq|1, Sk|1], contiguous): dims of size 1 read index
/// 0. `c0`, `c1`: index constants 0 and 1. (The thread-per-row forward and
/// backward kernels.)
Value getBiasOffset(Emitter &e, const AttentionSpec &spec,
                    const AttentionKernelArgs &args, Value batch, Value head,
                    Value row, Value key, Value c0, Value c1);

/// The query block of this thread block: blockIdx.x, or with a banded mask
/// gridDim.x - 1 - blockIdx.x (the blocks near the end have the most keys:
/// launched first, the light ones fill the tail of the grid).
Value getQueryBlock(Emitter &e, const AttentionSpec &spec);

/// The query block, query head and batch of this thread block, in a grid of
/// [query blocks, Hq, B]. Without a causal mask: getQueryBlock, blockIdx.y,
/// blockIdx.z. With one and query heads sharing K/V (Hq > Hkv, chosen at
/// run time), the blocks' launch order is dealt longest first within groups
/// of heads whose keys and values fit in part of the L2
/// (getCausalBlockOrder in DenseKernel.cpp).
struct BlockCoordinates {
  Value queryBlock, head, batch;
};
BlockCoordinates getBlockCoordinates(Emitter &e, const AttentionSpec &spec,
                                     const AttentionKernelArgs &args);

/// The coordinates of the tile of index `tile` (in [0, queryBlocks x Hq x
/// B)) of a persistent kernel: without a mask in the grid's order, with
/// one heaviest first across every (batch, head) pair, the order that the
/// persistent kernel's snake deal balances. A bijection.
BlockCoordinates getTileCoordinates(Emitter &e, const AttentionSpec &spec,
                                    const AttentionKernelArgs &args, Value tile,
                                    Value queryBlocks);

/// The key blocks of `keys` keys that the query rows [q0, q0 + rows) visit
/// (`off` = Sk - Sq: row r sits at key position r + off):
/// [begin, end) (end not clamped to begin), and the keys [fullFrom, fullTo)
/// that every row of the block admits. A key block inside those needs no
/// per-element mask: the band's start only grows with the row and its end
/// never shrinks, so the last row's start and the first row's end bound it.
struct KeyBlocks {
  Value begin, end, fullFrom, fullTo;
};
KeyBlocks getKeyBlocks(Emitter &e, const AttentionSpec &spec,
                       const AttentionKernelArgs &args, Value off, Value q0,
                       int64_t rows, int64_t keys);

/// The results of `body(/*masked=*/false)` for a key block every row of
/// the query block admits whole (`full`), else of `body(/*masked=*/true)`,
/// which adds the per-element test of the key range and the band; one
/// scf.if of `types`.
SmallVector<Value>
ifFullBlock(Emitter &e, Value full, TypeRange types,
            function_ref<SmallVector<Value>(bool masked)> body);

/// The running max and (thread-partial) sum of a row before the first key
/// block: -inf and 0, or with sinks the sink's logit and its weight `one`
/// (1; FP8's 2^8, the exponent offset of its P), counted once per row by
/// thread t = 0 of the quad.
std::pair<Value, Value> getInitialRowState(Emitter &e,
                                           const AttentionKernelArgs &args,
                                           Value head, Value t,
                                           double one = 1.0);

/// Step 5 of the tensor-core kernels for the thread's row i of the fragment
/// (query row `row`, running max `m`, partial sum `l`, output accumulator
/// `acc` as getAccumulatorElement takes it): O = acc / l in column pairs
/// (FP8: `outScale` · acc / l, the value descale, and the LSE of m - 8: its
/// P carries 2^8), in the spec's output type, and the LSE from thread t = 0
/// of the quad; rows past Sq write nothing.
void writeOutputRow(Emitter &e, OnlineSoftmax &softmax,
                    const AttentionSpec &spec, const AttentionKernelArgs &args,
                    Value batch, Value head, const FragmentLanes &lanes,
                    Value row, int64_t i, Value m, Value l, ValueRange acc,
                    int64_t dv, Value outScale = Value());

/// Emits the thread-per-row kernel body into `func` (see DenseKernel.cpp).
void buildBaselineKernelBody(OpBuilder &builder, Location loc,
                             gpu::GPUFuncOp func, const AttentionSpec &spec,
                             const AttentionKernelArgs &args);

/// Emits the mma.sync kernel body into `func` (see MmaKernel.cpp).
void buildMmaKernelBody(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                        const AttentionSpec &spec,
                        const AttentionKernelArgs &args,
                        const MmaTiling &tiling);

/// Emits the sm_90a kernel body into `func` (see WgmmaKernel.cpp);
/// `tmaDescriptors` are the Q, K and V tensor maps.
void buildWgmmaKernelBody(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                          const AttentionSpec &spec,
                          const AttentionKernelArgs &args,
                          ValueRange tmaDescriptors, const WgmmaTiling &tiling);

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_DENSEKERNELS_H
