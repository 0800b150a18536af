// RUN: attn-opt %s --split-input-file \
// RUN:   --pass-pipeline='builtin.module(func.func(sharding-propagation,shard-partition))' | FileCheck %s
// Upstream's shard-partition through attn.attention's ShardingInterface: the
// per-device program of each split (after sharding-propagation has annotated
// the op from one annotation). docs/sharding.md states the math.

shard.grid @grid(shape = 4)

// Batch: each device attends over its sequences; no communication.
// CHECK-LABEL: func.func @batch
// CHECK-SAME: (%[[Q:.+]]: tensor<1x8x16x32xf32>, %[[K:.+]]: tensor<1x2x16x32xf32>, %[[V:.+]]: tensor<1x2x16x32xf32>) -> (tensor<1x8x16x32xf32>, tensor<1x8x16xf32>)
// CHECK-NOT: shard.
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] mask = <causal> :
// CHECK-SAME: -> (tensor<1x8x16x32xf32>, tensor<1x8x16xf32>)
// CHECK-NOT: shard.
// CHECK: return %[[O]], %[[LSE]]
func.func @batch(%q: tensor<4x8x16x32xf32>, %k: tensor<4x2x16x32xf32>, %v: tensor<4x2x16x32xf32>) -> (tensor<4x8x16x32xf32>, tensor<4x8x16xf32>) {
  %s = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %q1 = shard.shard %q to %s annotate_for_users : tensor<4x8x16x32xf32>
  %o, %lse = attn.attention %q1, %k, %v mask = <causal> : (tensor<4x8x16x32xf32>, tensor<4x2x16x32xf32>, tensor<4x2x16x32xf32>) -> (tensor<4x8x16x32xf32>, tensor<4x8x16xf32>)
  return %o, %lse : tensor<4x8x16x32xf32>, tensor<4x8x16xf32>
}

// -----

shard.grid @grid(shape = 4)

