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

// -----

shard.grid @grid(shape = 4)

// The gated delta rule's tokens split by hand: the recurrence cannot run
// on a block of tokens without the state before it.
func.func @gated_tokens_split(%q: tensor<1x64x2x32xf32>, %g: tensor<1x64x2xf32>) -> tensor<1x64x2x32xf32> {
  %s = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %q1 = shard.shard %q to %s annotate_for_users : tensor<1x64x2x32xf32>
  %g1 = shard.shard %g to %s annotate_for_users : tensor<1x64x2xf32>
  // expected-error @+1 {{'attn.gated_delta_rule' op cannot split dimension 1 of operand 0: attn.gated_delta_rule is sharded over batch and heads only}}
  %o, %st = attn.gated_delta_rule %q1, %q1, %q1, %g1, %g1 : (tensor<1x64x2x32xf32>, tensor<1x64x2x32xf32>, tensor<1x64x2x32xf32>, tensor<1x64x2xf32>, tensor<1x64x2xf32>) -> (tensor<1x64x2x32xf32>, tensor<1x2x32x32xf32>)
  %o1 = shard.shard %o to %s : tensor<1x64x2x32xf32>
  %r = shard.sharding @grid split_axes = [[]] : !shard.sharding
  %st1 = shard.shard %st to %r : tensor<1x2x32x32xf32>
  return %o1 : tensor<1x64x2x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// A paged decode whose queries are split over heads but whose cache is
// not: the loops are split inconsistently.
func.func @paged_heads_without_cache(%q: tensor<2x1x8x64xf32>, %kc: tensor<16x16x4x64xf32>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x8x64xf32> {
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %r = shard.sharding @grid split_axes = [[]] : !shard.sharding
  %q1 = shard.shard %q to %s annotate_for_users : tensor<2x1x8x64xf32>
  %k1 = shard.shard %kc to %r annotate_for_users : tensor<16x16x4x64xf32>
  %t1 = shard.shard %t to %r annotate_for_users : tensor<2x4xi32>
  %l1 = shard.shard %l to %r annotate_for_users : tensor<2xi32>
  // expected-error @+1 {{'attn.paged_attention' op operand 1 is not split as the loops are}}
  %o = attn.paged_attention %q1, %k1, %k1, %t1, %l1 : (tensor<2x1x8x64xf32>, tensor<16x16x4x64xf32>, tensor<16x16x4x64xf32>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf32>
  %o1 = shard.shard %o to %s : tensor<2x1x8x64xf32>
  return %o1 : tensor<2x1x8x64xf32>
}
