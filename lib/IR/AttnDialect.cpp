//===- AttnDialect.cpp - attn dialect and attributes ----------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Registers the attn dialect and implements its attributes.
//
//===----------------------------------------------------------------------===//

#include "attn/IR/AttnDialect.h"
#include "attn/IR/AttnOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::attn;

#include "attn/IR/AttnDialect.cpp.inc"
#include "attn/IR/AttnEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "attn/IR/AttnAttrs.cpp.inc"

void AttnDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "attn/IR/AttnOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "attn/IR/AttnAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// MaskAttr
//===----------------------------------------------------------------------===//

/// Parses `<none>`, `<causal>` or `<window, left = L, right = R>`.
Attribute MaskAttr::parse(AsmParser &parser, Type) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseLess() || parser.parseKeyword(&keyword))
    return {};
  std::optional<MaskKind> kind = symbolizeMaskKind(keyword);
  if (!kind) {
    parser.emitError(loc, "unknown mask kind '")
        << keyword << "'; expected 'none', 'causal' or 'window'";
    return {};
  }
  int64_t left = 0, right = 0;
  if (*kind == MaskKind::Window) {
    if (parser.parseComma() || parser.parseKeyword("left") ||
        parser.parseEqual() || parser.parseInteger(left) ||
        parser.parseComma() || parser.parseKeyword("right") ||
        parser.parseEqual() || parser.parseInteger(right))
      return {};
  }
  if (parser.parseGreater())
    return {};
  return MaskAttr::getChecked([&] { return parser.emitError(loc); },
                              parser.getContext(), *kind, left, right);
}

void MaskAttr::print(AsmPrinter &printer) const {
  printer << "<" << stringifyMaskKind(getKind());
  if (isWindow())
    printer << ", left = " << getLeft() << ", right = " << getRight();
  printer << ">";
}

LogicalResult MaskAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               MaskKind kind, int64_t left, int64_t right) {
  if (kind == MaskKind::Window) {
    if (left < 0 || right < 0)
      return emitError() << "window extents must be non-negative, got left = "
                         << left << ", right = " << right;
    return success();
  }
  if (left != 0 || right != 0)
    return emitError() << "'" << stringifyMaskKind(kind)
                       << "' mask takes no window extents";
  return success();
}

std::pair<int64_t, int64_t> MaskAttr::getAdmittedKeys(int64_t i, int64_t sq,
                                                      int64_t sk) const {
  // Bottom-right alignment: query row i sits at key position p.
  int64_t p = i + sk - sq;
  switch (getKind()) {
  case MaskKind::None:
    return {0, sk};
  case MaskKind::Causal:
    return {0, std::clamp<int64_t>(p + 1, 0, sk)};
  case MaskKind::Window: {
    // Written to avoid overflow for extents up to INT64_MAX.
    int64_t lo = (p <= 0 || getLeft() >= p) ? 0 : p - getLeft();
    int64_t hi =
        getRight() >= sk - p ? sk : std::max<int64_t>(p + getRight() + 1, 0);
    return {lo, hi};
  }
  }
  llvm_unreachable("unknown mask kind");
}
