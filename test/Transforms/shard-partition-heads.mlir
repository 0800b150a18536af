// RUN: attn-opt %s --split-input-file -verify-diagnostics \
// RUN:   --pass-pipeline='builtin.module(func.func(sharding-propagation,shard-partition))' | FileCheck %s
// attn.paged_attention and attn.gated_delta_rule split over batch and heads
// (lib/Transforms/ShardingInterfaceImpl.cpp, HeadShardingModel): each
// device runs the op on its shards, with no communication; a head split
// keeps whole groups of the heads that share a key (or key/value) head.
// Anything else stays whole, with a warning.

shard.grid @grid(shape = 4)

// Gated DeltaNet (16 key heads, 32 value heads) over 4 devices: 4 key
// heads with their 8 value heads, gates, betas and states per device; no
// communication.
// CHECK-LABEL: func.func @gated_heads
// CHECK-SAME: (%[[Q:.+]]: tensor<2x64x4x128xbf16>, %[[K:.+]]: tensor<2x64x4x128xbf16>, %[[V:.+]]: tensor<2x64x8x128xbf16>, %[[G:.+]]: tensor<2x64x8xf32>, %[[BETA:.+]]: tensor<2x64x8xf32>, %[[S0:.+]]: tensor<2x8x128x128xf32>) -> (tensor<2x64x8x128xbf16>, tensor<2x8x128x128xf32>)
// CHECK-NOT: shard.
// CHECK: %[[O:.+]], %[[S:.+]] = attn.gated_delta_rule %[[Q]], %[[K]], %[[V]], %[[G]], %[[BETA]] initial_state(%[[S0]]) qk_l2norm :
// CHECK-NOT: shard.
// CHECK: return %[[O]], %[[S]]
func.func @gated_heads(%q: tensor<2x64x16x128xbf16>, %k: tensor<2x64x16x128xbf16>, %v: tensor<2x64x32x128xbf16>, %g: tensor<2x64x32xf32>, %beta: tensor<2x64x32xf32>, %s0: tensor<2x32x128x128xf32>) -> (tensor<2x64x32x128xbf16>, tensor<2x32x128x128xf32>) {
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %v1 = shard.shard %v to %s annotate_for_users : tensor<2x64x32x128xbf16>
  %o, %st = attn.gated_delta_rule %q, %k, %v1, %g, %beta initial_state(%s0) qk_l2norm : (tensor<2x64x16x128xbf16>, tensor<2x64x16x128xbf16>, tensor<2x64x32x128xbf16>, tensor<2x64x32xf32>, tensor<2x64x32xf32>, tensor<2x32x128x128xf32>) -> (tensor<2x64x32x128xbf16>, tensor<2x32x128x128xf32>)
  return %o, %st : tensor<2x64x32x128xbf16>, tensor<2x32x128x128xf32>
}

// -----

shard.grid @grid(shape = 4)

// Paged decode, batch split: each device's sequences, their block-table
// rows and lengths; the cache (whose pages any sequence may use) is whole.
// CHECK-LABEL: func.func @paged_batch
// CHECK-SAME: (%[[Q:.+]]: tensor<2x1x32x128xbf16>, %[[KC:.+]]: tensor<64x16x8x128xbf16>, %[[VC:.+]]: tensor<64x16x8x128xbf16>, %[[T:.+]]: tensor<2x4xi32>, %[[L:.+]]: tensor<2xi32>) -> (tensor<2x1x32x128xbf16>, tensor<2x32x1xf32>)
// CHECK-NOT: shard.
// CHECK: attn.paged_attention %[[Q]], %[[KC]], %[[VC]], %[[T]], %[[L]] mask = <causal> :
// CHECK-NOT: shard.
// CHECK: return
func.func @paged_batch(%q: tensor<8x1x32x128xbf16>, %kc: tensor<64x16x8x128xbf16>, %vc: tensor<64x16x8x128xbf16>, %t: tensor<8x4xi32>, %l: tensor<8xi32>) -> (tensor<8x1x32x128xbf16>, tensor<8x32x1xf32>) {
  %s = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %l1 = shard.shard %l to %s annotate_for_users : tensor<8xi32>
  %o, %lse = attn.paged_attention %q, %kc, %vc, %t, %l1 mask = <causal> : (tensor<8x1x32x128xbf16>, tensor<64x16x8x128xbf16>, tensor<64x16x8x128xbf16>, tensor<8x4xi32>, tensor<8xi32>) -> (tensor<8x1x32x128xbf16>, tensor<8x32x1xf32>)
  return %o, %lse : tensor<8x1x32x128xbf16>, tensor<8x32x1xf32>
}

// -----

shard.grid @grid(shape = 4)

