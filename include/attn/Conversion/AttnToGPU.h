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
namespace attn {

/// The chips attn's kernels are built and validated for: sm_80 (mma.sync,
/// cp.async), sm_90 and sm_90a (TMA + wgmma). Others fail in the backend
/// (sm_7x lacks cp.async and bf16 mma.sync; sm_100a needs a newer PTX ISA
/// than the +ptx80 the pipeline targets), or are untested (sm_86/89: less
/// shared memory than several kernels take), so every entry point rejects
/// them with this message.
LogicalResult checkSupportedChip(StringRef chip, std::string *why);

/// In a program (attn-lower-to-gpu's `launch`), marks the
/// `builtin.unrealized_conversion_cast` from a buffer to the pointer a
/// kernel takes for its TMA descriptor; the attribute is the descriptor's
/// type. attn-gpu-device-memory replaces each marked cast by
/// `nvgpu.tma.create.descriptor` once buffers are final (bufferization and
/// buffer deallocation reject that op: it declares no memory effects).
inline constexpr llvm::StringLiteral kTensorMapAttrName = "attn.tensor_map";

/// The kernel bodies `--kernel` can ask for.
inline constexpr const char *kKernelChoices = "baseline, mma, wgmma or auto";

/// How the wgmma kernel receives the TMA descriptors (CUtensorMap) of Q, K
/// and V: its manifest's tensormap parameters say which ("passing").
enum class TensorMapPassing {
  /// By value: each descriptor is a 128-byte, 64-byte aligned kernel
  /// parameter (CUDA's `const __grid_constant__ CUtensorMap`), which TMA
  /// reads from parameter space. A launcher encodes it on the host and
  /// passes it with the launch: nothing is copied to the device, and a CUDA
  /// graph captures it with the launch. What bundles use.
  Param,
  /// By address: the kernel takes a pointer to a descriptor in global
  /// memory. The program pipeline's: gpu.launch_func passes a kernel
  /// argument by pointer to its value, so it can pass an address but not a
  /// 128-byte aggregate in the parameter buffer.
  Global,
};

/// "param" or "global".
StringRef stringifyTensorMapPassing(TensorMapPassing passing);

/// How kernels are picked, tiled and called: attn-lower-to-gpu's and
/// attn-compile's options. The kernel choice and block sizes apply to dense
/// attention specs that leave them open (kernel "auto", block sizes 0).
struct KernelOptions {
  std::string chip = "sm_90a";
  /// baseline, mma, wgmma or auto.
  std::string kernel = "auto";
  int64_t blockQ = 0, blockKV = 0;
  /// A dense variant no tensor-core kernel takes is an error, not a remark.
  bool requireTensorCores = false;
  TensorMapPassing tensorMaps = TensorMapPassing::Param;
  /// A dense spec that leaves its tiling open also gets its length
  /// alternatives (kernels preferred at some sizes, chosen at launch;
  /// docs/design-length-choice.md).
  bool lengthAlternatives = true;
  /// Dense variants the sm_90a wgmma kernel takes with its persistent
  /// schedule get it (AttentionSpec::persistent); others keep one block a
  /// tile.
  bool persistent = false;
};

/// The manifests a KernelGenerator holds: the module's `attn.kernels`
/// entries in order, and the kernels the spec being added asked for, new
/// or shared with an earlier spec, in the order its family builds them
/// (which is the order the host launches them in).
struct ManifestTable {
  SmallVector<NamedAttribute> entries;
  SmallVector<StringAttr> requested;
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
  /// `kernels`, if given, receives the manifests of the spec's kernels (new
  /// or shared), in build order.
  LogicalResult
  add(const KernelSpec &spec, Location loc,
      function_ref<InFlightDiagnostic(DiagnosticSeverity)> diagnose,
      SmallVectorImpl<DictionaryAttr> *kernels = nullptr);

  /// Erases the length alternatives (manifests with "prefer") this
  /// generator built that no `gpu.launch_func` references, with their
  /// manifests: host code whose sizes are static launches one kernel of a
  /// variant, and the program need not compile the other.
  void eraseUnlaunchedAlternatives();

  /// Writes `attn.kernels` and marks the module a GPU container module.
  void finish();

private:
  LogicalResult
  addAttention(AttentionSpec spec, Location loc,
               function_ref<InFlightDiagnostic(DiagnosticSeverity)> diagnose,
               KernelSpec &built);
  LogicalResult addAttentionGrad(
      const AttentionGradSpec &spec, Location loc,
      function_ref<InFlightDiagnostic(DiagnosticSeverity)> diagnose,
      KernelSpec &built);
  /// Records `spec` in the manifests from entry `from` on that have none.
  void stampSpecs(size_t from, const KernelSpec &spec);

  ModuleOp module;
  KernelOptions options;
  ManifestTable manifests;
  /// The manifests the module had before this generator (kept as they are).
  size_t preexisting = 0;
};

} // namespace attn
} // namespace mlir

#endif // ATTN_CONVERSION_ATTNTOGPU_H
