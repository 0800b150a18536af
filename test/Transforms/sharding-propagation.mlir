// RUN: attn-opt %s --split-input-file \
// RUN:   --pass-pipeline='builtin.module(func.func(sharding-propagation))' | FileCheck %s
// attn.attention's ShardingInterface: from one annotated operand or result,
// upstream's sharding-propagation derives the sharding of every other operand
// and result of the op (docs/sharding.md).

shard.grid @grid(shape = 4)

// Batch: Q split on dim 0; K, V, O and the LSE follow.
// CHECK-LABEL: func.func @batch
// CHECK-SAME: (%[[Q:.+]]: tensor<4x8x16x32xf32>, %[[K:.+]]: tensor<4x2x16x32xf32>, %[[V:.+]]: tensor<4x2x16x32xf32>)
// CHECK: %[[QB:.+]] = shard.sharding @grid split_axes = {{\[\[}}0]]
// CHECK-NEXT: %[[QS:.+]] = shard.shard %[[Q]] to %[[QB]] annotate_for_users
// CHECK-NEXT: %[[KB:.+]] = shard.sharding @grid split_axes = {{\[\[}}0]]
// CHECK-NEXT: %[[KS:.+]] = shard.shard %[[K]] to %[[KB]] annotate_for_users
// CHECK-NEXT: %[[VB:.+]] = shard.sharding @grid split_axes = {{\[\[}}0]]
// CHECK-NEXT: %[[VS:.+]] = shard.shard %[[V]] to %[[VB]] annotate_for_users
// CHECK-NEXT: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[QS]], %[[KS]], %[[VS]]
// CHECK-NEXT: %[[LB:.+]] = shard.sharding @grid split_axes = {{\[\[}}0]]
// CHECK-NEXT: shard.shard %[[LSE]] to %[[LB]] : tensor<4x8x16xf32>
// CHECK-NEXT: %[[OB:.+]] = shard.sharding @grid split_axes = {{\[\[}}0]]
// CHECK-NEXT: shard.shard %[[O]] to %[[OB]] : tensor<4x8x16x32xf32>
func.func @batch(%q: tensor<4x8x16x32xf32>, %k: tensor<4x2x16x32xf32>, %v: tensor<4x2x16x32xf32>) -> (tensor<4x8x16x32xf32>, tensor<4x8x16xf32>) {
  %s = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %q1 = shard.shard %q to %s annotate_for_users : tensor<4x8x16x32xf32>
  %o, %lse = attn.attention %q1, %k, %v mask = <causal> : (tensor<4x8x16x32xf32>, tensor<4x2x16x32xf32>, tensor<4x2x16x32xf32>) -> (tensor<4x8x16x32xf32>, tensor<4x8x16xf32>)
  return %o, %lse : tensor<4x8x16x32xf32>, tensor<4x8x16xf32>
}

// -----

shard.grid @grid(shape = 4)

