//===- AttnToGPU.h - attn to GPU kernels ------------------------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTOGPU_H
#define ATTN_CONVERSION_ATTNTOGPU_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Support/LLVM.h"

#include <string>

namespace mlir {
class ModuleOp;
class OpBuilder;
namespace attn {
class PagedAttentionOp;
class GatedDeltaRuleOp;
class NsaOp;
class LightningIndexerOp;
class SparseAttentionOp;

/// The chips attn's kernels are built and validated for: sm_80 (mma.sync,
/// cp.async), sm_90 and sm_90a (TMA + wgmma). Others fail in the backend
/// (sm_7x lacks cp.async and bf16 mma.sync; sm_100a needs a newer PTX ISA
/// than the +ptx80 the pipeline targets), or are untested (sm_86/89: less
/// shared memory than several kernels take), so every entry point rejects
/// them with this message.
LogicalResult checkSupportedChip(StringRef chip, std::string *why);

/// The kernel bodies `--kernel` can ask for.
inline constexpr const char *kKernelChoices = "baseline, mma, wgmma or auto";

/// Whether attn.paged_attention `op` has a GPU kernel (f16/bf16, D = Dv a
/// multiple of 16 up to 256, static page size, known scale); `why` says
/// what is missing.
LogicalResult checkPagedKernelEligible(PagedAttentionOp op, std::string *why);

/// The name of the split kernel of a paged attention variant.
std::string getPagedKernelName(PagedAttentionOp op);

/// Adds the paged decode kernels of `op` (see PagedKernel.cpp): the split
/// kernel and the combine kernel, each in its own gpu.module of `module`,
/// and their manifests to `manifests`.
LogicalResult buildPagedKernels(OpBuilder &builder, ModuleOp module,
                                PagedAttentionOp op,
                                SmallVectorImpl<NamedAttribute> &manifests);

/// Whether attn.gated_delta_rule `op` has GPU kernels (f16/bf16/f32, static
/// head dims, a chunk that fits shared memory); `why` says what is missing.
LogicalResult checkGatedDeltaKernelEligible(GatedDeltaRuleOp op,
                                            std::string *why);

/// Adds the chunked gated delta kernels of `op` (see GatedDeltaKernel.cpp):
/// the chunk kernel and the state kernel, each in its own gpu.module of
/// `module`, and their manifests to `manifests`.
LogicalResult buildGatedDeltaKernels(OpBuilder &builder, ModuleOp module,
                                     GatedDeltaRuleOp op,
                                     SmallVectorImpl<NamedAttribute> &manifests);

/// Whether attn.nsa `op` has GPU kernels (f16/bf16, D = Dv a multiple of 16
/// up to 256, at most 16 query heads per KV head, a known scale); `why` says
/// what is missing.
LogicalResult checkNsaKernelEligible(NsaOp op, std::string *why);

/// Adds attn.nsa's block-selection kernel (see SparseKernels.cpp) in its own
/// gpu.module of `module`, and its manifest to `manifests`. The branches'
/// attention runs on the paged and attention kernels of matching variants.
LogicalResult buildNsaKernels(OpBuilder &builder, ModuleOp module, NsaOp op,
                              SmallVectorImpl<NamedAttribute> &manifests);

/// Adds the paged kernels attn.sparse_attention `op` runs on (see
/// SparseKernels.cpp: the host compacts the index lists into page tables of
/// block_size pages) and their manifests.
LogicalResult
buildSparseAttentionKernels(OpBuilder &builder, ModuleOp module,
                            SparseAttentionOp op,
                            SmallVectorImpl<NamedAttribute> &manifests);

/// Whether attn.lightning_indexer `op` has a GPU kernel (f16/bf16, static
/// head counts and dims, multiples of 16); `why` says what is missing.
LogicalResult checkIndexerKernelEligible(LightningIndexerOp op,
                                         std::string *why);

/// Adds attn.lightning_indexer's scores kernel (see SparseKernels.cpp) in its
/// own gpu.module of `module`, and its manifest to `manifests`.
LogicalResult buildIndexerKernels(OpBuilder &builder, ModuleOp module,
                                  LightningIndexerOp op,
                                  SmallVectorImpl<NamedAttribute> &manifests);

} // namespace attn
} // namespace mlir

#endif // ATTN_CONVERSION_ATTNTOGPU_H
