// RUN: attn-opt %s --attn-tile="block-q=32 block-kv=16" --canonicalize --cse --split-input-file | FileCheck %s

// GQA (8 query heads over 2 KV heads), causal, tails (100 = 3·32 + 4 rows,
// 6·16 + 4 keys): one forall over (batch, head, query block); K/V sliced at
// KV head h / 4; the key loop stops at the band's end; only edge blocks mask.
// CHECK-LABEL: func.func @gqa_causal
// CHECK-SAME: (%[[Q:.+]]: tensor<2x8x100x64xbf16>, %[[K:.+]]: tensor<2x2x100x64xbf16>, %[[V:.+]]: tensor<2x2x100x64xbf16>)
// CHECK-DAG: %[[SCALE:.+]] = arith.constant 0.180336878 : f32
// CHECK-DAG: %[[NINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK: scf.forall (%[[B:.+]], %[[H:.+]], %[[QB:.+]]) in (2, 8, 4) shared_outs(%[[OUT:.+]] = %{{.+}}) -> (tensor<2x8x100x64xbf16>)
// CHECK:   %[[Q0:.+]] = arith.muli %[[QB]], %c32
// CHECK:   %[[BM:.+]] = arith.minsi %{{.+}}, %c32
// CHECK:   %[[KVH:.+]] = arith.divui %[[H]], %c4
// CHECK:   tensor.extract_slice %[[Q]][%[[B]], %[[H]], %[[Q0]], 0] [1, 1, %[[BM]], 64]
// CHECK:   %[[END:.+]] = arith.ceildivsi %{{.+}}, %c16
// CHECK:   %[[UB:.+]] = arith.maxsi %[[END]], %c0
// CHECK:   scf.for %[[KB:.+]] = %c0 to %[[UB]] step %c1 iter_args(%[[M:.+]] = %{{.+}}, %[[L:.+]] = %{{.+}}, %[[ACC:.+]] = %{{.+}}) -> (tensor<?xf32>, tensor<?xf32>, tensor<?x64xf32>)
// CHECK:     %[[K0:.+]] = arith.muli %[[KB]], %c16
// CHECK:     %[[BN:.+]] = arith.minsi %{{.+}}, %c16
// CHECK:     tensor.extract_slice %[[K]][%[[B]], %[[KVH]], %[[K0]], 0] [1, 1, %[[BN]], 64]
// CHECK:     tensor.extract_slice %[[V]][%[[B]], %[[KVH]], %[[K0]], 0] [1, 1, %[[BN]], 64]
// CHECK:     linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK:     %[[INTERIOR:.+]] = arith.andi
// CHECK:     scf.if %[[INTERIOR]] -> (tensor<?x?xf32>) {
// CHECK-NOT:   linalg.index
// CHECK:       arith.mulf %{{.+}}, %[[SCALE]]
// CHECK:     } else {
// CHECK:       linalg.index 0
// CHECK:       linalg.index 1
// CHECK:       arith.cmpi sle
// CHECK:       arith.select %{{.+}}, %{{.+}}, %[[NINF]]
// CHECK:     }
// CHECK:     arith.maximumf
// CHECK:     math.exp2
// CHECK:     math.exp2
// CHECK:     scf.yield
// CHECK:   arith.divf
// CHECK:   arith.truncf %{{.+}} : f32 to bf16
// CHECK:   scf.forall.in_parallel
// CHECK:     tensor.parallel_insert_slice %{{.+}} into %[[OUT]][%[[B]], %[[H]], %[[Q0]], 0] [1, 1, %[[BM]], 64]
// No [Sq, Sk] mask or score tensor anywhere.
// CHECK-NOT: tensor<100x100
// CHECK-NOT: attn.attention
func.func @gqa_causal(%q: tensor<2x8x100x64xbf16>, %k: tensor<2x2x100x64xbf16>, %v: tensor<2x2x100x64xbf16>) -> tensor<2x8x100x64xbf16> {
  %o = attn.attention %q, %k, %v mask = <causal> : (tensor<2x8x100x64xbf16>, tensor<2x2x100x64xbf16>, tensor<2x2x100x64xbf16>) -> tensor<2x8x100x64xbf16>
  return %o : tensor<2x8x100x64xbf16>
}

// -----

