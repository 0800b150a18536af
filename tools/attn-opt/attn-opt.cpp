//===- attn-opt.cpp - attn optimizer driver -------------------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// mlir-opt with the attn dialect and passes, plus every upstream dialect,
// extension and pass a user of attn feeds it (func, arith, math, tensor,
// linalg, tosa, scf, memref, vector, bufferization, gpu, nvgpu, nvvm, llvm,
// ...), and the LLVM IR translations that gpu-module-to-binary needs.
//
//===----------------------------------------------------------------------===//

#include "attn/InitAttn.h"
#include "attn/Version.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  // Before MlirOptMain parses the command line, which handles --version.
  mlir::attn::registerVersionPrinter();
  mlir::registerAllPasses();
  mlir::attn::registerAllAttnPasses();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::attn::registerAllAttnDialects(registry);

  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "attn optimizer driver\n", registry));
}
