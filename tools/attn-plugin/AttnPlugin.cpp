//===- AttnPlugin.cpp - attn as an mlir-opt plugin ------------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Exports both MLIR plugin entry points. Stock mlir-opt needs the dialect
// entry point to parse attn ops (`--load-dialect-plugin`); the pass entry
// point serves `--load-pass-plugin`. Both register the passes, so one
// `--load-dialect-plugin` is enough for `--pass-pipeline` to find them.
//
//===----------------------------------------------------------------------===//

#include "attn/InitAttn.h"

#include "mlir/Tools/Plugins/DialectPlugin.h"
#include "mlir/Tools/Plugins/PassPlugin.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/Compiler.h"

using namespace mlir;

extern "C" LLVM_ATTRIBUTE_WEAK DialectPluginLibraryInfo
mlirGetDialectPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "Attn", LLVM_VERSION_STRING,
          [](DialectRegistry *registry) {
            attn::registerAllAttnDialects(*registry);
            attn::registerAllAttnPasses();
          }};
}

extern "C" LLVM_ATTRIBUTE_WEAK PassPluginLibraryInfo mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "Attn", LLVM_VERSION_STRING,
          []() { attn::registerAllAttnPasses(); }};
}