// A sliding window also bounds the loop from below: it starts at the block
// holding the first row's first key, floor((q0 + off - left) / 16).
// CHECK-LABEL: func.func @window
// CHECK: scf.forall
// CHECK:   %[[LO:.+]] = arith.subi %{{.+}}, %c20
// CHECK:   %[[LOC:.+]] = arith.maxsi %[[LO]], %c0
// CHECK:   %[[FIRST:.+]] = arith.floordivsi %[[LOC]], %c16
// CHECK:   scf.for %{{.+}} = %[[FIRST]] to %{{.+}} step %c1
// CHECK:     scf.if
// CHECK:     } else {
// CHECK:       arith.cmpi sle
// CHECK:       arith.cmpi sge
// CHECK:       arith.andi
func.func @window(%q: tensor<1x4x100x32xf32>, %k: tensor<1x4x100x32xf32>, %v: tensor<1x4x100x32xf32>) -> tensor<1x4x100x32xf32> {
  %o = attn.attention %q, %k, %v mask = <window, left = 20, right = 3> : (tensor<1x4x100x32xf32>, tensor<1x4x100x32xf32>, tensor<1x4x100x32xf32>) -> tensor<1x4x100x32xf32>
  return %o : tensor<1x4x100x32xf32>
}

// -----

// Without a mask every block is interior: no scf.if, no index arithmetic in
// the logits, the loop covers all ceil(Sk / 16) blocks.
// CHECK-LABEL: func.func @no_mask_rectangular
// CHECK: scf.forall (%{{.+}}, %{{.+}}, %{{.+}}) in (2, 4, 2)
// CHECK: scf.for %{{.+}} = %c0 to %c3 step %c1
// CHECK-NOT: scf.if
// CHECK-NOT: linalg.index
// CHECK: scf.forall.in_parallel
func.func @no_mask_rectangular(%q: tensor<2x4x40x32xf32>, %k: tensor<2x4x40x32xf32>, %v: tensor<2x4x40x48xf32>) -> tensor<2x4x40x48xf32> {
  %o = attn.attention %q, %k, %v : (tensor<2x4x40x32xf32>, tensor<2x4x40x32xf32>, tensor<2x4x40x48xf32>) -> tensor<2x4x40x48xf32>
  return %o : tensor<2x4x40x48xf32>
}

// -----

// Softcap, bias, sinks and the LSE: log2(e) is folded into the constants
// (scale / cap inside tanh, cap·log2 e outside, bias·log2 e); the sink
// initializes the running max (sink·log2 e) and sum (1); the LSE converts back
// with ln 2.
// CHECK-LABEL: func.func @softcap_bias_sinks_lse
// CHECK-DAG: %[[INNER:.+]] = arith.constant 6.250000e-03 : f32
// CHECK-DAG: %[[OUTER:.+]] = arith.constant 72.1347503 : f32
// CHECK-DAG: %[[LOG2E:.+]] = arith.constant 1.44269502 : f32
// CHECK-DAG: %[[LN2:.+]] = arith.constant 0.693147182 : f32
// CHECK: scf.forall {{.*}} shared_outs(%[[O:.+]] = %{{.+}}, %[[LSE:.+]] = %{{.+}})
// CHECK:   %[[SINK:.+]] = tensor.extract %{{.+}}[%{{.+}}] : tensor<8xf32>
// CHECK:   arith.mulf %[[SINK]], %[[LOG2E]]
// CHECK:   scf.for
// CHECK:     %[[BIAS:.+]] = tensor.extract_slice %{{.+}}[0, 0, %{{.+}}, %{{.+}}] [1, 1, %{{.+}}, %{{.+}}] {{.*}} to tensor<?x?xbf16>
// CHECK:     linalg.generic {{.*}} ins(%{{.+}}, %[[BIAS]] : tensor<?x?xf32>, tensor<?x?xbf16>)
// CHECK:       arith.mulf %{{.+}}, %[[INNER]]
// CHECK:       math.tanh
// CHECK:       arith.mulf %{{.+}}, %[[OUTER]]
// CHECK:       arith.extf
// CHECK:       arith.mulf %{{.+}}, %[[LOG2E]]
// CHECK:   math.log2
// CHECK:   arith.mulf %{{.+}}, %[[LN2]]
// CHECK:   scf.forall.in_parallel
// CHECK:     tensor.parallel_insert_slice %{{.+}} into %[[O]]
// CHECK:     tensor.parallel_insert_slice %{{.+}} into %[[LSE]][%{{.+}}, %{{.+}}, %{{.+}}] [1, 1, %{{.+}}] [1, 1, 1] : tensor<?xf32> into tensor<2x8x64xf32>
func.func @softcap_bias_sinks_lse(%q: tensor<2x8x64x64xbf16>, %k: tensor<2x8x64x64xbf16>, %v: tensor<2x8x64x64xbf16>, %bias: tensor<1x1x64x64xbf16>, %sinks: tensor<8xf32>) -> (tensor<2x8x64x64xbf16>, tensor<2x8x64xf32>) {
  %o, %lse = attn.attention %q, %k, %v bias(%bias) sinks(%sinks) scale = 0.3125 softcap = 50.0 : (tensor<2x8x64x64xbf16>, tensor<2x8x64x64xbf16>, tensor<2x8x64x64xbf16>, tensor<1x1x64x64xbf16>, tensor<8xf32>) -> (tensor<2x8x64x64xbf16>, tensor<2x8x64xf32>)
  return %o, %lse : tensor<2x8x64x64xbf16>, tensor<2x8x64xf32>
}

