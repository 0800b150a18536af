//===- ShardToMPI.h - partitioned programs on MPI ---------------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_SHARDTOMPI_H
#define ATTN_CONVERSION_SHARDTOMPI_H

namespace mlir {
class DialectRegistry;
namespace attn {

/// Gives the mpi ops that upstream leaves without a memory-effect interface
/// (init, finalize, barrier, allreduce) one, so that bufferization's
/// ownership-based deallocation, which rejects ops of unknown effects, runs
/// over the code convert-shard-to-mpi emits (docs/known-upstream-issues.md).
void registerMPIMemoryEffectModels(DialectRegistry &registry);

} // namespace attn
} // namespace mlir

#endif // ATTN_CONVERSION_SHARDTOMPI_H
