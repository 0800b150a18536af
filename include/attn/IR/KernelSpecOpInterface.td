//===- KernelSpecOpInterface.td - ops that run on GPU kernels -*- tablegen -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_IR_KERNELSPECOPINTERFACE_TD
#define ATTN_IR_KERNELSPECOPINTERFACE_TD

include "mlir/IR/OpBase.td"

def Attn_KernelSpecOpInterface : OpInterface<"KernelSpecOpInterface"> {
  let description = [{
    An op that runs on attn's GPU kernels states what they compute as kernel
    specs (attn/IR/KernelSpec.h, docs/kernel-spec.md). attn-lower-to-gpu
    generates kernels from those specs only, in one walk over the ops that
    implement this interface.
  }];
  let cppNamespace = "::mlir::attn";
  let methods = [
    InterfaceMethod<[{
        Appends the specs of the kernels this op runs on to `specs`. Fails,
        with an error at the op, where the op cannot be described by a spec
        (a dynamic head dim, an unknown scale, an element type no kernel
        takes). Whether a kernel can run the spec is the lowering's check.
      }],
      "::mlir::LogicalResult", "getKernelSpecs",
      (ins "::llvm::SmallVectorImpl<::mlir::attn::KernelSpec> &":$specs)>,
  ];
}

#endif // ATTN_IR_KERNELSPECOPINTERFACE_TD
