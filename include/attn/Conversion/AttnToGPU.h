//===- AttnToGPU.h - attn to GPU kernels ------------------------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTOGPU_H
#define ATTN_CONVERSION_ATTNTOGPU_H

#include "attn/IR/KernelSpec.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Support/LLVM.h"

#include <string>

namespace mlir {
class ModuleOp;
class OpBuilder;
namespace attn {
class AttentionOp;
class PagedAttentionOp;
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

/// How kernels are picked and tiled: attn-lower-to-gpu's and attn-compile's
/// options. They apply to dense attention specs that leave the choice open
/// (kernel "auto", block sizes 0).
struct KernelOptions {
  std::string chip = "sm_90a";
  /// baseline, mma, wgmma or auto.
  std::string kernel = "auto";
  int64_t blockQ = 0, blockKV = 0;
  /// A dense variant no tensor-core kernel takes is an error, not a remark.
  bool requireTensorCores = false;
};

/// Generates kernels from specs into a module: each kernel in a gpu.module
/// named like it (one bundle per kernel; a kernel two specs share is built
/// once), its manifest in the module's `attn.kernels` dictionary
/// (attn/Conversion/Manifest.h). attn-lower-to-gpu feeds it the specs of the
/// module's ops (KernelSpecOpInterface), `attn-compile --spec` specs read
/// from JSON; an embedding compiler can do either.
class KernelGenerator {
public:
  /// Keeps the manifests `module` already has. The options are the
  /// caller's to check (checkSupportedChip, kKernelChoices).
  KernelGenerator(ModuleOp module, const KernelOptions &options);

  /// Adds the kernels of `spec`. Errors and remarks are made by
  /// `diagnose` (located at the op that asked, or at the spec's file).
  LogicalResult
  add(const KernelSpec &spec, Location loc,
      function_ref<InFlightDiagnostic(DiagnosticSeverity)> diagnose);

  /// Writes `attn.kernels` and marks the module a GPU container module.
  void finish();

private:
  LogicalResult
  addAttention(AttentionSpec spec, Location loc,
               function_ref<InFlightDiagnostic(DiagnosticSeverity)> diagnose,
               KernelSpec &built);

  ModuleOp module;
  KernelOptions options;
  SmallVector<NamedAttribute> manifests;
};

/// A generated kernel and its calling contract (JSON).
struct AttentionKernel {
  gpu::GPUFuncOp func;
  std::string manifest;
};

/// Which kernel body to generate.
enum class KernelKind {
  Baseline, ///< a thread per query row, no tensor cores (every variant)
  Mma,      ///< mma.sync tensor cores (f16/bf16, head dims % 16 == 0, <= 256)
  Wgmma,    ///< sm_90a: TMA + wgmma (f16/bf16, D = Dv in {64, 128, 256})
};

/// The tiling of the sm_90a kernel: two warpgroups of 64 query rows, K/V
/// tiles of `keys` rows in two TMA stages.
struct WgmmaTiling {
  int64_t keys = 128;
  /// Stages of each of the K and V rings.
  int64_t stages = 2;
  int64_t rows() const { return 128; }
  /// Two consumer warpgroups and one producer warpgroup.
  int64_t threads() const { return 384; }
  int64_t sharedMemoryBytes(int64_t d, int64_t dv) const;
};

/// How the tensor-core kernel tiles the problem: 4 warps, each owning
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

/// The kernel name of `op`'s variant: equal for ops that can share a kernel.
struct KernelTileSizes;
std::string getAttentionKernelName(AttentionOp op, KernelKind kind,
                                   const KernelTileSizes &sizes);

/// Keys per pipeline step of the tensor-core kernel for head dims d / dv.
/// The tiling of the tensor-core kernel for `op`, with the query rows per
/// block and keys per step overridden where `blockQ`/`blockKV` are non-zero;
/// failure (with the reason in `why`) where the kernel cannot run the op.
FailureOr<MmaTiling> getMmaTiling(AttentionOp op, int64_t blockQ,
                                  int64_t blockKV, std::string *why);

/// Whether the tensor-core kernel supports `op`'s variant.
bool isMmaKernelEligible(AttentionOp op);

/// The tiling of the sm_90a kernel for `op`; failure (with the reason in
/// `why`) where it cannot run the op.
FailureOr<WgmmaTiling> getWgmmaTiling(AttentionOp op, std::string *why);

/// Adds (or finds) the kernel for `op`'s variant in `module`.
/// Query rows per block and keys per step of the generated kernels; 0 picks
/// the default for the variant (tensor-core kernel only).
struct KernelTileSizes {
  int64_t blockQ = 0;
  int64_t blockKV = 0;
};

FailureOr<AttentionKernel> buildAttentionKernel(OpBuilder &builder,
                                                gpu::GPUModuleOp module,
                                                AttentionOp op,
                                                KernelKind kind,
                                                KernelTileSizes sizes = {});

/// The kernel arguments the tensor-core body reads.
struct MmaKernelArgs {
  Value q, k, v, bias, sinks, o, lse;
  Value batch, hq, hkv, sq, sk;
  SmallVector<bool, 4> biasBroadcast;
};

/// Emits the tensor-core kernel body into `func` (see MmaKernel.cpp).
void buildMmaKernelBody(OpBuilder &builder, gpu::GPUFuncOp func,
                        AttentionOp op, const MmaKernelArgs &args,
                        const MmaTiling &tiling);

/// Emits the sm_90a kernel body into `func` (see WgmmaKernel.cpp);
/// `tmaDescriptors` are the Q, K and V tensor maps.
void buildWgmmaKernelBody(OpBuilder &builder, gpu::GPUFuncOp func,
                          AttentionOp op, const MmaKernelArgs &args,
                          ValueRange tmaDescriptors, const WgmmaTiling &tiling);


} // namespace attn
} // namespace mlir

#endif // ATTN_CONVERSION_ATTNTOGPU_H