// GQA 8/4 over 4 devices: one KV head and its two query heads (and their
// sinks) per device; a causal mask needs no offset for a head split.
// CHECK-LABEL: func.func @gqa_heads
// CHECK-SAME: (%[[Q:.+]]: tensor<1x2x16x32xf32>, %[[K:.+]]: tensor<1x1x16x32xf32>, %[[V:.+]]: tensor<1x1x16x32xf32>, %[[SINKS:.+]]: tensor<2xf32>) -> tensor<1x2x16x32xf32>
// CHECK-NOT: shard.
// CHECK: %[[O:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] sinks(%[[SINKS]]) mask = <causal> :
// CHECK-NOT: shard.
// CHECK: return %[[O]]
func.func @gqa_heads(%q: tensor<1x8x16x32xf32>, %k: tensor<1x4x16x32xf32>, %v: tensor<1x4x16x32xf32>, %sinks: tensor<8xf32>) -> tensor<1x8x16x32xf32> {
  %s = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %k1 = shard.shard %k to %s annotate_for_users : tensor<1x4x16x32xf32>
  %o = attn.attention %q, %k1, %v sinks(%sinks) mask = <causal> : (tensor<1x8x16x32xf32>, tensor<1x4x16x32xf32>, tensor<1x4x16x32xf32>, tensor<8xf32>) -> tensor<1x8x16x32xf32>
  return %o : tensor<1x8x16x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// Query rows of a causal mask (bshd, Sq = Sk = 16): device r holds rows
// [4r, 4r + 4), which sit at key positions 4r + i; the local problem would put
// them at i + 12, so the offset is 4r - 12. K and V stay whole.
// CHECK-LABEL: func.func @query_rows_causal
// CHECK-SAME: (%[[Q:.+]]: tensor<2x4x4x32xf32>, %[[K:.+]]: tensor<2x16x4x32xf32>, %[[V:.+]]: tensor<2x16x4x32xf32>) -> tensor<2x4x4x32xf32>
// CHECK: %[[R:.+]] = shard.process_multi_index on @grid axes = [0] : index
// CHECK: %[[C4:.+]] = arith.constant 4 : index
// CHECK: %[[START:.+]] = arith.muli %[[R]], %[[C4]] : index
// CHECK: %[[SHIFT:.+]] = arith.constant -12 : index
// CHECK: %[[OFF:.+]] = arith.addi %[[START]], %[[SHIFT]] : index
// CHECK: attn.attention %[[Q]], %[[K]], %[[V]] position_offset(%[[OFF]]) layout = bshd mask = <causal> :
// CHECK-SAME: -> tensor<2x4x4x32xf32>
// CHECK-NOT: shard.all
func.func @query_rows_causal(%q: tensor<2x16x4x32xf32>, %k: tensor<2x16x4x32xf32>, %v: tensor<2x16x4x32xf32>) -> tensor<2x16x4x32xf32> {
  %o = attn.attention %q, %k, %v layout = bshd mask = <causal> : (tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>, tensor<2x16x4x32xf32>) -> tensor<2x16x4x32xf32>
  %s = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %o1 = shard.shard %o to %s : tensor<2x16x4x32xf32>
  return %o1 : tensor<2x16x4x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// Must not fire: without a mask the rows need no offset.
// CHECK-LABEL: func.func @query_rows_unmasked
// CHECK-NOT: shard.process_multi_index
// CHECK-NOT: position_offset
// CHECK: attn.attention
// CHECK-SAME: -> tensor<1x2x4x32xf32>
func.func @query_rows_unmasked(%q: tensor<1x2x16x32xf32>, %k: tensor<1x2x16x32xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x2x16x32xf32> {
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %q1 = shard.shard %q to %s annotate_for_users : tensor<1x2x16x32xf32>
  %o = attn.attention %q1, %k, %v : (tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>) -> tensor<1x2x16x32xf32>
  return %o : tensor<1x2x16x32xf32>
}

// -----

shard.grid @grid(shape = 4)

// Keys (context parallelism), causal, with sinks and the LSE: device r
// attends to keys [16r, 16r + 16) (offset 48 - 16r), without the sinks and
// with its LSE, then the partials merge by their LSE: all_reduce max of the
// LSE, weights exp(lse_r - m) (m with the sink, -inf made 0), all_reduce sum
// of the weights and of the weighted outputs, the sink added once, lse =
// m + log l, O = acc / l.
// CHECK-DAG: #[[ROW:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-DAG: #[[HEAD:.+]] = affine_map<(d0, d1, d2) -> (d1)>
// CHECK-LABEL: func.func @keys_causal_sinks
// CHECK-SAME: (%[[Q:.+]]: tensor<1x2x16x32xf32>, %[[K:.+]]: tensor<1x2x16x32xf32>, %[[V:.+]]: tensor<1x2x16x32xf32>, %[[SINKS:.+]]: tensor<2xf32>) -> (tensor<1x2x16x32xf32>, tensor<1x2x16xf32>)
// CHECK: %[[R:.+]] = shard.process_multi_index on @grid axes = [0] : index
// CHECK: %[[START:.+]] = arith.muli %[[R]], %{{.+}} : index
// CHECK: %[[C48:.+]] = arith.constant 48 : index
// CHECK: %[[OFF:.+]] = arith.subi %[[C48]], %[[START]] : index
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] position_offset(%[[OFF]]) mask = <causal> :
// CHECK-SAME: -> (tensor<1x2x16x32xf32>, tensor<1x2x16xf32>)
// CHECK: %[[M:.+]] = shard.all_reduce %[[LSE]] on @grid grid_axes = [0] reduction = max
// CHECK: %[[W:.+]] = linalg.generic
// CHECK-SAME: ins(%[[LSE]], %[[M]], %[[SINKS]] :
// CHECK: arith.maximumf
// CHECK: arith.select
// CHECK: arith.subf
// CHECK: math.exp
// CHECK: %[[L:.+]] = shard.all_reduce %[[W]] on @grid grid_axes = [0] :
// CHECK: %[[WO:.+]] = linalg.generic {{{.*}}#[[ROW]]
// CHECK-SAME: ins(%[[O]], %[[W]] :
// CHECK: arith.mulf
// CHECK: %[[ACC:.+]] = shard.all_reduce %[[WO]] on @grid grid_axes = [0] :
// CHECK: %[[MERGED:.+]]:2 = linalg.generic {{{.*}}#[[HEAD]]
// CHECK-SAME: ins(%[[L]], %[[M]], %[[SINKS]] :
// CHECK: math.exp
// CHECK: arith.addf
// CHECK: math.log
// CHECK: %[[OUT:.+]] = linalg.generic
// CHECK-SAME: ins(%[[ACC]], %[[MERGED]]#1 :
// CHECK: arith.cmpf ogt
// CHECK: arith.divf
// CHECK: arith.select
// CHECK: return %[[OUT]], %[[MERGED]]#0
func.func @keys_causal_sinks(%q: tensor<1x2x16x32xf32>, %k: tensor<1x2x64x32xf32>, %v: tensor<1x2x64x32xf32>, %sinks: tensor<2xf32>) -> (tensor<1x2x16x32xf32>, tensor<1x2x16xf32>) {
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %k1 = shard.shard %k to %s annotate_for_users : tensor<1x2x64x32xf32>
  %o, %lse = attn.attention %q, %k1, %v sinks(%sinks) mask = <causal> : (tensor<1x2x16x32xf32>, tensor<1x2x64x32xf32>, tensor<1x2x64x32xf32>, tensor<2xf32>) -> (tensor<1x2x16x32xf32>, tensor<1x2x16xf32>)
  return %o, %lse : tensor<1x2x16x32xf32>, tensor<1x2x16xf32>
}

// -----

shard.grid @grid(shape = 2)

// Keys of a bf16 op without an LSE result: the local op gets one for the
// merge, which runs in f32 and rounds the output back to bf16.
// CHECK-LABEL: func.func @keys_bf16
// CHECK: %[[O:.+]], %[[LSE:.+]] = attn.attention
// CHECK-SAME: -> (tensor<1x8x2x64xbf16>, tensor<1x2x8xf32>)
// CHECK: shard.all_reduce %[[LSE]] on @grid grid_axes = [0] reduction = max
// CHECK: linalg.generic {{.+}} ins(%[[O]], %{{.+}} : tensor<1x8x2x64xbf16>, tensor<1x2x8xf32>)
// CHECK: arith.extf
// CHECK: shard.all_reduce %{{.+}} on @grid grid_axes = [0] : tensor<1x8x2x64xf32>
// CHECK: arith.truncf %{{.+}} : f32 to bf16
// CHECK: return %{{.+}} : tensor<1x8x2x64xbf16>
func.func @keys_bf16(%q: tensor<1x8x2x64xbf16>, %k: tensor<1x32x2x64xbf16>, %v: tensor<1x32x2x64xbf16>) -> tensor<1x8x2x64xbf16> {
  %s = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %k1 = shard.shard %k to %s annotate_for_users : tensor<1x32x2x64xbf16>
  %o = attn.attention %q, %k1, %v layout = bshd : (tensor<1x8x2x64xbf16>, tensor<1x32x2x64xbf16>, tensor<1x32x2x64xbf16>) -> tensor<1x8x2x64xbf16>
  return %o : tensor<1x8x2x64xbf16>
}

// -----

shard.grid @grid(shape = 4)

// Replicated everywhere: every device runs the whole op.
// CHECK-LABEL: func.func @replicated
// CHECK-SAME: (%[[Q:.+]]: tensor<1x2x8x32xf32>, %[[K:.+]]: tensor<1x2x8x32xf32>, %[[V:.+]]: tensor<1x2x8x32xf32>)
// CHECK-NOT: shard.
// CHECK: attn.attention %[[Q]], %[[K]], %[[V]] mask = <causal> :
// CHECK-SAME: -> tensor<1x2x8x32xf32>
func.func @replicated(%q: tensor<1x2x8x32xf32>, %k: tensor<1x2x8x32xf32>, %v: tensor<1x2x8x32xf32>) -> tensor<1x2x8x32xf32> {
  %r = shard.sharding @grid split_axes = [[]] : !shard.sharding
  %q1 = shard.shard %q to %r annotate_for_users : tensor<1x2x8x32xf32>
  %o = attn.attention %q1, %k, %v mask = <causal> : (tensor<1x2x8x32xf32>, tensor<1x2x8x32xf32>, tensor<1x2x8x32xf32>) -> tensor<1x2x8x32xf32>
  return %o : tensor<1x2x8x32xf32>
}
