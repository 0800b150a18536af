//===- TensorMapParams.cpp - TMA descriptors as by-value kernel params ----===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// attn-gpu-tensor-map-params: the kernel parameters that manifests pass by
// value ("passing": "param") become CUDA's `const __grid_constant__
// CUtensorMap`, a 128-byte, 64-byte aligned byval parameter. A launcher then
// hands the descriptor over with the launch itself: no device buffer, no
// host-to-device copy per new tensor address, and a CUDA graph captures it
// with the kernel node.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/Manifest.h"
#include "attn/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNGPUTENSORMAPPARAMS
#include "attn/Conversion/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;

namespace {

/// sizeof(CUtensorMap) and its alignment (cuda.h: CU_TENSOR_MAP_NUM_QWORDS
/// 16 qwords, aligned to 64 bytes).
constexpr int64_t kTensorMapBytes = 128;
constexpr int64_t kTensorMapAlign = 64;

/// The positions, among `func`'s LLVM arguments, of the parameters of
/// `params` that are tensor maps passed by value; failure (with an error at
/// `func`) when the parameters do not add up to its arguments.
FailureOr<SmallVector<unsigned>> getByValueTensorMaps(LLVM::LLVMFuncOp func,
                                                      ArrayAttr params) {
  SmallVector<unsigned> positions;
  unsigned position = 0;
  for (Attribute attr : params) {
    auto param = dyn_cast<DictionaryAttr>(attr);
    auto kind = param ? param.getAs<StringAttr>("kind") : StringAttr();
    if (!kind)
      return func.emitError("malformed manifest parameter ") << attr;
    if (kind.getValue() == "memref") {
      auto fields = param.getAs<ArrayAttr>("expands_to");
      if (!fields)
        return func.emitError("memref parameter without expands_to: ") << param;
      position += fields.size();
      continue;
    }
    auto passing = param.getAs<StringAttr>("passing");
    if (kind.getValue() == "tensormap" && passing &&
        passing.getValue() == "param")
      positions.push_back(position);
    ++position;
  }
  if (position != func.getNumArguments())
    return func.emitError("the manifest's parameters make ")
           << position << " kernel arguments, the kernel has "
           << func.getNumArguments();
  return positions;
}

struct AttnGPUTensorMapParams
    : attn::impl::AttnGPUTensorMapParamsBase<AttnGPUTensorMapParams> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto manifests =
        module->getAttrOfType<DictionaryAttr>(attn::kKernelsAttrName);
    if (!manifests)
      return;
    MLIRContext *ctx = module.getContext();
    Builder b(ctx);
    auto byvalType =
        LLVM::LLVMArrayType::get(IntegerType::get(ctx, 8), kTensorMapBytes);
    for (NamedAttribute entry : manifests) {
      auto manifest = dyn_cast<DictionaryAttr>(entry.getValue());
      auto params =
          manifest ? manifest.getAs<ArrayAttr>("params") : ArrayAttr();
      if (!params)
        continue;
      auto gpuModule = module.lookupSymbol<gpu::GPUModuleOp>(entry.getName());
      auto func =
          gpuModule ? gpuModule.lookupSymbol<LLVM::LLVMFuncOp>(entry.getName())
                    : LLVM::LLVMFuncOp();
      // Kernels still in the GPU dialect (or compiled already) have
      // nothing to mark yet.
      if (!func || func.isExternal())
        continue;
      FailureOr<SmallVector<unsigned>> positions =
          getByValueTensorMaps(func, params);
      if (failed(positions))
        return signalPassFailure();
      for (unsigned i : *positions) {
        if (!isa<LLVM::LLVMPointerType>(func.getArgument(i).getType())) {
          func.emitError("tensor map argument ")
              << i << " is " << func.getArgument(i).getType()
              << ", not a pointer";
          return signalPassFailure();
        }
        func.setArgAttr(i, LLVM::LLVMDialect::getByValAttrName(),
                        TypeAttr::get(byvalType));
        func.setArgAttr(i, LLVM::LLVMDialect::getAlignAttrName(),
                        b.getI64IntegerAttr(kTensorMapAlign));
        func.setArgAttr(i, NVVM::NVVMDialect::getGridConstantAttrName(),
                        b.getUnitAttr());
      }
    }
  }
};

} // namespace