// Heads, GQA 8/4: the KV heads are split, so are the query heads (two per
// device, one group), the output and the sinks.
// CHECK-LABEL: func.func @gqa_heads
// CHECK-SAME: (%[[Q:.+]]: tensor<1x8x16x32xf32>, %[[K:.+]]: tensor<1x4x16x32xf32>, %[[V:.+]]: tensor<1x4x16x32xf32>, %[[SINKS:.+]]: tensor<8xf32>)
// CHECK: %[[KH:.+]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// CHECK-NEXT: %[[KS:.+]] = shard.shard %[[K]] to %[[KH]] annotate_for_users
// CHECK-NEXT: %[[QH:.+]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// CHECK-NEXT: %[[QS:.+]] = shard.shard %[[Q]] to %[[QH]] annotate_for_users : tensor<1x8x16x32xf32>
// CHECK-NEXT: %[[VH:.+]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// CHECK-NEXT: %[[VS:.+]] = shard.shard %[[V]] to %[[VH]] annotate_for_users : tensor<1x4x16x32xf32>
// CHECK-NEXT: %[[SH:.+]] = shard.sharding @grid split_axes = {{\[\[}}0]]
// CHECK-NEXT: %[[SS:.+]] = shard.shard %[[SINKS]] to %[[SH]] annotate_for_users : tensor<8xf32>
// CHECK-NEXT: %[[O:.+]] = attn.attention %[[QS]], %[[KS]], %[[VS]] sinks(%[[SS]])
// CHECK-NEXT: %[[OH:.+]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// CHECK-NEXT: shard.shard %[[O]] to %[[OH]] : tensor<1x8x16x32xf32>
func.func @gqa_heads(%q: tensor<1x8x16x32xf32>, %k: tensor<1x4x16x32xf32>, %v: tensor<1x4x16x32xf32>, %sinks: tensor<8xf32>) -> tensor<1x8x16x32xf32> {
  %s = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %k1 = shard.shard %k to %s annotate_for_users : tensor<1x4x16x32xf32>
  %o = attn.attention %q, %k1, %v sinks(%sinks) : (tensor<1x8x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<8xf32>) -> tensor<1x8x16x32xf32>
  return %o : tensor<1x8x16x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// Query rows, bshd: the result's annotation decides; Q is split on its
// sequence dim (1 in bshd), K and V stay replicated.
// CHECK-LABEL: func.func @query_rows_bshd
// CHECK-SAME: (%[[Q:.+]]: tensor<2x16x4x32xf32>, %[[K:.+]]: tensor<2x16x4x32xf32>, %[[V:.+]]: tensor<2x16x4x32xf32>)
// CHECK: %[[S:.+]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// CHECK-NEXT: %[[QS:.+]] = shard.shard %[[Q]] to %[[S]] annotate_for_users
// CHECK-NEXT: %[[R:.+]] = shard.sharding @grid split_axes = {{\[\[}}]]
// CHECK-NEXT: %[[KS:.+]] = shard.shard %[[K]] to %[[R]] annotate_for_users
// CHECK-NEXT: %[[R2:.+]] = shard.sharding @grid split_axes = {{\[\[}}]]
// CHECK-NEXT: %[[VS:.+]] = shard.shard %[[V]] to %[[R2]] annotate_for_users
// CHECK-NEXT: attn.attention %[[QS]], %[[KS]], %[[VS]] layout = bshd mask = <causal>
func.func @query_rows_bshd(%q: tensor<2x16x4x32xf32>, %k: tensor<2x16x4x32xf32>, %v: tensor<2x16x4x32xf32>) -> tensor<2x16x4x32xf32> {
  %o = attn.attention %q, %k, %v layout = bshd mask = <causal> : (tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>) -> tensor<2x16x4x32xf32>
  %s = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %o1 = shard.shard %o to %s : tensor<2x16x4x32xf32>
  return %o1 : tensor<2x16x4x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// Keys (context parallelism): K split on its sequence; V and the bias's key
// dim follow, its broadcast dims stay whole, Q and the output are replicated
// (the partition merges the partial results).
// CHECK-LABEL: func.func @keys
// CHECK-SAME: (%[[Q:.+]]: tensor<1x2x8x32xf32>, %[[K:.+]]: tensor<1x2x64x32xf32>, %[[V:.+]]: tensor<1x2x64x32xf32>, %[[BIAS:.+]]: tensor<1x1x8x64xf32>)
// CHECK: %[[KK:.+]] = shard.sharding @grid split_axes = {{\[\[}}], [], [0]]
// CHECK-NEXT: %[[KS:.+]] = shard.shard %[[K]] to %[[KK]] annotate_for_users
// CHECK-NEXT: %[[R:.+]] = shard.sharding @grid split_axes = {{\[\[}}]]
// CHECK-NEXT: %[[QS:.+]] = shard.shard %[[Q]] to %[[R]] annotate_for_users
// CHECK-NEXT: %[[VK:.+]] = shard.sharding @grid split_axes = {{\[\[}}], [], [0]]
// CHECK-NEXT: %[[VS:.+]] = shard.shard %[[V]] to %[[VK]] annotate_for_users
// CHECK-NEXT: %[[BK:.+]] = shard.sharding @grid split_axes = {{\[\[}}], [], [], [0]]
// CHECK-NEXT: %[[BS:.+]] = shard.shard %[[BIAS]] to %[[BK]] annotate_for_users
// CHECK-NEXT: %[[O:.+]] = attn.attention %[[QS]], %[[KS]], %[[VS]] bias(%[[BS]])
// CHECK-NEXT: %[[OR:.+]] = shard.sharding @grid split_axes = {{\[\[}}]]
// CHECK-NEXT: shard.shard %[[O]] to %[[OR]] : tensor<1x2x8x32xf32>
func.func @keys(%q: tensor<1x2x8x32xf32>, %k: tensor<1x2x64x32xf32>, %v: tensor<1x2x64x32xf32>, %bias: tensor<1x1x8x64xf32>) -> tensor<1x2x8x32xf32> {
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %k1 = shard.shard %k to %s annotate_for_users : tensor<1x2x64x32xf32>
  %o = attn.attention %q, %k1, %v bias(%bias) : (tensor<1x2x8x32xf32>, tensor<1x2x64x32xf32>, tensor<1x2x64x32xf32>, tensor<1x1x8x64xf32>) -> tensor<1x2x8x32xf32>
  return %o : tensor<1x2x8x32xf32>
}

// -----

shard.grid @grid(shape = 2x2)

// Two grid axes: heads on axis 0, keys on axis 1.
// CHECK-LABEL: func.func @heads_and_keys
// CHECK-SAME: (%[[Q:.+]]: tensor<1x4x8x32xf32>, %[[K:.+]]: tensor<1x2x64x32xf32>, %[[V:.+]]: tensor<1x2x64x32xf32>)
// CHECK: %[[QH:.+]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// CHECK-NEXT: shard.shard %[[Q]] to %[[QH]] annotate_for_users
// CHECK-NEXT: %[[VHK:.+]] = shard.sharding @grid split_axes = {{\[\[}}], [0], [1]]
// CHECK-NEXT: shard.shard %[[V]] to %[[VHK]] annotate_for_users
// CHECK-NEXT: %[[O:.+]] = attn.attention
// CHECK-NEXT: %[[OH:.+]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// CHECK-NEXT: shard.shard %[[O]] to %[[OH]] : tensor<1x4x8x32xf32>
func.func @heads_and_keys(%q: tensor<1x4x8x32xf32>, %k: tensor<1x2x64x32xf32>, %v: tensor<1x2x64x32xf32>) -> tensor<1x4x8x32xf32> {
  %s = shard.sharding @grid split_axes = [[], [0], [1]] : !shard.sharding
  %k1 = shard.shard %k to %s annotate_for_users : tensor<1x2x64x32xf32>
  %o = attn.attention %q, %k1, %v mask = <causal> : (tensor<1x4x8x32xf32>, tensor<1x2x64x32xf32>, tensor<1x2x64x32xf32>) -> tensor<1x4x8x32xf32>
  return %o : tensor<1x4x8x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// Must not fire: without any annotation, propagation adds none.
// CHECK-LABEL: func.func @unannotated
// CHECK-NOT: shard.
// CHECK: attn.attention
// CHECK-NOT: shard.
func.func @unannotated(%q: tensor<1x2x8x32xf32>, %k: tensor<1x2x8x32xf32>, %v: tensor<1x2x8x32xf32>) -> tensor<1x2x8x32xf32> {
  %o = attn.attention %q, %k, %v : (tensor<1x2x8x32xf32>, tensor<1x2x8x32xf32>, tensor<1x2x8x32xf32>) -> tensor<1x2x8x32xf32>
  return %o : tensor<1x2x8x32xf32>
}