// Paged decode, head split of an hnd cache (its dim 1): 2 KV heads with
// their 8 query heads and sinks per device.
// CHECK-LABEL: func.func @paged_heads_hnd
// CHECK-SAME: (%[[Q:.+]]: tensor<8x1x8x128xbf16>, %[[KC:.+]]: tensor<64x2x16x128xbf16>, %[[VC:.+]]: tensor<64x2x16x128xbf16>, %[[T:.+]]: tensor<8x4xi32>, %[[L:.+]]: tensor<8xi32>, %[[SINKS:.+]]: tensor<8xf32>) -> tensor<8x1x8x128xbf16>
// CHECK-NOT: shard.
// CHECK: attn.paged_attention %[[Q]], %[[KC]], %[[VC]], %[[T]], %[[L]] sinks(%[[SINKS]]) cache_layout = hnd mask = <causal> :
func.func @paged_heads_hnd(%q: tensor<8x1x32x128xbf16>, %kc: tensor<64x8x16x128xbf16>, %vc: tensor<64x8x16x128xbf16>, %t: tensor<8x4xi32>, %l: tensor<8xi32>, %sinks: tensor<32xf32>) -> tensor<8x1x32x128xbf16> {
  %s = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %k1 = shard.shard %kc to %s annotate_for_users : tensor<64x8x16x128xbf16>
  %o = attn.paged_attention %q, %k1, %vc, %t, %l sinks(%sinks) cache_layout = hnd mask = <causal> : (tensor<8x1x32x128xbf16>, tensor<64x8x16x128xbf16>, tensor<64x8x16x128xbf16>, tensor<8x4xi32>, tensor<8xi32>, tensor<32xf32>) -> tensor<8x1x32x128xbf16>
  return %o : tensor<8x1x32x128xbf16>
}

// -----

shard.grid @grid(shape = 4)

// The tokens of the recurrence cannot split (a split would pass the state
// from device to device): a warning, and the query is gathered whole.
// CHECK-LABEL: func.func @gated_tokens
// CHECK: shard.all_gather %{{.+}} on @grid grid_axes = [0] gather_axis = 1 : tensor<2x16x2x64xf32> -> tensor<2x64x2x64xf32>
// CHECK: attn.gated_delta_rule {{.*}} -> (tensor<2x64x2x64xf32>, tensor<2x2x64x64xf32>)
func.func @gated_tokens(%q: tensor<2x64x2x64xf32>, %k: tensor<2x64x2x64xf32>, %v: tensor<2x64x2x64xf32>, %g: tensor<2x64x2xf32>, %beta: tensor<2x64x2xf32>) -> (tensor<2x64x2x64xf32>, tensor<2x2x64x64xf32>) {
  %s = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %q1 = shard.shard %q to %s annotate_for_users : tensor<2x64x2x64xf32>
  // expected-warning @+1 {{cannot split dimension 1 of operand 0: attn.gated_delta_rule is sharded over batch and heads only; it stays whole}}
  %o, %st = attn.gated_delta_rule %q1, %k, %v, %g, %beta : (tensor<2x64x2x64xf32>, tensor<2x64x2x64xf32>, tensor<2x64x2x64xf32>, tensor<2x64x2xf32>, tensor<2x64x2xf32>) -> (tensor<2x64x2x64xf32>, tensor<2x2x64x64xf32>)
  return %o, %st : tensor<2x64x2x64xf32>, tensor<2x2x64x64xf32>
}

// -----

shard.grid @grid(shape = 4)

// 2 key heads cannot be cut into 4 whole groups of value heads: a
// warning, and the values are gathered whole.
// CHECK-LABEL: func.func @gated_heads_two_groups
// CHECK: shard.all_gather %{{.+}} on @grid grid_axes = [0] gather_axis = 2 : tensor<2x64x2x64xf32> -> tensor<2x64x8x64xf32>
// CHECK: attn.gated_delta_rule {{.*}} -> (tensor<2x64x8x64xf32>, tensor<2x8x64x64xf32>)
func.func @gated_heads_two_groups(%q: tensor<2x64x2x64xf32>, %k: tensor<2x64x2x64xf32>, %v: tensor<2x64x8x64xf32>, %g: tensor<2x64x8xf32>, %beta: tensor<2x64x8xf32>) -> (tensor<2x64x8x64xf32>, tensor<2x8x64x64xf32>) {
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %v1 = shard.shard %v to %s annotate_for_users : tensor<2x64x8x64xf32>
  // expected-warning @+1 {{cannot split 2 key heads into 4 parts: each part must hold whole groups of the heads that share one; it stays whole}}
  %o, %st = attn.gated_delta_rule %q, %k, %v1, %g, %beta : (tensor<2x64x2x64xf32>, tensor<2x64x2x64xf32>, tensor<2x64x8x64xf32>, tensor<2x64x8xf32>, tensor<2x64x8xf32>) -> (tensor<2x64x8x64xf32>, tensor<2x8x64x64xf32>)
  return %o, %st : tensor<2x64x8x64xf32>, tensor<2x8x64x64xf32>
}
