//===- KernelGenerator.cpp - kernels from specs ---------------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Dispatches each spec to its kernel family (Kernels.h) and records, in
// every manifest the spec adds, the spec itself: the key of the manifest,
// of the Python lookup and of the bundle's name alike.
//
//===----------------------------------------------------------------------===//

#include "AttentionGradKernels.h"
#include "DenseKernels.h"
#include "Kernels.h"

#include "attn/Conversion/AttnToGPU.h"
#include "attn/Conversion/Manifest.h"
#include "attn/IR/AttnDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;
using namespace mlir::attn;

using DiagnoseFn = function_ref<InFlightDiagnostic(DiagnosticSeverity)>;

KernelGenerator::KernelGenerator(ModuleOp module, const KernelOptions &options)
    : module(module), options(options) {
  // The dialects kernels are built of (attn-lower-to-gpu's dependent
  // dialects) and attn's own (its mask attribute); a caller outside a pass
  // may not have loaded them.
  module.getContext()
      ->loadDialect<AttnDialect, arith::ArithDialect, gpu::GPUDialect,
                    LLVM::LLVMDialect, NVVM::NVVMDialect, math::MathDialect,
                    memref::MemRefDialect, nvgpu::NVGPUDialect, scf::SCFDialect,
                    vector::VectorDialect>();
  if (auto existing = module->getAttrOfType<DictionaryAttr>(kKernelsAttrName))
    llvm::append_range(manifests.entries, existing.getValue());
  preexisting = manifests.entries.size();
}

LogicalResult KernelGenerator::addAttention(AttentionSpec spec, Location loc,
                                            DiagnoseFn diagnose,
                                            KernelSpec &built) {
  // What the spec leaves open, the options decide.
  if (spec.kernel == AttentionKernelKind::Auto)
    spec.kernel = llvm::StringSwitch<AttentionKernelKind>(options.kernel)
                      .Case("baseline", AttentionKernelKind::Baseline)
                      .Case("mma", AttentionKernelKind::Mma)
                      .Case("wgmma", AttentionKernelKind::Wgmma)
                      .Default(AttentionKernelKind::Auto);
  if (!spec.blockQ && !spec.blockKV) {
    spec.blockQ = options.blockQ;
    spec.blockKV = options.blockKV;
  }
  // The persistent schedule where the wgmma kernel takes the variant with
  // it; elsewhere the option leaves the spec as it is.
  if (options.persistent && !spec.persistent) {
    AttentionSpec persistent = spec;
    persistent.persistent = true;
    std::string ignored;
    if (succeeded(detail::resolveAttentionKernel(persistent, options.chip,
                                                 &ignored, &ignored)))
      spec = persistent;
  }
  std::string whyBaseline, why;
  FailureOr<AttentionSpec> resolved =
      detail::resolveAttentionKernel(spec, options.chip, &whyBaseline, &why);
  if (failed(resolved))
    return diagnose(DiagnosticSeverity::Error) << why;
  if (!whyBaseline.empty()) {
    if (options.requireTensorCores)
      return diagnose(DiagnosticSeverity::Error)
             << "no tensor-core kernel takes this variant (" << whyBaseline
             << ") and require-tensor-cores is set";
    diagnose(DiagnosticSeverity::Remark)
        << "runs on the thread-per-row baseline kernel: no tensor-core kernel "
           "takes this variant ("
        << whyBaseline << ")";
  }
  built = *resolved;
  OpBuilder builder(module.getContext());
  auto emitError = [&] { return diagnose(DiagnosticSeverity::Error); };
  if (failed(detail::buildAttentionKernels(builder, module, *resolved,
                                           options.tensorMaps, loc, emitError,
                                           manifests)))
    return failure();
  if (!options.lengthAlternatives)
    return success();
  // Each alternative's manifest records its own spec (add() stamps the
  // default's on the rest).
  for (const AttentionSpec &alternative :
       detail::getLengthAlternatives(*resolved)) {
    const size_t before = manifests.entries.size();
    if (failed(detail::buildAttentionKernels(builder, module, alternative,
                                             options.tensorMaps, loc, emitError,
                                             manifests)))
      return failure();
    stampSpecs(before, alternative);
  }
  return success();
}

void KernelGenerator::stampSpecs(size_t from, const KernelSpec &spec) {
  for (NamedAttribute &entry :
       MutableArrayRef(manifests.entries).drop_front(from)) {
    auto manifest = cast<DictionaryAttr>(entry.getValue());
    if (manifest.contains("spec"))
      continue;
    NamedAttrList fields(manifest);
    fields.set("spec", jsonToAttribute(module.getContext(), toJSON(spec)));
    entry.setValue(fields.getDictionary(module.getContext()));
  }
}

