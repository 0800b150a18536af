//===- KernelSpecOpInterface.h - ops that run on GPU kernels ----*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_IR_KERNELSPECOPINTERFACE_H
#define ATTN_IR_KERNELSPECOPINTERFACE_H

#include "attn/IR/KernelSpec.h"

#include "mlir/IR/OpDefinition.h"

#include "attn/IR/KernelSpecOpInterface.h.inc"

#endif // ATTN_IR_KERNELSPECOPINTERFACE_H
