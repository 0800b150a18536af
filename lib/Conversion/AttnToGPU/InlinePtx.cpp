//===- InlinePtx.cpp - Instructions the NVVM dialect cannot express -------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "InlinePtx.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinTypes.h"

#include "llvm/ADT/Twine.h"
#include "llvm/Support/raw_ostream.h"

#include <cassert>
#include <string>

using namespace mlir;

Value mlir::attn::detail::createWgmmaRegisterA(OpBuilder &b, Location loc,
                                               Value acc, ValueRange a,
                                               Value descB, int64_t n, Type elt,
                                               bool transB, bool accumulate) {
  auto accType = cast<LLVM::LLVMStructType>(acc.getType());
  int64_t count = accType.getBody().size();
  assert(count == n / 2 && a.size() == 4 && "m64nNk16: N / 2 accumulators");
  bool fp8 = isa<Float8E4M3FNType>(elt);
  assert((!fp8 || !transB) && "FP8 wgmma takes B K-major only");
  const char *type = fp8 ? "e4m3" : (elt.isBF16() ? "bf16" : "f16");
  int64_t k = fp8 ? 32 : 16;
  // Operands: the accumulators as outputs $0 .. $count-1, tied to the
  // inputs $count .. 2count-1 (read and written: "+f" is not accepted for
  // llvm.inline_asm), then A's four registers and B's descriptor. The
  // scale-d predicate: D = A·B + D, or D = A·B without `accumulate`.
  std::string text, constraints;
  llvm::raw_string_ostream os(text), cs(constraints);
  os << "{\n.reg .pred p;\nsetp.ne.b32 p, " << (accumulate ? 1 : 0) << ", 0;\n"
     << "wgmma.mma_async.sync.aligned.m64n" << n << "k" << k << ".f32." << type
     << "." << type << " {";
  for (int64_t i = 0; i < count; ++i)
    os << (i ? ", $" : "$") << i;
  int64_t aFirst = 2 * count;
  os << "}, {$" << aFirst << ", $" << aFirst + 1 << ", $" << aFirst + 2 << ", $"
     << aFirst + 3 << "}, $" << aFirst + 4 << ", p, 1, 1";
  // The transpose immediate exists for 16-bit A and B only.
  if (!fp8)
    os << ", " << (transB ? 1 : 0);
  os << ";\n}\n";
  for (int64_t i = 0; i < count; ++i)
    cs << (i ? "," : "") << "=f";
  for (int64_t i = 0; i < count; ++i)
    cs << "," << i;
  cs << ",r,r,r,r,l";

  SmallVector<Value> operands;
  for (int64_t i = 0; i < count; ++i)
    operands.push_back(LLVM::ExtractValueOp::create(b, loc, acc, i));
  operands.append(a.begin(), a.end());
  operands.push_back(descB);
  return LLVM::InlineAsmOp::create(
             b, loc, accType, operands, text, constraints,
             /*has_side_effects=*/true, /*is_align_stack=*/false,
             LLVM::tailcallkind::TailCallKind::None,
             LLVM::AsmDialectAttr::get(b.getContext(),
                                       LLVM::AsmDialect::AD_ATT),
             /*operand_attrs=*/ArrayAttr())
      .getRes();
}

void mlir::attn::detail::createBulkReduceAddF32(OpBuilder &b, Location loc,
                                                Value dst, Value src,
                                                int64_t bytes) {
  assert(bytes % 16 == 0 && "bulk operations move multiples of 16 bytes");
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "{\n.reg .u64 g;\ncvta.to.global.u64 g, $0;\n"
     << "cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [g], [$1], "
     << bytes << ";\n}\n";
  LLVM::InlineAsmOp::create(
      b, loc, /*res=*/Type(), ValueRange{dst, src}, text, "l,r",
      /*has_side_effects=*/true, /*is_align_stack=*/false,
      LLVM::tailcallkind::TailCallKind::None,
      LLVM::AsmDialectAttr::get(b.getContext(), LLVM::AsmDialect::AD_ATT),
      /*operand_attrs=*/ArrayAttr());
}
