//===- Kernels.h - kernel families, generated from specs --------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Internal to lib/Conversion/AttnToGPU: the entry point of each kernel
// family. Each takes a spec (attn/IR/KernelSpec.h), never an op: it adds the
// family's kernels to `module` (one gpu.module per kernel, named like it,
// reused when present) and their manifests to `manifests`. Diagnostics go
// through `emitError`, so that they are located at the op that asked, or at
// the spec file for `attn-compile --spec`.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELS_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELS_H

#include "attn/Conversion/AttnToGPU.h"
#include "attn/IR/KernelSpec.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"

#include <string>

namespace mlir {
namespace attn {
namespace detail {

/// Makes a diagnostic at the place that asked for the kernels.
using EmitErrorFn = function_ref<InFlightDiagnostic()>;

/// The manifests of a module's kernels, by kernel name (attn.kernels).
using Manifests = ManifestTable;

//===----------------------------------------------------------------------===//
// Dense attention (DenseKernel.cpp, MmaKernel.cpp, WgmmaKernel.cpp)
//===----------------------------------------------------------------------===//

/// `spec` with its kernel kind resolved for `chip` (Auto: wgmma on sm_90a
/// where it applies, else mma.sync where it applies, else the baseline, with
/// the reason the tensor-core kernels do not apply in `whyBaseline`).
/// Failure, with the reason in `why`, where the asked kind cannot run the
/// variant.
FailureOr<AttentionSpec> resolveAttentionKernel(const AttentionSpec &spec,
                                                StringRef chip,
                                                std::string *whyBaseline,
                                                std::string *why);

/// The kernel name of a resolved spec: equal for specs that share a kernel.
std::string getAttentionKernelName(const AttentionSpec &spec);

/// Called with the reason when the backward falls back to the
/// thread-per-row kernels; a failure stops the build.
using GradFallbackFn = function_ref<LogicalResult(StringRef why)>;

/// Adds the backward's kernels (AttentionGradKernels.cpp): on chip sm_90a
/// under the kernel option auto, the wgmma dQ and dK/dV kernels where they
/// take the variant (AttentionGradWgmmaKernel.cpp); else, unless the option
/// is "baseline", the mma.sync ones where they take it
/// (AttentionGradMmaKernels.cpp); else the thread-per-row ones, after
/// `fallback`. A spec's kernel Mma or Wgmma pins the body, or is an error
/// where the chip or the variant does not allow it.
LogicalResult buildAttentionGradKernels(OpBuilder &builder, ModuleOp module,
                                        const AttentionGradSpec &spec,
                                        const KernelOptions &options,
                                        Location loc, EmitErrorFn emitError,
                                        GradFallbackFn fallback,
                                        Manifests &manifests);

/// Adds the kernel of a resolved spec (kind not Auto).
LogicalResult buildAttentionKernels(OpBuilder &builder, ModuleOp module,
                                    const AttentionSpec &spec,
                                    TensorMapPassing tensorMaps, Location loc,
                                    EmitErrorFn emitError,
                                    Manifests &manifests);

//===----------------------------------------------------------------------===//
// Paged decode (PagedKernel.cpp, PagedLatentKernel.cpp)
//===----------------------------------------------------------------------===//

/// How many blocks split a paged head's value columns (PagedTiling: one
/// where D = Dv up to 256, else chunks of up to 128 columns). The grids of
/// the kernels built on the paged tilings (paged decode, NSA's selected
/// branch) hold the KV heads times this in y.
int64_t pagedValueChunks(int64_t d, int64_t dv);

/// Whether the paged kernels take `spec` (f16/bf16, D = Dv a multiple of 16
/// up to 256, or a latent cache the latent kernel takes); `why` says what
/// is missing.
LogicalResult checkPagedKernelEligible(const PagedAttentionSpec &spec,
                                       std::string *why);

/// Adds the split kernel(s) and the combine kernel of `spec`. A latent
/// cache on chip sm_90a under the kernel option auto or wgmma gets one
/// wgmma split kernel (PagedLatentWgmmaKernel.cpp) where it takes the head
/// dims; otherwise the mma.sync kernels.
LogicalResult buildPagedKernels(OpBuilder &builder, ModuleOp module,
                                const PagedAttentionSpec &spec,
                                const KernelOptions &options, Location loc,
                                EmitErrorFn emitError, Manifests &manifests);

//===----------------------------------------------------------------------===//
// Gated delta rule (GatedDeltaKernel.cpp)
//===----------------------------------------------------------------------===//

/// Whether the gated delta kernels take `spec` (f16/bf16/f32, static head
/// dims that are multiples of 4, a chunk of 16 or kMaxGatedDeltaChunk that
/// fits shared memory); `why` says what is missing.
LogicalResult checkGatedDeltaKernelEligible(const GatedDeltaSpec &spec,
                                            std::string *why);

/// Adds the chunk, state and recurrent kernels of `spec`.
LogicalResult buildGatedDeltaKernels(OpBuilder &builder, ModuleOp module,
                                     const GatedDeltaSpec &spec, Location loc,
                                     EmitErrorFn emitError,
                                     Manifests &manifests);

//===----------------------------------------------------------------------===//
// Sparse selection (SparseKernels.cpp)
//===----------------------------------------------------------------------===//

/// Whether NSA's kernels take `spec` (f16/bf16, head dims that are
/// multiples of 16 up to 256 with D = Dv or Dv up to 128 or a multiple of
/// 128, at most 16 query heads per KV head, a known scale); `why` says what
/// is missing.
LogicalResult checkNsaKernelEligible(const NsaSelectSpec &spec,
                                     std::string *why);

/// Adds NSA's block-selection kernel.
/// (On sm_90a, for head dims in whole 64-column panels, S on wgmma.)
LogicalResult buildNsaSelectKernel(OpBuilder &builder, ModuleOp module,
                                   const NsaSelectSpec &spec,
                                   const KernelOptions &options, Location loc,
                                   EmitErrorFn emitError, Manifests &manifests);

/// Whether NSA's selected branch runs on the nsa.attend kernel (selection
/// blocks of whole 16-key warp tiles); else the host runs it on the paged
/// kernels.
bool nsaAttendAccepts(const NsaSelectSpec &spec);

/// Adds NSA's selected-branch kernel "nsa.attend" (PagedKernel.cpp: the
/// general paged split kernel's phases over a token's selected blocks,
/// with the branches' gated sum) as `name`, its manifest's variant
/// `variant`.
void addNsaAttendKernel(OpBuilder &builder, ModuleOp module,
                        const NsaSelectSpec &spec, StringRef name, Location loc,
                        llvm::json::Object variant, Manifests &manifests);

/// Whether the indexer kernel takes `spec` (f16/bf16, static head counts and
/// dims, multiples of 16, at most 128 heads of at most 256); `why` says what
/// is missing.
LogicalResult checkIndexerKernelEligible(const IndexerSpec &spec,
                                         std::string *why);

/// Adds the lightning indexer's scores kernel.
LogicalResult buildIndexerKernel(OpBuilder &builder, ModuleOp module,
                                 const IndexerSpec &spec, Location loc,
                                 EmitErrorFn emitError, Manifests &manifests);

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELS_H
