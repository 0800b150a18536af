//===- Manifest.h - kernel manifests as attributes and JSON -----*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// A kernel's manifest (its calling contract: parameters, grid, block,
// shared memory, the spec it was built from; docs/kernel-spec.md) lives in
// the IR as a DictionaryAttr in the module's `attn.kernels` dictionary, and
// on disk as the JSON file next to the kernel's PTX. These convert between
// the two, losslessly for what manifests hold.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_MANIFEST_H
#define ATTN_CONVERSION_MANIFEST_H

#include "mlir/IR/Attributes.h"
#include "llvm/Support/JSON.h"

namespace mlir {
class MLIRContext;
namespace attn {

/// The module attribute that maps each kernel's name to its manifest.
inline constexpr const char *kKernelsAttrName = "attn.kernels";

/// JSON as an attribute: objects become DictionaryAttr, arrays ArrayAttr,
/// strings StringAttr, booleans BoolAttr, integers i64 IntegerAttr, other
/// numbers f64 FloatAttr, null UnitAttr.
Attribute jsonToAttribute(MLIRContext *ctx, const llvm::json::Value &value);

/// The inverse of jsonToAttribute; other attributes (a manifest written by
/// hand) become their MLIR spelling as a string.
llvm::json::Value attributeToJSON(Attribute attr);

} // namespace attn
} // namespace mlir

#endif // ATTN_CONVERSION_MANIFEST_H
