//===- embed.cpp - using attn from another compiler -----------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Builds a module with one grouped-query causal attention, runs attn's
// attn-to-ptx pipeline on it through the C++ API, and prints the kernels it
// produced: the variant's, and its length alternatives (kernels of other
// tilings that a launcher prefers at some sizes; docs/design-length-choice.md).
// Exits non-zero if anything fails.
//
//===----------------------------------------------------------------------===//

#include "attn/InitAttn.h"
#include "attn/Pipelines/Pipelines.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "llvm/Support/raw_ostream.h"

static const char *kModule = R"mlir(
func.func @layer(%q: tensor<1x32x1024x128xbf16>, %k: tensor<1x8x1024x128xbf16>,
                 %v: tensor<1x8x1024x128xbf16>) -> tensor<1x32x1024x128xbf16> {
  %o = attn.attention %q, %k, %v mask = <causal>
      : (tensor<1x32x1024x128xbf16>, tensor<1x8x1024x128xbf16>, tensor<1x8x1024x128xbf16>)
      -> tensor<1x32x1024x128xbf16>
  return %o : tensor<1x32x1024x128xbf16>
}
)mlir";

int main() {
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::attn::registerAllAttnDialects(registry);
  mlir::MLIRContext context(registry);

  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(kModule, &context);
  if (!module)
    return 1;
  mlir::PassManager pm(&context);
  mlir::attn::AttnToPTXOptions options;
  options.chip = "sm_90a";
  mlir::attn::buildAttnToPTXPipeline(pm, options);
  if (mlir::failed(pm.run(*module)))
    return 1;

  unsigned kernels = 0;
  for (auto binary : module->getOps<mlir::gpu::BinaryOp>()) {
    auto object = llvm::cast<mlir::gpu::ObjectAttr>(binary.getObjects()[0]);
    llvm::StringRef ptx = object.getObject().getValue();
    if (!ptx.contains(".entry " + binary.getName().str()))
      return 1;
    llvm::outs() << "kernel " << binary.getName() << ": " << ptx.size()
                 << " bytes of PTX for sm_90a\n";
    ++kernels;
  }
  return kernels >= 1 ? 0 : 1;
}
