//===- Program.h - GPU programs as shared libraries -------------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The last steps from a module to a program a C or Python caller loads:
// what its entry points take (read off the module before attn-to-llvm),
// the C header and JSON description of them, the host object code of the
// lowered module, and the link against libattn_runtime. attn-compile
// --shared is these steps in order; an embedding compiler can call them.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_PROGRAM_PROGRAM_H
#define ATTN_PROGRAM_PROGRAM_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/JSON.h"

#include <string>

namespace mlir {
namespace attn {

/// A public function of a program: `_mlir_ciface_<name>` takes a pointer to
/// its result descriptors (one memref descriptor, or a struct of them for
/// several results) first, then a pointer to a descriptor per tensor
/// argument and scalars by value.
struct ProgramFunction {
  std::string name;
  SmallVector<Type> arguments;
  SmallVector<Type> results;
};

/// The entry points of `module` (before attn-to-llvm): its public functions
/// with a body. Arguments must be ranked tensors or integer/float scalars,
/// results ranked tensors; anything else is an error at the function.
FailureOr<SmallVector<ProgramFunction>> getProgramFunctions(ModuleOp module);

/// A C header declaring the entry points with typed descriptor structs.
std::string emitProgramHeader(ArrayRef<ProgramFunction> functions,
                              StringRef libraryName);

/// The entry points as JSON (what attn.program reads): per function its
/// arguments and results with kind, dtype and shape (-1 for dynamic dims).
llvm::json::Value describeProgram(ArrayRef<ProgramFunction> functions);

/// Compiles an LLVM-dialect module (attn-to-llvm's output) to a relocatable
/// object file for this host at `optLevel`.
LogicalResult compileProgramObject(ModuleOp module, unsigned optLevel,
                                   SmallVectorImpl<char> &object,
                                   std::string *error);

/// Links `objectPath` into the shared library `output` against
/// libattn_runtime.so in `runtimeDir`, with the system C compiler driver
/// ($CC, else cc). The library finds the runtime next to itself, in
/// ../lib from itself, or in `runtimeDir`.
LogicalResult linkProgram(StringRef objectPath, StringRef output,
                          StringRef runtimeDir, std::string *error);

} // namespace attn
} // namespace mlir

#endif // ATTN_PROGRAM_PROGRAM_H
