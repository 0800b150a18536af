//===- Version.cpp - attn's --version printer -----------------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Lives in AttnIR because every attn tool, the mlir-opt plugin and every
// embedder link it: one definition of what `--version` says about attn, and a
// version bump recompiles this file rather than each tool's main.
//
//===----------------------------------------------------------------------===//

#include "attn/Version.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/raw_ostream.h"

void mlir::attn::registerVersionPrinter() {
  // cl::AddExtraVersionPrinter appends to a list: registering once keeps a
  // second call (say, from a library and from main) from printing twice. A
  // function-local static makes that thread-safe.
  static const bool registered = [] {
    llvm::cl::AddExtraVersionPrinter([](llvm::raw_ostream &os) {
      os << "attn version " ATTN_VERSION_STRING "\n";
    });
    return true;
  }();
  (void)registered;
}