LogicalResult KernelGenerator::addAttentionGrad(const AttentionGradSpec &spec,
                                                Location loc,
                                                DiagnoseFn diagnose,
                                                KernelSpec &built) {
  // The kernel option "wgmma" demands the sm_90a kernels as a spec's
  // "kernel" does; "auto" picks them on sm_90a where they take the variant
  // and "mma" keeps mma.sync (AttentionGradKernels.cpp's selectGradBodies,
  // the one place that decides). "baseline" keeps the backward off the
  // tensor cores; otherwise the variants neither tensor-core backward takes
  // run on the thread-per-row kernels, which require-tensor-cores turns into
  // an error as it does for the forward.
  AttentionGradSpec grad = spec;
  if (grad.forward.kernel == AttentionKernelKind::Auto &&
      options.kernel == "wgmma")
    grad.forward.kernel = AttentionKernelKind::Wgmma;
  built = grad;
  auto fallback = [&](StringRef why) -> LogicalResult {
    if (options.requireTensorCores)
      return diagnose(DiagnosticSeverity::Error)
             << "no tensor-core backward takes this variant (" << why
             << ") and require-tensor-cores is set";
    diagnose(DiagnosticSeverity::Remark)
        << "the backward runs on the thread-per-row kernels: no tensor-core "
           "backward takes this variant ("
        << why << ")";
    return success();
  };
  OpBuilder builder(module.getContext());
  return detail::buildAttentionGradKernels(
      builder, module, grad, options, loc,
      [&] { return diagnose(DiagnosticSeverity::Error); }, fallback, manifests);
}

LogicalResult KernelGenerator::add(const KernelSpec &spec, Location loc,
                                   DiagnoseFn diagnose,
                                   SmallVectorImpl<DictionaryAttr> *kernels) {
  OpBuilder builder(module.getContext());
  auto emitError = [&] { return diagnose(DiagnosticSeverity::Error); };
  // Only dense attention's sm_90a kernel takes FP8 data (its tiling checks
  // the rest): say so here rather than let a family built for 16- and
  // 32-bit floats generate a wrong kernel.
  if (usesFp8(spec) && !std::holds_alternative<AttentionSpec>(spec))
    return emitError() << "no GPU kernel for f8E4M3FN in this kernel family "
                          "(attn.attention's forward alone has an FP8 kernel)";
  const size_t before = manifests.entries.size();
  manifests.requested.clear();
  KernelSpec built = spec;
  LogicalResult result = std::visit(
      [&](const auto &s) -> LogicalResult {
        using T = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<T, AttentionSpec>)
          return addAttention(s, loc, diagnose, built);
        else if constexpr (std::is_same_v<T, AttentionGradSpec>)
          return addAttentionGrad(s, loc, diagnose, built);
        else if constexpr (std::is_same_v<T, PagedAttentionSpec>)
          return detail::buildPagedKernels(builder, module, s, options, loc,
                                           emitError, manifests);
        else if constexpr (std::is_same_v<T, GatedDeltaSpec>)
          return detail::buildGatedDeltaKernels(builder, module, s, loc,
                                                emitError, manifests);
        else if constexpr (std::is_same_v<T, NsaSelectSpec>)
          return detail::buildNsaSelectKernel(builder, module, s, options, loc,
                                              emitError, manifests);
        else
          return detail::buildIndexerKernel(builder, module, s, loc, emitError,
                                            manifests);
      },
      spec);
  if (failed(result))
    return failure();
  // The spec each new kernel was built from; a dense spec as resolved (its
  // kernel kind and block sizes), which is what the manifest's "variant"
  // and the kernel name were made from.
  stampSpecs(before, built);
  if (kernels)
    for (StringAttr name : manifests.requested)
      for (NamedAttribute entry : manifests.entries)
        if (entry.getName() == name) {
          kernels->push_back(cast<DictionaryAttr>(entry.getValue()));
          break;
        }
  return success();
}

void KernelGenerator::eraseUnlaunchedAlternatives() {
  SmallVector<NamedAttribute> kept(
      ArrayRef(manifests.entries).take_front(preexisting));
  for (NamedAttribute entry :
       ArrayRef(manifests.entries).drop_front(preexisting)) {
    auto kernelModule = module.lookupSymbol<gpu::GPUModuleOp>(entry.getName());
    if (!cast<DictionaryAttr>(entry.getValue()).contains("prefer") ||
        !kernelModule ||
        !SymbolTable::symbolKnownUseEmpty(kernelModule, module)) {
      kept.push_back(entry);
      continue;
    }
    kernelModule->erase();
  }
  manifests.entries = std::move(kept);
}

void KernelGenerator::finish() {
  Builder b(module.getContext());
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                  b.getUnitAttr());
  module->setAttr(kKernelsAttrName, b.getDictionaryAttr(manifests.entries));
}
