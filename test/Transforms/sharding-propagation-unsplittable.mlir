// RUN: attn-opt %s --split-input-file -verify-diagnostics \
// RUN:   --pass-pipeline='builtin.module(func.func(sharding-propagation{traversal=forward}))' \
// RUN:   | FileCheck %s
// RUN: attn-opt %s --split-input-file \
// RUN:   --pass-pipeline='builtin.module(func.func(sharding-propagation,shard-partition))' 2>/dev/null \
// RUN:   | FileCheck %s --check-prefix=PART
// A split attn.attention cannot take gets a warning at the op saying why, and
// propagation keeps that loop whole: the operand is resharded (gathered)
// rather than the attention computed wrongly, and shard-partition then
// builds a correct program.

shard.grid @grid(shape = 4)

// 8 query heads over 2 KV heads: splitting the query heads in 4 would cut
// each group of 4 (two devices would share one KV head's group).
// CHECK-LABEL: func.func @gqa_group_cut
// CHECK-SAME: (%[[Q:.+]]: tensor<1x8x16x32xf32>
// CHECK: %[[QH:.+]] = shard.shard %[[Q]] to %{{.+}} annotate_for_users
// CHECK: %[[R:.+]] = shard.sharding @grid split_axes = {{\[\[}}]]
// CHECK-NEXT: %[[QD:.+]] = shard.shard %[[QH]] to %[[R]] :
// CHECK-NEXT: %[[QR:.+]] = shard.shard %[[QD]] to %[[R]] annotate_for_users
// CHECK: attn.attention %[[QR]],
// PART-LABEL: func.func @gqa_group_cut
// PART-SAME: (%[[Q:.+]]: tensor<1x2x16x32xf32>, %[[K:.+]]: tensor<1x2x16x32xf32>, %[[V:.+]]: tensor<1x2x16x32xf32>)
// PART: %[[ALL:.+]] = shard.all_gather %[[Q]] on @grid grid_axes = [0] gather_axis = 1 : tensor<1x2x16x32xf32> -> tensor<1x8x16x32xf32>
// PART: attn.attention %{{.+}}, %[[K]], %[[V]] :
// PART-SAME: -> tensor<1x8x16x32xf32>
func.func @gqa_group_cut(%q: tensor<1x8x16x32xf32>, %k: tensor<1x2x16x32xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x8x16x32xf32> {
  %s = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %q1 = shard.shard %q to %s annotate_for_users : tensor<1x8x16x32xf32>
  // expected-warning @+1 {{cannot split 8 query heads over 2 key/value heads into 4 parts: each part must hold whole groups of 4 query heads, so the key/value head count must be divisible by the number of devices; the head stays whole}}
  %o = attn.attention %q1, %k, %v : (tensor<1x8x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>) -> tensor<1x8x16x32xf32>
  return %o : tensor<1x8x16x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// The head dim is a contraction.
// CHECK-LABEL: func.func @head_dim
// CHECK: shard.sharding @grid split_axes = {{\[\[}}]]
// PART-LABEL: func.func @head_dim
// PART: shard.all_gather %{{.+}} on @grid grid_axes = [0] gather_axis = 3
func.func @head_dim(%q: tensor<1x2x16x32xf32>, %k: tensor<1x2x16x32xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x2x16x32xf32> {
  %s = shard.sharding @grid split_axes = [[], [], [], [0]] : !shard.sharding
  %q1 = shard.shard %q to %s annotate_for_users : tensor<1x2x16x32xf32>
  // expected-warning @+1 {{cannot split the head dim: attention is sharded over batch, heads, query sequence or key sequence; the head dim stays whole}}
  %o = attn.attention %q1, %k, %v : (tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>) -> tensor<1x2x16x32xf32>
  return %o : tensor<1x2x16x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// A dynamic key count has no static block size (the position offset and the
// merge need one).
// CHECK-LABEL: func.func @dynamic_keys
// PART-LABEL: func.func @dynamic_keys
// PART: shard.all_gather %{{.+}} on @grid grid_axes = [0] gather_axis = 2
// PART-NOT: shard.all_reduce
func.func @dynamic_keys(%q: tensor<1x2x8x32xf32>, %k: tensor<1x2x?x32xf32>, %v: tensor<1x2x?x32xf32>) -> tensor<1x2x8x32xf32> {
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %k1 = shard.shard %k to %s annotate_for_users : tensor<1x2x?x32xf32>
  // expected-warning @+1 {{cannot split the key sequence of dynamic size: the shards must be of static size; the key sequence stays whole}}
  %o = attn.attention %q, %k1, %v mask = <causal> : (tensor<1x2x8x32xf32>, tensor<1x2x?x32xf32>, tensor<1x2x?x32xf32>) -> tensor<1x2x8x32xf32>
  return %o : tensor<1x2x8x32xf32>
}
