// RUN: attn-opt %s --attn-tile="block-q=16 block-kv=32" --canonicalize --cse --split-input-file | FileCheck %s

// GQA (4 query heads over 2 KV heads), causal, D = 32, Dv = 16, sinks: the
// Delta pre-pass, the dQ nest over (batch, head, query block) with its key
// loop stopping at the band, the dK/dV nest over (batch, KV head, key
// block) looping over the group's heads and the query blocks from the
// block's first admitting row, and the sink gradient.
// CHECK-LABEL: func.func @gqa_causal_sinks
// CHECK-SAME: (%[[Q:[^:]+]]: tensor<1x4x64x32xf16>, %[[K:[^:]+]]: tensor<1x2x64x32xf16>, %[[V:[^:]+]]: tensor<1x2x64x16xf16>, %[[O:[^:]+]]: tensor<1x4x64x16xf16>, %[[DO:[^:]+]]: tensor<1x4x64x16xf16>, %[[LSE:[^:]+]]: tensor<1x4x64xf32>, %[[SINKS:[^:]+]]: tensor<4xf32>)
// CHECK-DAG: %[[LOG2E:.+]] = arith.constant 1.44269502 : f32
// CHECK-DAG: %[[NINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK-DAG: %[[SCALE:.+]] = arith.constant 0.176776692 : f32
// Delta = rowsum(dO ⊙ O).
// CHECK: %[[DELTA:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[DO]], %[[O]] :
// dQ.
// (The unit batch dim of the foralls folds away.)
// CHECK: %[[DQ:.+]] = scf.forall (%[[H:.+]], %[[QB:.+]]) in (4, 4) shared_outs(
// CHECK:   %[[Q0:.+]] = arith.muli %[[QB]], %c16
// CHECK:   tensor.extract_slice %[[DELTA]][0, %[[H]], %[[Q0]]]
// CHECK:   tensor.extract_slice %[[LSE]][0, %[[H]], %[[Q0]]]
// lse2 = lse · log2 e, 0 for a row without mass.
// CHECK:     arith.cmpf oeq, %{{.+}}, %[[NINF]]
// CHECK:     arith.mulf %{{.+}}, %[[LOG2E]]
// CHECK:   %[[KVH:.+]] = arith.divui %[[H]], %c2
// CHECK:   %[[UB:.+]] = arith.maxsi %{{.+}}, %c0
// CHECK:   scf.for %[[KB:.+]] = %c0 to %[[UB]] step %c1 iter_args(%{{.+}}) -> (tensor<?x32xf32>)
// CHECK:     tensor.extract_slice %[[K]][0, %[[KVH]],
// CHECK:     scf.if
// CHECK:     math.exp2
// dS = P ⊙ (dP - Delta) · scale.
// CHECK:     arith.subf
// CHECK-NEXT: arith.mulf
// CHECK-NEXT: arith.mulf %{{.+}}, %[[SCALE]]
// CHECK:   arith.truncf %{{.+}} : f32 to f16
// CHECK:   tensor.parallel_insert_slice
// dK, dV.
// CHECK: %[[DKV:.+]]:2 = scf.forall (%[[G:.+]], %[[KB2:.+]]) in (2, 2) shared_outs(
// CHECK:   %[[K0:.+]] = arith.muli %[[KB2]], %c32
// CHECK:   %[[FIRST:.+]] = arith.maxsi %[[K0]], %c0
// CHECK:   %[[QBEGIN:.+]] = arith.floordivsi %[[FIRST]], %c16
// CHECK:   %[[QEND:.+]] = arith.maxsi %[[QBEGIN]], %c4
// CHECK:   %[[H0:.+]] = arith.muli %[[G]], %c2
// CHECK:   %[[H1:.+]] = arith.addi %[[H0]], %c2
// CHECK:   scf.for %[[HH:.+]] = %[[H0]] to %[[H1]] step %c1 iter_args(
// CHECK:     scf.for %{{.+}} = %[[QBEGIN]] to %[[QEND]] step %c1 iter_args(
// CHECK:       tensor.extract_slice %[[Q]][0, %[[HH]],
// CHECK:       tensor.extract_slice %[[DO]][0, %[[HH]],
// CHECK:       math.exp2
// The dV and dK updates: Pᵀ·dO and dSᵀ·Q.
// CHECK:       linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%{{.+}}, %{{.+}} : tensor<?x?xf32>, tensor<?x16xf16>)
// CHECK:       linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%{{.+}}, %{{.+}} : tensor<?x?xf32>, tensor<?x32xf16>)
// CHECK: tensor.parallel_insert_slice
// CHECK: tensor.parallel_insert_slice
// dsinks[h] = -Σ exp(sink - lse) · Delta.
// CHECK: %[[DS:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "reduction"]} ins(%[[SINKS]], %[[LSE]], %[[DELTA]] :
// CHECK:   math.exp
// CHECK:   arith.subf
// CHECK: return %[[DQ]], %[[DKV]]#0, %[[DKV]]#1, %[[DS]]
// CHECK-NOT: attn.attention_grad
func.func @gqa_causal_sinks(%q: tensor<1x4x64x32xf16>, %k: tensor<1x2x64x32xf16>, %v: tensor<1x2x64x16xf16>,
                            %o: tensor<1x4x64x16xf16>, %do: tensor<1x4x64x16xf16>, %lse: tensor<1x4x64xf32>,
                            %sinks: tensor<4xf32>)
    -> (tensor<1x4x64x32xf16>, tensor<1x2x64x32xf16>, tensor<1x2x64x16xf16>, tensor<4xf32>) {
  %dq, %dk, %dv, %ds = attn.attention_grad %q, %k, %v, %o, %do, %lse sinks(%sinks) mask = <causal>
      : (tensor<1x4x64x32xf16>, tensor<1x2x64x32xf16>, tensor<1x2x64x16xf16>,
         tensor<1x4x64x16xf16>, tensor<1x4x64x16xf16>, tensor<1x4x64xf32>, tensor<4xf32>)
      -> (tensor<1x4x64x32xf16>, tensor<1x2x64x32xf16>, tensor<1x2x64x16xf16>, tensor<4xf32>)
  return %dq, %dk, %dv, %ds : tensor<1x4x64x32xf16>, tensor<1x2x64x32xf16>, tensor<1x2x64x16xf16>, tensor<4xf32>
}

