//===- ShardingInterfaceImpl.h - attn ops on a device grid ------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The shard dialect's ShardingInterface for attn.attention, so that upstream's
// sharding-propagation and shard-partition passes shard attention over a
// device grid (docs/sharding.md).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_SHARDINGINTERFACEIMPL_H
#define ATTN_TRANSFORMS_SHARDINGINTERFACEIMPL_H

namespace mlir {
class DialectRegistry;
namespace attn {

/// Attaches the ShardingInterface external model to attn.attention (when the
/// attn dialect is loaded) and makes the dialects its partition creates
/// (shard, linalg, arith, math, tensor) loadable.
void registerShardingInterfaceExternalModels(DialectRegistry &registry);

} // namespace attn
} // namespace mlir

#endif // ATTN_TRANSFORMS_SHARDINGINTERFACEIMPL_H
