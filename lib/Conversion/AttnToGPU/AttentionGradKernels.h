//===- AttentionGradKernels.h - the attention backward's bodies -*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Internal to lib/Conversion/AttnToGPU: what AttentionGradKernels.cpp (the
// kernels of an AttentionGradSpec: signatures, manifests, the thread-per-row
// bodies) shares with AttentionGradMmaKernels.cpp (the mma.sync bodies) and
// AttentionGradWgmmaKernel.cpp (the sm_90a dQ and dK/dV bodies).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTIONGRADKERNELS_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTIONGRADKERNELS_H

#include "DenseKernels.h"
#include "KernelCommon.h"

#include "attn/IR/KernelSpec.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#include <string>

namespace mlir {
namespace attn {
namespace detail {

/// The arguments of a backward kernel (null where it takes none): the
/// forward's (`fwd`: Q, K, V, bias, O for dQ, the LSE, sizes, run-time
/// values), dO, the Delta workspace, the fused dQ's f32 workspace
/// (`dqAccum`, see getDQAccumOffset) and the gradients it writes.
struct GradArgs {
  AttentionKernelArgs fwd;
  Value dO, delta, dqAccum, dq, dk, dv, dsinks;
  /// The fused dQ's per-tile statistics (getRowStatsShape).
  Value rowStats;
};

/// The tiling of the mma.sync backward (AttentionGradMmaKernels.cpp): 4
/// warps of 16 rows each. The dQ kernel's block owns `rows` query rows and
/// streams K and V through `stages` buffers of `keys` rows; the dK/dV
/// kernel's owns `keys` keys and streams Q, dO, the LSE and Delta through
/// `stages` buffers of `rows` query rows.
struct GradMmaTiling {
  int64_t rows = 64;
  int64_t keys = 64;
  int64_t stages = 2;
  /// Whether a warp keeps its A fragments of the tiles it owns (Q and dO in
  /// dQ; K and V in dK/dV) in registers for the whole kernel, instead of
  /// re-reading them from shared memory at every step.
  bool ownInRegisters = false;

