// RUN: attn-opt %s --split-input-file -verify-diagnostics \
// RUN:   --pass-pipeline='builtin.module(func.func(shard-partition))'
// shard-partition on annotations written by hand (no propagation): an
// attention whose operands are split in ways it cannot run is reported at
// the op, not partitioned wrongly.

shard.grid @grid(shape = 4)

func.func @gqa_group_cut(%q: tensor<1x8x16x32xf32>, %k: tensor<1x2x16x32xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x8x16x32xf32> {
  %s = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %q1 = shard.shard %q to %s annotate_for_users : tensor<1x8x16x32xf32>
  %k1 = shard.shard %k to %s annotate_for_users : tensor<1x2x16x32xf32>
  %v1 = shard.shard %v to %s annotate_for_users : tensor<1x2x16x32xf32>
  // expected-error @+1 {{'attn.attention' op cannot split 8 query heads over 2 key/value heads into 4 parts}}
  %o = attn.attention %q1, %k1, %v1 : (tensor<1x8x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>) -> tensor<1x8x16x32xf32>
  %o1 = shard.shard %o to %s : tensor<1x8x16x32xf32>
  return %o1 : tensor<1x8x16x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// K split on the keys, V whole: the op's loops are split inconsistently.
func.func @keys_without_values(%q: tensor<1x2x8x32xf32>, %k: tensor<1x2x64x32xf32>, %v: tensor<1x2x64x32xf32>) -> tensor<1x2x8x32xf32> {
  %r = shard.sharding @grid split_axes = [[]] : !shard.sharding
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %q1 = shard.shard %q to %r annotate_for_users : tensor<1x2x8x32xf32>
  %k1 = shard.shard %k to %s annotate_for_users : tensor<1x2x64x32xf32>
  %v1 = shard.shard %v to %r annotate_for_users : tensor<1x2x64x32xf32>
  // expected-error @+1 {{'attn.attention' op operand 2 is not split as the loops are (expected the sharding sharding-propagation gives)}}
  %o = attn.attention %q1, %k1, %v1 : (tensor<1x2x8x32xf32>, tensor<1x2x64x32xf32>, tensor<1x2x64x32xf32>) -> tensor<1x2x8x32xf32>
  %o1 = shard.shard %o to %r : tensor<1x2x8x32xf32>
  return %o1 : tensor<1x2x8x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// Q split on the batch, its output on the rows: no single split of the loops.
func.func @conflicting(%q: tensor<4x2x8x32xf32>, %k: tensor<4x2x8x32xf32>, %v: tensor<4x2x8x32xf32>) -> tensor<4x2x8x32xf32> {
  %b = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %q1 = shard.shard %q to %b annotate_for_users : tensor<4x2x8x32xf32>
  %k1 = shard.shard %k to %b annotate_for_users : tensor<4x2x8x32xf32>
  %v1 = shard.shard %v to %b annotate_for_users : tensor<4x2x8x32xf32>
  // expected-error @+1 {{'attn.attention' op has operand and result shardings that split its loops inconsistently}}
  %o = attn.attention %q1, %k1, %v1 : (tensor<4x2x8x32xf32>, tensor<4x2x8x32xf32>, tensor<4x2x8x32xf32>) -> tensor<4x2x8x32xf32>
  %o1 = shard.shard %o to %s : tensor<4x2x8x32xf32>
  return %o1 : tensor<4x2x8x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// 10 query rows do not split into 4 equal blocks.
func.func @uneven_rows(%q: tensor<1x2x10x32xf32>, %k: tensor<1x2x16x32xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x2x10x32xf32> {
  %r = shard.sharding @grid split_axes = [[]] : !shard.sharding
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %q1 = shard.shard %q to %s annotate_for_users : tensor<1x2x10x32xf32>
  %k1 = shard.shard %k to %r annotate_for_users : tensor<1x2x16x32xf32>
  %v1 = shard.shard %v to %r annotate_for_users : tensor<1x2x16x32xf32>
  // expected-error @+1 {{'attn.attention' op cannot split the query sequence of size 10 into 4 equal parts}}
  %o = attn.attention %q1, %k1, %v1 mask = <causal> : (tensor<1x2x10x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>) -> tensor<1x2x10x32xf32>
  %o1 = shard.shard %o to %s : tensor<1x2x10x32xf32>
  return %o1 : tensor<1x2x10x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// A bias dim of size 1 is broadcast: it follows no loop and cannot be split.
func.func @broadcast_bias_dim(%q: tensor<1x4x8x32xf32>, %k: tensor<1x4x8x32xf32>, %v: tensor<1x4x8x32xf32>, %bias: tensor<1x1x8x8xf32>) -> tensor<1x4x8x32xf32> {
  %r = shard.sharding @grid split_axes = [[]] : !shard.sharding
  %s = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %q1 = shard.shard %q to %s annotate_for_users : tensor<1x4x8x32xf32>
  %k1 = shard.shard %k to %s annotate_for_users : tensor<1x4x8x32xf32>
  %v1 = shard.shard %v to %s annotate_for_users : tensor<1x4x8x32xf32>
  %b1 = shard.shard %bias to %s annotate_for_users : tensor<1x1x8x8xf32>
  // expected-error @+1 {{'attn.attention' op cannot split dimension 1 of a bias operand that is broadcast (size 1) there}}
  %o = attn.attention %q1, %k1, %v1 bias(%b1) : (tensor<1x4x8x32xf32>, tensor<1x4x8x32xf32>, tensor<1x4x8x32xf32>, tensor<1x1x8x8xf32>) -> tensor<1x4x8x32xf32>
  %o1 = shard.shard %o to %s : tensor<1x4x8x32xf32>
  return %o1 : tensor<1x4x8x32xf32>
}