// -----

// Only dV is read: the dQ nest is not built; a sliding window bounds the
// query blocks of a key block on both sides; softcap's tanh is recomputed
// for dS.
// CHECK-LABEL: func.func @only_dv_window_softcap
// CHECK: scf.forall (
// CHECK-NOT: scf.forall (
// CHECK: return
func.func @only_dv_window_softcap(%q: tensor<1x2x64x32xf32>, %o: tensor<1x2x64x32xf32>,
                                  %lse: tensor<1x2x64xf32>) -> tensor<1x2x64x32xf32> {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o, %lse mask = <window, left = 8, right = 0> softcap = 30.0
      : (tensor<1x2x64x32xf32>, tensor<1x2x64x32xf32>, tensor<1x2x64x32xf32>,
         tensor<1x2x64x32xf32>, tensor<1x2x64x32xf32>, tensor<1x2x64xf32>)
      -> (tensor<1x2x64x32xf32>, tensor<1x2x64x32xf32>, tensor<1x2x64x32xf32>)
  return %dv : tensor<1x2x64x32xf32>
}

// -----

// Dynamic sizes and the default scale of a dynamic head dim: 1/sqrt(D)
// computed at run time.
// CHECK-LABEL: func.func @dynamic
// CHECK: tensor.dim
// CHECK: math.rsqrt
// CHECK: scf.forall
// CHECK: scf.forall
// CHECK-NOT: attn.attention_grad
func.func @dynamic(%q: tensor<?x?x?x?xbf16>, %lse: tensor<?x?x?xf32>)
    -> (tensor<?x?x?x?xbf16>, tensor<?x?x?x?xbf16>, tensor<?x?x?x?xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q, %lse layout = bshd
      : (tensor<?x?x?x?xbf16>, tensor<?x?x?x?xbf16>, tensor<?x?x?x?xbf16>,
         tensor<?x?x?x?xbf16>, tensor<?x?x?x?xbf16>, tensor<?x?x?xf32>)
      -> (tensor<?x?x?x?xbf16>, tensor<?x?x?x?xbf16>, tensor<?x?x?x?xbf16>)
  return %dq, %dk, %dv : tensor<?x?x?x?xbf16>, tensor<?x?x?x?xbf16>, tensor<?x?x?x?xbf16>
}