  int64_t threads() const { return 128; }
  /// Dynamic shared memory: the dQ kernel's Q and dO tiles, K and V
  /// stages, the rows' lse·log2 e and Delta (f32).
  int64_t dqSharedMemoryBytes(int64_t d, int64_t dv) const;
  /// The dK/dV kernel's K and V tiles, Q and dO stages, and the LSE and
  /// Delta stages (f32, one slot per thread).
  int64_t dkdvSharedMemoryBytes(int64_t d, int64_t dv) const;
};

/// The tiling of the mma.sync backward for `spec`'s forward; failure (with
/// the reason in `why`) where those kernels cannot run it: they take f16
/// and bf16 with head dims that are multiples of 16 up to 128 (above, the
/// dK and dV accumulators of a warp's 16 keys no longer fit its registers).
FailureOr<GradMmaTiling> getGradMmaTiling(const AttentionSpec &spec,
                                          std::string *why);

/// d(logit)/d(q·k) outside softcap's tanh: the scale (the score factor
/// without log2 e, or times the cap under softcap, whose factor is
/// scale / cap).
Value getGradScale(Emitter &e, const AttentionSpec &spec,
                   const AttentionKernelArgs &args);

/// The bytes of streamed rows (Q, dO and dQ's accumulator for dK/dV; K and V
/// for dQ) that a section of (y, z) pairs may keep in L2 while its blocks
/// stream them: FlashAttention-3's backward scheduler budgets 40 MB of the
/// H100's and H200's 50 MB for Q, dO and dQaccum.
constexpr int64_t kGradL2SectionBytes = 40ll << 20;

/// A backward kernel's block indices (x, the sequence block; y, z), in the
/// order the grid's blocks start. The hardware starts them by linear index
/// L = x + X (y + Y z). Under a causal mask a block's work varies with x:
/// it falls (dK/dV: a key block admits the rows from its own on) or grows
/// (dQ, `heavyLast`: a query block admits the keys up to its own). L is
/// re-dealt heaviest first within sections of s (y, z) pairs: level
/// (L mod X s) / s of section L / (X s) holds each of its pairs' block of
/// that heaviness, so that light blocks fill the tail, where the grid's
/// order starts the last pairs' heaviest blocks last (FlashAttention-3's
/// longest-processing-time-first order).
///
/// - GQA and MQA (Hq > Hkv at run time): one section of every pair. With
///   each block's cost its tiles plus 3.5 of fixed cost on 132 SMs, the
///   grid's order reaches 0.81 of the ideal for Llama-3.1-8B's GQA at 8k and
///   0.63 at 4k, the levels 0.99-1.00. Measured on an H100
///   (docs/bench/2026-12-05-h100-stop48-grad-order): +18-26% at 4k and
///   +7-10% at 8k for that GQA with the wgmma kernels, fused and
///   deterministic, +13-17% with the mma.sync dK/dV kernel.
/// - MHA: sections of the pairs whose `streamedRows` rows of `bytesPerRow`
///   fit kGradL2SectionBytes (a power of two, at least 1), which keep their
///   rows and dQ's accumulator in L2 while their blocks stream them. Dealt
///   over all pairs, d64 and d128 causal 4k x 4 lost up to 35% (stop 48);
///   in the grid's order (s = 1) the model above gives 0.95 of the ideal for
///   d128 causal 8k x 2 and 0.94 at 4k x 4, sections of 4 and 8 pairs
///   0.999 and 0.997.
///
/// Other masks keep the grid's order.
struct GradBlockIds {
  Value x, y, z;
};
GradBlockIds getGradBlockIds(Emitter &e, const AttentionSpec &spec,
                             const AttentionKernelArgs &args, bool heavyLast,
                             Value streamedRows, int64_t bytesPerRow);

/// lse · log2 e, the exp2 domain's LSE; 0 where lse = -inf (a row without
/// mass, whose weights are all 0).
Value getLse2(Emitter &e, Value lse);

/// Delta = rowsum(dO ⊙ O) of a row shared by two threads (`half` 0 and 1,
/// adjacent lanes): each sums the products of its half of the `dv` columns,
/// 8 at a time (`loadO(col)`, `loadDO(col)`: vector<8> of `elt` at column
/// `col`), in f32; one shuffle adds the halves.
Value buildRowDelta(Emitter &e, Type elt, int64_t dv, Value half,
                    function_ref<Value(Value)> loadO,
                    function_ref<Value(Value)> loadDO);

/// Emits the mma.sync dQ kernel's body (which also writes Delta).
void buildGradMmaDQBody(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                        const AttentionSpec &spec, const GradArgs &args,
                        const GradMmaTiling &tiling);

/// Emits the mma.sync dK/dV kernel's body.
void buildGradMmaDKDVBody(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                          const AttentionSpec &spec, const GradArgs &args,
                          const GradMmaTiling &tiling);

/// The tiling of the sm_90a kernels (AttentionGradWgmmaKernel.cpp). The
/// dK/dV kernel's block owns `keys` keys, 64 per consumer warpgroup, and
/// streams Q, dO, the LSE and Delta through `stages` TMA stages of `rows`
/// query rows; the dQ kernel's owns `dqRows` query rows, 64 per consumer
/// warpgroup, and streams K and V through `dqStages` stages of `dqKeys`
/// keys.
struct GradWgmmaTiling {
  int64_t keys = 128;
  int64_t rows = 64;
  int64_t stages = 2;
  int64_t dqRows = 128;
  int64_t dqKeys = 64;
  int64_t dqStages = 2;
  /// Whether a dK/dV block computes only one of them (grid z [B, 2]: dV,
  /// then dK), where both would not fit a consumer's registers.
  bool splitDKDV = false;
  /// Whether the dK/dV kernel also adds each query tile's share of dQ into
  /// the `dq_accum` workspace (the non-deterministic backward; no dQ
  /// kernel: a prep and a convert kernel around it). Set by
  /// getGradWgmmaTiling where the spec allows atomics and the kernel takes
  /// the variant (canFuseDQ).
  bool fuseDQ = false;
  /// With fuseDQ: whether the consumers add their shares of dQ with f32
  /// atomics, element by element, instead of handing them through shared
  /// memory to a producer thread's bulk reductions (FlashAttention-3's
  /// way, the default). The spec's "dq_reduce": "atomic".
  bool dqAtomics = false;