// -----

// Dynamic batch and lengths in the [B, S, H, D] layout: sizes come from
// tensor.dim, slices index [b, s, h, d].
// CHECK-LABEL: func.func @dynamic_bshd
// CHECK-SAME: (%[[Q:[a-z0-9]+]]: tensor<?x?x4x32xf16>, %[[K:[a-z0-9]+]]: tensor<?x?x2x32xf16>
// CHECK-DAG: %[[B:.+]] = tensor.dim %[[Q]], %c0
// CHECK-DAG: %[[SQ:.+]] = tensor.dim %[[Q]], %c1
// CHECK-DAG: %[[SK:.+]] = tensor.dim %[[K]], %c1
// CHECK: %[[NQB:.+]] = arith.ceildivsi %[[SQ]], %c32
// CHECK: scf.forall (%[[IB:.+]], %[[IH:.+]], %[[IQ:.+]]) in (%[[B]], 4, %[[NQB]])
// CHECK:   %[[Q0:.+]] = arith.muli %[[IQ]], %c32
// CHECK:   tensor.extract_slice %[[Q]][%[[IB]], %[[Q0]], %[[IH]], 0] [1, %{{.+}}, 1, 32]
func.func @dynamic_bshd(%q: tensor<?x?x4x32xf16>, %k: tensor<?x?x2x32xf16>, %v: tensor<?x?x2x32xf16>) -> tensor<?x?x4x32xf16> {
  %o = attn.attention %q, %k, %v layout = bshd mask = <causal> : (tensor<?x?x4x32xf16>, tensor<?x?x2x32xf16>, tensor<?x?x2x32xf16>) -> tensor<?x?x4x32xf16>
  return %o : tensor<?x?x4x32xf16>
}

// -----

// A position offset (a block of a sharded sequence) shifts every row's key
// position: off = Sk - Sq + offset = 32 + %off, and the band of the last row
// ends at min(31 + off + 1, Sk) = min(%off + 64, 64).
// CHECK-LABEL: func.func @position_offset
// CHECK-SAME: %[[OFF:[^:]+]]: index)
// CHECK-DAG: %[[C64:.+]] = arith.constant 64 : index
// CHECK: %[[P:.+]] = arith.addi %[[OFF]], %c32 : index
// CHECK: scf.forall
// CHECK:   %[[END:.+]] = arith.addi %[[OFF]], %[[C64]] : index
// CHECK:   arith.minsi %[[END]], %[[C64]] : index
// CHECK:   scf.for
// CHECK:     } else {
// CHECK:       arith.addi %{{.+}}, %[[P]] : index
// CHECK:       arith.cmpi sle
func.func @position_offset(%q: tensor<1x2x32x32xf32>, %k: tensor<1x2x64x32xf32>, %v: tensor<1x2x64x32xf32>, %off: index) -> tensor<1x2x32x32xf32> {
  %o = attn.attention %q, %k, %v position_offset(%off) mask = <causal> : (tensor<1x2x32x32xf32>, tensor<1x2x64x32xf32>, tensor<1x2x64x32xf32>, index) -> tensor<1x2x32x32xf32>
  return %o : tensor<1x2x32x32xf32>
}

// -----

