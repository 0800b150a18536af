//===- InlinePtx.h - Instructions the NVVM dialect cannot express -*- C++
//-*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The one place where attn's kernels write PTX by hand: instructions that
// speed needs and that the NVVM dialect of LLVM 22 has no op for, each as an
// llvm.inline_asm and each naming the upstream op it stands in for. Replace
// a wrapper by the op once upstream has it.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_INLINEPTX_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_INLINEPTX_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/Value.h"

namespace mlir {
namespace attn {
namespace detail {

/// acc + A·B with A in registers: wgmma.mma_async m64nNk16 (f16, bf16) or
/// m64nNk32 (e4m3: `elt` f8E4M3FN) with f32 accumulators (`acc`, an LLVM
/// struct of N / 2 f32, the layout of nvvm.wgmma.mma_async's), A a 64 x k
/// tile in four 32-bit registers a thread (mma.sync's A fragment: rows g
/// and g + 8 of the warp's 16; 16-bit: columns 2t, 2t + 1 and 2t + 8,
/// 2t + 9; e4m3: bytes 4t .. 4t + 3 and 4t + 16 .. 4t + 19), B by
/// shared-memory matrix descriptor, MN-major when `transB` (16-bit types
/// only: FP8 wgmma takes B K-major). Issued without a fence or a commit:
/// the caller brackets a chain with nvvm.wgmma.fence.aligned and
/// nvvm.wgmma.commit.group.sync.aligned as for the dialect's op. Without
/// `accumulate` (wgmma's scale-d false) D = A·B and `acc` is not read: a
/// poison struct will do, and gives ptxas no zero registers to fold into
/// one (which left it too few accumulator registers and serialized the
/// chain, C7511).
///
/// Missing upstream: nvvm.wgmma.mma_async takes A only by descriptor (a
/// register-A form, `wgmma.mma_async ... d, {a0, a1, a2, a3}, b-desc`, is in
/// PTX ISA 8.0 but not in the op).
Value createWgmmaRegisterA(OpBuilder &b, Location loc, Value acc, ValueRange a,
                           Value descB, int64_t n, Type elt, bool transB,
                           bool accumulate = true);

/// Adds `bytes` bytes of f32 at shared address `src` (i32, 16-byte aligned)
/// into global memory at `dst` (an i64 generic address of global memory,
/// 16-byte aligned), element by element, as one asynchronous bulk
/// operation of the issuing thread's bulk group:
/// cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32. The caller
/// makes the source visible to the async proxy first (fence.proxy.async)
/// and commits and waits for the group (nvvm.cp.async.bulk.commit.group,
/// nvvm.cp.async.bulk.wait_group) before the source is written again.
///
/// Missing upstream: the NVVM dialect has the tensor form
/// (nvvm.cp.async.bulk.tensor.reduce, which needs a tensor map) and the
/// non-reducing bulk copy (nvvm.cp.async.bulk.global.shared.cta), but no
/// op for the non-tensor bulk reduction (PTX ISA 8.0).
void createBulkReduceAddF32(OpBuilder &b, Location loc, Value dst, Value src,
                            int64_t bytes);

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_INLINEPTX_H