  /// Two consumer warpgroups and one producer warpgroup.
  int64_t threads() const { return 384; }
  /// K and V, the Q and dO stages, the lse2 and Delta stages (f32), and
  /// with fuseDQ two dSᵀ buffers (1024-aligned).
  int64_t sharedMemoryBytes(int64_t d, int64_t dv) const;
  /// The dQ kernel's Q and dO, the K and V stages, lse2 and Delta (f32).
  int64_t dqSharedMemoryBytes(int64_t d, int64_t dv) const;
};

/// The tiling of the sm_90a kernels for `spec`'s forward; failure (with
/// the reason in `why`) where they cannot run it: f16 and bf16 with head
/// dims that are multiples of 64 up to 256. `grad`'s `deterministic` false
/// sets fuseDQ where the fused dQ takes the variant (and its dqAtomics).
FailureOr<GradWgmmaTiling>
getGradWgmmaTiling(const AttentionSpec &spec, std::string *why,
                   const AttentionGradSpec *grad = nullptr);

/// The fused dQ's query tiles (rows of a `dq_accum` tile).
inline constexpr int64_t kDQAccumRows = 64;

/// The element offset in the `dq_accum` workspace of accumulator element
/// `element` (4n + 2i + j, wgmma's m64n64 order) of thread `thread` (0 ..
/// 127 of its warpgroup) for column panel `panel` (64 columns; `panels` =
/// D / 64) of query tile `tile` (kDQAccumRows rows; `tiles` a head) of
/// batch-and-head `bh` = b · Hq + h. The workspace is [B, Hq, tiles, 64 · D]
/// f32 in the fragments' order, element-major, so that a warp's add of one
/// element is 128 contiguous bytes; only the prep kernel (zeroes), the dK/dV
/// kernel (adds) and the convert kernel (reads) see it.
Value getDQAccumOffset(Emitter &e, Value bh, Value tiles, Value tile,
                       Value panel, int64_t panels, int64_t element,
                       Value thread);

/// Emits the fused backward's step 0: Delta = rowsum(dO ⊙ O) of a tile's
/// rows into the `delta` workspace and the tile's `dq_accum` zeroed (128
/// threads, grid [ceil_div(Sq, kDQAccumRows), Hq, B]).
void buildGradDQPrepBody(OpBuilder &builder, Location loc,
                         const AttentionSpec &spec, const GradArgs &args);

/// Emits the fused backward's convert step: dQ = dq_accum · scale in the
/// element type (same threads and grid as the prep), through a shared tile
/// of getDQConvertSharedMemoryBytes.
void buildGradDQConvertBody(OpBuilder &builder, Location loc,
                            gpu::GPUFuncOp func, const AttentionSpec &spec,
                            const GradArgs &args);

/// The convert step's dynamic shared memory: a 64-row tile of dQ.
int64_t getDQConvertSharedMemoryBytes(int64_t headDim);

/// Emits the sm_90a dQ kernel's body (which also writes Delta);
/// `tmaDescriptors` are the Q, K, V and dO tensor maps.
void buildGradWgmmaDQBody(OpBuilder &builder, Location loc, gpu::GPUFuncOp func,
                          const AttentionSpec &spec, const GradArgs &args,
                          ValueRange tmaDescriptors,
                          const GradWgmmaTiling &tiling);

/// Emits the sm_90a dK/dV kernel's body; `tmaDescriptors` are the Q, K, V
/// and dO tensor maps.
void buildGradWgmmaDKDVBody(OpBuilder &builder, Location loc,
                            gpu::GPUFuncOp func, const AttentionSpec &spec,
                            const GradArgs &args, ValueRange tmaDescriptors,
                            const GradWgmmaTiling &tiling);

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTIONGRADKERNELS_H
