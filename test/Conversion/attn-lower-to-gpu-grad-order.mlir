// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=wgmma drop-host" --canonicalize | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=mma drop-host" --canonicalize | FileCheck %s --check-prefix=MMA

// The order of the causal backward's blocks (getGradBlockIds): where the
// query heads of a group share K/V (Hq > Hkv, a run-time size), the linear
// block index is dealt heaviest first across the grid, in 32 bits: level
// L / (Y Z) of every (y, z) pair. dK/dV's heaviest key block is the first
// (level itself), dQ's the last query block (X - 1 - level). MHA launches
// take the grid's own indices. Without a mask every block does the same
// work and the grid's order is kept. The mma.sync dK/dV kernel is dealt
// the same way (its dQ kernel takes the forward's order).

// CHECK-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_dq_wgmma(
// CHECK-SAME:    %{{[a-z0-9]+}}: index, %[[HQ:[a-z0-9]+]]: index, %[[HKV:[a-z0-9]+]]: index
// CHECK-DAG:     %[[X:.+]] = gpu.block_id  x
// CHECK-DAG:     %[[GX:.+]] = gpu.grid_dim  x
// CHECK:         %[[LEVEL:.+]] = arith.divui %{{.+}}, %{{.+}} : i32
// CHECK:         %[[LEVEL64:.+]] = arith.index_castui %[[LEVEL]] : i32 to index
// CHECK:         %[[REV:.+]] = arith.subi %{{.+}}, %[[LEVEL64]] : index
// CHECK:         %[[SHARED:.+]] = arith.cmpi ugt, %[[HQ]], %[[HKV]] : index
// CHECK:         arith.select %[[SHARED]], %{{.+}}, %[[X]] : index
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_dkdv_wgmma(
// CHECK-SAME:    %{{[a-z0-9]+}}: index, %[[HQ2:[a-z0-9]+]]: index, %[[HKV2:[a-z0-9]+]]: index
// CHECK-DAG:     %[[X2:.+]] = gpu.block_id  x
// CHECK:         %[[LEVEL2:.+]] = arith.divui %{{.+}}, %{{.+}} : i32
// CHECK:         %[[LEVEL2_64:.+]] = arith.index_castui %[[LEVEL2]] : i32 to index
// CHECK:         %[[SHARED2:.+]] = arith.cmpi ugt, %[[HQ2]], %[[HKV2]] : index
// CHECK:         arith.select %[[SHARED2]], %[[LEVEL2_64]], %[[X2]] : index
// MMA-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_bwd_dkdv_mma(
// MMA-SAME:    %{{[a-z0-9]+}}: index, %[[HQ3:[a-z0-9]+]]: index, %[[HKV3:[a-z0-9]+]]: index
// MMA:         %[[LEVEL3:.+]] = arith.divui %{{.+}}, %{{.+}} : i32
// MMA:         %[[LEVEL3_64:.+]] = arith.index_castui %[[LEVEL3]] : i32 to index
// MMA:         %[[SHARED3:.+]] = arith.cmpi ugt, %[[HQ3]], %[[HKV3]] : index
// MMA:         arith.select %[[SHARED3]], %[[LEVEL3_64]], %block_id_x : index
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
