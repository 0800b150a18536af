// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=wgmma drop-host" --canonicalize | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=mma drop-host" --canonicalize | FileCheck %s --check-prefix=MMA
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=wgmma drop-host" --canonicalize | FileCheck %s --check-prefix=ND

// The order of the causal backward's blocks (getGradBlockIds), in 32 bits:
// the linear block index is dealt heaviest first within sections of s
// (y, z) pairs, level (L - p0 X) / n of the section at pair p0 holding
// n = min(s, pairs - p0). s is every pair where the query heads of a group
// share K/V (Hq > Hkv, a run-time size), else the pairs whose streamed rows
// fit 40 MiB, a power of two: 40 MiB / 1032 bytes a row = 40642 rows for the
// fused d128 dK/dV kernel (Q, dO, statistics, dQ's f32 accumulator), / 520 =
// 80659 for the deterministic one and mma.sync's (no accumulator), / 512 =
// 81920 for the dQ kernel (K and V), over Sq (dK/dV) or Sk (dQ) rows.
// dK/dV's heaviest key block is the first (level itself), dQ's the last
// query block (X - 1 - level). Without a mask every block does the same work
// and the grid's order is kept.

// CHECK-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_dq_wgmma(
// CHECK-SAME:    %{{[a-z0-9]+}}: index, %[[HQ:[a-z0-9]+]]: index, %[[HKV:[a-z0-9]+]]: index, %[[SQ:[a-z0-9]+]]: index, %[[SK:[a-z0-9]+]]: index
// CHECK-DAG:     %[[GX:.+]] = gpu.grid_dim  x
// CHECK:         %[[SK32:.+]] = arith.index_castui %[[SK]] : index to i32
// CHECK:         %[[ROWS:.+]] = arith.maxui %[[SK32]], %c1_i32 : i32
// CHECK:         arith.divui %c81920_i32, %[[ROWS]] : i32
// CHECK:         %[[SHARED:.+]] = arith.cmpi ugt, %[[HQ]], %[[HKV]] : index
// CHECK:         %[[FIT:.+]] = arith.minui %{{.+}}, %[[PAIRS:.+]] : i32
// CHECK:         %[[S:.+]] = arith.select %[[SHARED]], %[[PAIRS]], %[[FIT]] : i32
// CHECK:         %[[XS:.+]] = arith.muli %{{.+}}, %[[S]] : i32
// CHECK:         %[[SEC:.+]] = arith.divui %[[L:.+]], %[[XS]] : i32
// CHECK:         %[[P0:.+]] = arith.muli %[[SEC]], %[[S]] : i32
// CHECK:         %[[LEFT:.+]] = arith.subi %[[PAIRS]], %[[P0]] : i32
// CHECK:         %[[N:.+]] = arith.minui %[[S]], %[[LEFT]] : i32
// CHECK:         %[[START:.+]] = arith.muli %[[P0]], %{{.+}} : i32
// CHECK:         %[[R:.+]] = arith.subi %[[L]], %[[START]] : i32
// CHECK:         %[[LEVEL:.+]] = arith.divui %[[R]], %[[N]] : i32
// CHECK:         %[[LEVEL64:.+]] = arith.index_castui %[[LEVEL]] : i32 to index
// CHECK:         %[[IN:.+]] = arith.remui %[[R]], %[[N]] : i32
// CHECK:         arith.addi %[[P0]], %[[IN]] : i32
// CHECK:         %[[REV:.+]] = arith.subi %[[GX]], %[[LEVEL64]] : index
// CHECK:         arith.subi %[[REV]], %c1 : index
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_dkdv_wgmma(
// CHECK-SAME:    %{{[a-z0-9]+}}: index, %[[HQ2:[a-z0-9]+]]: index, %[[HKV2:[a-z0-9]+]]: index, %[[SQ2:[a-z0-9]+]]: index
// CHECK:         %[[SQ2_32:.+]] = arith.index_castui %[[SQ2]] : index to i32
// CHECK:         %[[ROWS2:.+]] = arith.maxui %[[SQ2_32]], %c1_i32 : i32
// CHECK:         arith.divui %c80659_i32, %[[ROWS2]] : i32
// CHECK:         %[[SHARED2:.+]] = arith.cmpi ugt, %[[HQ2]], %[[HKV2]] : index
// CHECK:         %[[S2:.+]] = arith.select %[[SHARED2]], %{{.+}}, %{{.+}} : i32
// CHECK:         %[[XS2:.+]] = arith.muli %{{.+}}, %[[S2]] : i32
// CHECK:         arith.divui %{{.+}}, %[[XS2]] : i32
// CHECK:         %[[LEVEL2:.+]] = arith.divui %{{.+}}, %{{.+}} : i32
// CHECK:         %[[LEVEL2_64:.+]] = arith.index_castui %[[LEVEL2]] : i32 to index
// CHECK:         arith.muli %[[LEVEL2_64]], %c128 : index
// ND-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_nd_dkdv_dq_wgmma(
// ND:         arith.divui %c40642_i32, %{{.+}} : i32
// MMA-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_bwd_dkdv_mma(
// MMA-SAME:    %{{[a-z0-9]+}}: index, %[[HQ3:[a-z0-9]+]]: index, %[[HKV3:[a-z0-9]+]]: index
// MMA:         arith.divui %c80659_i32, %{{.+}} : i32
// MMA:         %[[SHARED3:.+]] = arith.cmpi ugt, %[[HQ3]], %[[HKV3]] : index
// MMA:         %[[S3:.+]] = arith.select %[[SHARED3]], %{{.+}}, %{{.+}} : i32
// MMA:         %[[XS3:.+]] = arith.muli %{{.+}}, %[[S3]] : i32
// MMA:         arith.divui %{{.+}}, %[[XS3]] : i32
// MMA:         %[[LEVEL3:.+]] = arith.divui %{{.+}}, %{{.+}} : i32
// MMA:         arith.index_castui %[[LEVEL3]] : i32 to index
func.func @causal(%q: tensor<1x8x300x128xbf16>, %k: tensor<1x2x300x128xbf16>, %v: tensor<1x2x300x128xbf16>,
                  %o: tensor<1x8x300x128xbf16>, %lse: tensor<1x8x300xf32>)
    -> (tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %o, %lse mask = <causal>
      : (tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>,
         tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>, tensor<1x8x300xf32>)
      -> (tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>)
  return %dq, %dk, %dv : tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>
}

// -----

// MMA-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_none_bwd_dkdv_mma(
// MMA-NOT:     gpu.grid_dim
// MMA:         gpu.return
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_none_wgmma_bwd_dq_wgmma(
// CHECK-NOT:     gpu.grid_dim
// CHECK:         gpu.return
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_none_wgmma_bwd_dkdv_wgmma(
// CHECK-NOT:     gpu.grid_dim
// CHECK:         gpu.return
func.func @unmasked(%q: tensor<1x8x300x128xbf16>, %k: tensor<1x2x300x128xbf16>, %v: tensor<1x2x300x128xbf16>,
                    %o: tensor<1x8x300x128xbf16>, %lse: tensor<1x8x300xf32>)
    -> (tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %o, %lse
      : (tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>,
         tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>, tensor<1x8x300xf32>)
      -> (tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>)
  return %dq, %dk, %dv : tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>
}

// -----

// The fused set's dK/dV kernel streams dQ's accumulator too: 1032 bytes a row.
func.func @fused(%q: tensor<1x8x300x128xbf16>, %k: tensor<1x8x300x128xbf16>, %v: tensor<1x8x300x128xbf16>,
                 %o: tensor<1x8x300x128xbf16>, %lse: tensor<1x8x300xf32>)
    -> (tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %o, %lse mask = <causal> {deterministic = false}
      : (tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>,
         tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>, tensor<1x8x300xf32>)
      -> (tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>)
  return %dq, %dk, %dv : tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>
}