// FP8 (FlashAttention-3's forward): per-(batch, KV head) descales read at
// [b, h / 4]; dq · dk joins the factor of Q·Kᵀ (0.125 · log2 e); P =
// exp2(S - m + 8) is summed into l unrounded and rounded to e4m3 for P·V;
// O = acc / l · dv; the LSE takes the 8 back out.
// CHECK-LABEL: func.func @fp8_gqa_per_head
// CHECK-SAME: (%[[Q:[a-z0-9]+]]: tensor<2x8x64x64xf8E4M3FN>, %{{.+}}, %{{.+}}, %[[DQ:[a-z0-9]+]]: tensor<2x2xf32>, %[[DK:[a-z0-9]+]]: tensor<2x2xf32>, %[[DV:[a-z0-9]+]]: tensor<2x2xf32>)
// CHECK-DAG: %[[EIGHT:.+]] = arith.constant 8.000000e+00 : f32
// CHECK-DAG: %[[FACTOR:.+]] = arith.constant 0.180336878 : f32
// CHECK: scf.forall (%[[IB:.+]], %[[IH:.+]], %{{.+}}) in (2, 8, 2)
// CHECK:   %[[G:.+]] = arith.divui %[[IH]], %c4
// CHECK:   %[[XQ:.+]] = tensor.extract %[[DQ]][%[[IB]], %[[G]]]
// CHECK:   %[[XK:.+]] = tensor.extract %[[DK]][%[[IB]], %[[G]]]
// CHECK:   %[[QK:.+]] = arith.mulf %[[XQ]], %[[XK]]
// CHECK:   %[[F:.+]] = arith.mulf %[[QK]], %[[FACTOR]]
// CHECK:   %[[XV:.+]] = tensor.extract %[[DV]][%[[IB]], %[[G]]]
// CHECK:   scf.for
// CHECK:     linalg.generic {{.*}} ins(%{{.+}}, %{{.+}} : tensor<?x64xf8E4M3FN>, tensor<?x64xf8E4M3FN>)
// CHECK:       arith.extf %{{.+}} : f8E4M3FN to f32
// CHECK:     linalg.generic
// CHECK:       arith.mulf %{{.+}}, %[[F]]
// CHECK:     %[[P:[0-9]+]] = linalg.generic {{.*}} outs(%{{.+}} : tensor<?x?xf32>)
// CHECK-NEXT:  ^bb0
// CHECK-NEXT:    arith.subf
// CHECK-NEXT:    arith.addf %{{.+}}, %[[EIGHT]]
// CHECK-NEXT:    math.exp2
// CHECK:     linalg.generic {{.*}} ins(%[[P]] : tensor<?x?xf32>)
// CHECK:       arith.addf
// CHECK:     %[[P8:.+]] = linalg.generic {{.*}} ins(%[[P]] : tensor<?x?xf32>) outs(%{{.+}} : tensor<?x?xf8E4M3FN>)
// CHECK:       arith.truncf %{{.+}} : f32 to f8E4M3FN
// CHECK:     linalg.generic {{.*}} ins(%[[P8]], %{{.+}} : tensor<?x?xf8E4M3FN>, tensor<?x64xf8E4M3FN>)
// CHECK:   linalg.generic
// CHECK:     arith.divf
// CHECK:     arith.mulf %{{.+}}, %[[XV]]
// CHECK:     arith.truncf %{{.+}} : f32 to bf16
// CHECK:   linalg.generic
// CHECK:     math.log2
// CHECK:     arith.subf %{{.+}}, %[[EIGHT]]
func.func @fp8_gqa_per_head(%q: tensor<2x8x64x64xf8E4M3FN>, %k: tensor<2x2x64x64xf8E4M3FN>, %v: tensor<2x2x64x64xf8E4M3FN>, %dq: tensor<2x2xf32>, %dk: tensor<2x2xf32>, %dv: tensor<2x2xf32>) -> (tensor<2x8x64x64xbf16>, tensor<2x8x64xf32>) {
  %o, %lse = attn.attention %q, %k, %v descale(%dq, %dk, %dv) scale = 0.125 : (tensor<2x8x64x64xf8E4M3FN>, tensor<2x2x64x64xf8E4M3FN>, tensor<2x2x64x64xf8E4M3FN>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>) -> (tensor<2x8x64x64xbf16>, tensor<2x8x64xf32>)
  return %o, %lse : tensor<2x8x64x64xbf16>, tensor<2x8x64xf32>
}

// -----

// FP8 with per-tensor descales (read without indices; one value here, so
// one read after CSE) and sinks: the sink's term in l is 2^8, as P's offset
// makes it.
// CHECK-LABEL: func.func @fp8_per_tensor_sinks
// CHECK-DAG: %[[L0:.+]] = arith.constant 2.560000e+02 : f32
// CHECK: scf.forall
// CHECK:   tensor.extract %{{.+}}[] : tensor<f32>
// CHECK:   linalg.fill ins(%[[L0]] : f32)
func.func @fp8_per_tensor_sinks(%q: tensor<1x4x32x64xf8E4M3FN>, %sinks: tensor<4xf32>, %d: tensor<f32>) -> tensor<1x4x32x64xf32> {
  %o = attn.attention %q, %q, %q sinks(%sinks) descale(%d, %d, %d) : (tensor<1x4x32x64xf8E4M3FN>, tensor<1x4x32x64xf8E4M3FN>, tensor<1x4x32x64xf8E4M3FN>, tensor<4xf32>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<1x4x32x64xf32>
  return %o : tensor<1x4x32x64xf32>
}
