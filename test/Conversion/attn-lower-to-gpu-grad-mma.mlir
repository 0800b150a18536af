// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=mma drop-host" --canonicalize > %t
// RUN: FileCheck %s < %t
// RUN: FileCheck %s --check-prefix=M < %t
// RUN: FileCheck %s --check-prefix=FALLBACK < %t
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=baseline drop-host" | FileCheck %s --check-prefix=BASELINE
// RUN: attn-opt %s --split-input-file --attn-to-ptx="chip=sm_80" | FileCheck %s --check-prefix=PTX

// attn.attention_grad on tensor cores (AttentionGradMmaKernels.cpp): for
// f16/bf16 with head dims that are multiples of 16 up to 128, the dQ kernel
// (which writes Delta) and the key-major dK/dV kernel are mma.sync bodies of
// 4 warps over 64-row tiles, launched in the manifests' "step" order with
// their dynamic shared memory. Other variants (f32, head dims above 128) and
// kernel=baseline keep the thread-per-row kernels.

// Manifests (sorted by name: dkdv before dq). dQ: one block per 64 query
// rows, Q and dO tiles + two K/V stages + lse2 and Delta (49664 bytes at
// head dim 64); dK/dV: one block per 64 keys of a KV head, K and V tiles +
// two stages of Q, dO, LSE and Delta (51200 bytes).
// M: attn_f16_d64_dv64_bhsd_causal_bwd_dkdv_mma = {block = [128, 1, 1], dynamic_shared_memory = 51200 : i64, entry = "attn_f16_d64_dv64_bhsd_causal_bwd_dkdv_mma", grid = [{ceil_div = ["Sk", 64]}, "Hkv", "B"], kernel = "attention_grad.dkdv"{{.*}}step = 1 : i64, tile = {block_kv = 64 : i64, block_q = 64 : i64, body = "mma.sync", stages = 2 : i64}
// M-SAME: attn_f16_d64_dv64_bhsd_causal_bwd_dq_mma = {block = [128, 1, 1], dynamic_shared_memory = 49664 : i64, entry = "attn_f16_d64_dv64_bhsd_causal_bwd_dq_mma", grid = [{ceil_div = ["Sq", 64]}, "Hq", "B"], kernel = "attention_grad.dq"{{.*}}step = 0 : i64, tile = {block_kv = 64 : i64, block_q = 64 : i64, body = "mma.sync"

// dQ: the Q and dO tiles and the first K/V stage by cp.async (16 bytes,
// L2 only); the Q and dO groups waited for (two groups left in flight);
// Delta = rowsum(dO ⊙ O) over two threads a row (one xor shuffle) into the
// workspace; then the key loop: S = Q·Kᵀ and dP = dO·Vᵀ (K, V B fragments
// by ldmatrix), dQ += dS·K (K by ldmatrix.trans).
// CHECK-LABEL: gpu.func @attn_f16_d64_dv64_bhsd_causal_bwd_dq_mma(
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK: %[[SMEM:.+]] = memref.get_global @attn_dynamic_shared_memory
// CHECK: %[[QS:.+]] = memref.view %[[SMEM]][%c0][] : {{.*}} to memref<64x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[DOS:.+]] = memref.view %[[SMEM]][%c8192][] : {{.*}} to memref<64x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[KS:.+]] = memref.view %[[SMEM]][%c16384][] : {{.*}} to memref<2x64x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[VS:.+]] = memref.view %[[SMEM]][%c32768][] : {{.*}} to memref<2x64x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[LSE2S:.+]] = memref.view %[[SMEM]][%c49152][] : {{.*}} to memref<64xf32, #gpu.address_space<workgroup>>
// CHECK: %[[DELTAS:.+]] = memref.view %[[SMEM]][%c49408][] : {{.*}} to memref<64xf32, #gpu.address_space<workgroup>>
// CHECK-COUNT-4: nvgpu.device_async_copy %{{.+}}[%{{.+}}], %[[QS]][%{{.+}}, %{{.+}}], 8, %{{.+}} {bypassL1}
// CHECK: %[[QGROUP:.+]] = nvgpu.device_async_create_group
// CHECK-COUNT-4: nvgpu.device_async_copy %{{.+}}[%{{.+}}], %[[DOS]][%{{.+}}, %{{.+}}], 8, %{{.+}} {bypassL1}
// CHECK: nvgpu.device_async_copy %{{.+}}[%{{.+}}], %[[KS]][%c0, %{{.+}}, %{{.+}}], 8
// CHECK: nvgpu.device_async_copy %{{.+}}[%{{.+}}], %[[VS]][%c0, %{{.+}}, %{{.+}}], 8
// CHECK: nvgpu.device_async_wait %[[QGROUP]] {numGroups = 2 : i32}
// CHECK: gpu.barrier
// CHECK: vector.load %[[DOS]]
// CHECK: gpu.shuffle  xor %{{.+}}, %c1
// CHECK: memref.store %{{.+}}, %[[DELTAS]]
// CHECK: memref.store %{{.+}}, %[[LSE2S]]
// CHECK: gpu.barrier
// CHECK: scf.for
// CHECK: nvgpu.device_async_wait %[[QGROUP]] {numGroups = 0 : i32}
// CHECK: gpu.barrier
// CHECK: nvgpu.ldmatrix %[[KS]][{{.+}}] {numTiles = 4 : i32, transpose = false}
// CHECK: nvgpu.mma.sync
// CHECK: nvgpu.ldmatrix %[[VS]][{{.+}}] {numTiles = 4 : i32, transpose = false}
// CHECK: math.exp2
// CHECK: nvgpu.ldmatrix %[[KS]][{{.+}}] {numTiles = 4 : i32, transpose = true}
// CHECK: nvgpu.mma.sync
// CHECK: vector.store %{{.+}}, %{{.+}}[%{{.+}}] {alignment = 4 : i64} : memref<?xf16>, vector<2xf16>
// CHECK: gpu.return

// dK/dV: K and V tiles, then a loop over (query head of the group, query
// block admitting the keys): Q, dO and the LSE and Delta (4-byte copies)
// of the next one prefetched; Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ (Q, dO B
// fragments by ldmatrix), dV += Pᵀ·dO and dK += dSᵀ·Q (dO, Q by
// ldmatrix.trans).
// CHECK-LABEL: gpu.func @attn_f16_d64_dv64_bhsd_causal_bwd_dkdv_mma(
// CHECK-SAME: %[[B:[a-z0-9]+]]: index, %[[HQ:[a-z0-9]+]]: index, %[[HKV:[a-z0-9]+]]: index
// CHECK: %[[KS2:.+]] = memref.view %{{.+}}[%c0][] : {{.*}} to memref<64x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[VS2:.+]] = memref.view %{{.+}}[%c8192][] : {{.*}} to memref<64x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[QS2:.+]] = memref.view %{{.+}}[%c16384][] : {{.*}} to memref<2x64x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[DOS2:.+]] = memref.view %{{.+}}[%c32768][] : {{.*}} to memref<2x64x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[LSES:.+]] = memref.view %{{.+}}[%c49152][] : {{.*}} to memref<2x128xf32, #gpu.address_space<workgroup>>
// CHECK: %[[DELTAS2:.+]] = memref.view %{{.+}}[%c50176][] : {{.*}} to memref<2x128xf32, #gpu.address_space<workgroup>>
// CHECK: %[[GROUP:.+]] = arith.divui %[[HQ]], %[[HKV]] : index
// The first query head of the block's KV head (getGradBlockIds' under a
// causal mask: the grid's y, or by level where Hq > Hkv).
// CHECK: arith.muli %{{.+}}, %[[GROUP]] : index
// CHECK: %[[COUNT:.+]] = arith.muli %[[GROUP]], %{{.+}} : index
// CHECK: nvgpu.device_async_copy %{{.+}}[%{{.+}}], %[[LSES]][%c0, %{{.+}}], 1, %{{.+}} : memref<?xf32>
// CHECK: nvgpu.device_async_copy %{{.+}}[%{{.+}}], %[[DELTAS2]][%c0, %{{.+}}], 1, %{{.+}} : memref<?xf32>
// CHECK: scf.for %{{.+}} = %c0 to %[[COUNT]] step %c1 iter_args
// CHECK: nvgpu.ldmatrix %[[QS2]][{{.+}}] {numTiles = 4 : i32, transpose = false}
// CHECK: nvgpu.ldmatrix %[[DOS2]][{{.+}}] {numTiles = 4 : i32, transpose = false}
// CHECK: memref.load %[[LSES]]
// CHECK: math.exp2
// CHECK: nvgpu.ldmatrix %[[DOS2]][{{.+}}] {numTiles = 4 : i32, transpose = true}
// CHECK: nvgpu.ldmatrix %[[QS2]][{{.+}}] {numTiles = 4 : i32, transpose = true}
// CHECK: gpu.return

// kernel=baseline keeps the backward on the thread-per-row kernels.
// BASELINE-LABEL: gpu.func @attn_f16_d64_dv64_bhsd_causal_bwd_dq(
// BASELINE-NOT: nvgpu.
// BASELINE: gpu.return
// BASELINE-LABEL: gpu.func @attn_f16_d64_dv64_bhsd_causal_bwd_dkdv(

// PTX: gpu.binary @attn_f16_d64_dv64_bhsd_causal_bwd_dq_mma
// PTX: gpu.binary @attn_f16_d64_dv64_bhsd_causal_bwd_dkdv_mma
func.func @f16_d64_causal(%q: tensor<1x8x100x64xf16>, %k: tensor<1x2x100x64xf16>, %v: tensor<1x2x100x64xf16>,
                          %o: tensor<1x8x100x64xf16>, %lse: tensor<1x8x100xf32>)
    -> (tensor<1x8x100x64xf16>, tensor<1x2x100x64xf16>, tensor<1x2x100x64xf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %o, %lse mask = <causal>
      : (tensor<1x8x100x64xf16>, tensor<1x2x100x64xf16>, tensor<1x2x100x64xf16>,
         tensor<1x8x100x64xf16>, tensor<1x8x100x64xf16>, tensor<1x8x100xf32>)
      -> (tensor<1x8x100x64xf16>, tensor<1x2x100x64xf16>, tensor<1x2x100x64xf16>)
  return %dq, %dk, %dv : tensor<1x8x100x64xf16>, tensor<1x2x100x64xf16>, tensor<1x2x100x64xf16>
}

// -----

// bf16 at head dim 128 (D ≠ Dv allowed), window, softcap, bias, sinks:
// nvvm.mma.sync for bf16, softcap's 1 - tanh² in dS; the sink gradient keeps
// its kernel (step 2).
// M: attn_bf16_d128_dv64_bhsd_window_cap_bias11nnbf16_sinksf32_bwd_dkdv_mma = {block = [128, 1, 1], dynamic_shared_memory = 75776 : i64{{.*}}step = 1
// M-SAME: attn_bf16_d128_dv64_bhsd_window_cap_bias11nnbf16_sinksf32_bwd_dq_mma = {block = [128, 1, 1], dynamic_shared_memory = 74240 : i64{{.*}}step = 0
// M-SAME: attn_bf16_d128_dv64_bhsd_window_cap_bias11nnbf16_sinksf32_bwd_dsinks = {block = [128, 1, 1], dynamic_shared_memory = 0 : i64{{.*}}kernel = "attention_grad.dsinks"{{.*}}step = 2
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv64_bhsd_window_cap_bias11nnbf16_sinksf32_bwd_dq_mma(
// CHECK: nvvm.mma.sync
// CHECK: math.tanh
// CHECK: math.exp2
// CHECK: gpu.return
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv64_bhsd_window_cap_bias11nnbf16_sinksf32_bwd_dkdv_mma(
// CHECK: nvvm.mma.sync
// CHECK: math.tanh
// CHECK: gpu.return
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv64_bhsd_window_cap_bias11nnbf16_sinksf32_bwd_dsinks(
// PTX: gpu.binary @attn_bf16_d128_dv64_bhsd_window_cap_bias11nnbf16_sinksf32_bwd_dq_mma
// PTX: gpu.binary @attn_bf16_d128_dv64_bhsd_window_cap_bias11nnbf16_sinksf32_bwd_dkdv_mma
// PTX: gpu.binary @attn_bf16_d128_dv64_bhsd_window_cap_bias11nnbf16_sinksf32_bwd_dsinks
func.func @bf16_d128_window(%q: tensor<1x4x64x128xbf16>, %k: tensor<1x2x64x128xbf16>, %v: tensor<1x2x64x64xbf16>,
                            %o: tensor<1x4x64x64xbf16>, %lse: tensor<1x4x64xf32>, %bias: tensor<1x1x64x64xbf16>,
                            %sinks: tensor<4xf32>)
    -> (tensor<1x4x64x128xbf16>, tensor<1x2x64x128xbf16>, tensor<1x2x64x64xbf16>, tensor<4xf32>) {
  %dq, %dk, %dv, %ds = attn.attention_grad %q, %k, %v, %o, %o, %lse bias(%bias) sinks(%sinks)
      mask = <window, left = 8, right = 2> softcap = 20.0
      : (tensor<1x4x64x128xbf16>, tensor<1x2x64x128xbf16>, tensor<1x2x64x64xbf16>,
         tensor<1x4x64x64xbf16>, tensor<1x4x64x64xbf16>, tensor<1x4x64xf32>, tensor<1x1x64x64xbf16>,
         tensor<4xf32>)
      -> (tensor<1x4x64x128xbf16>, tensor<1x2x64x128xbf16>, tensor<1x2x64x64xbf16>, tensor<4xf32>)
  return %dq, %dk, %dv, %ds : tensor<1x4x64x128xbf16>, tensor<1x2x64x128xbf16>, tensor<1x2x64x64xbf16>, tensor<4xf32>
}

// -----

// Not on tensor cores: f32, and head dims above 128 (the dK and dV
// accumulators of a warp's keys would not fit its registers).
// FALLBACK-LABEL: gpu.func @attn_f32_d64_dv64_bhsd_none_bwd_dq(
// FALLBACK-NOT: nvgpu.
// FALLBACK: gpu.return
// FALLBACK-LABEL: gpu.func @attn_f32_d64_dv64_bhsd_none_bwd_dkdv(
// FALLBACK-NOT: nvgpu.
// FALLBACK: gpu.return
// PTX: gpu.binary @attn_f32_d64_dv64_bhsd_none_bwd_dq
// PTX-NOT: _mma
// PTX: gpu.binary @attn_f32_d64_dv64_bhsd_none_bwd_dkdv
func.func @f32_d64(%q: tensor<1x2x32x64xf32>, %lse: tensor<1x2x32xf32>)
    -> (tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q, %lse
      : (tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>,
         tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>, tensor<1x2x32xf32>)
      -> (tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>)
  return %dq, %dk, %dv : tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>
}

// -----

// FALLBACK-LABEL: gpu.func @attn_bf16_d256_dv256_bhsd_causal_bwd_dq(
// FALLBACK-NOT: nvgpu.
// FALLBACK: gpu.return
// FALLBACK-LABEL: gpu.func @attn_bf16_d256_dv256_bhsd_causal_bwd_dkdv(
// PTX: gpu.binary @attn_bf16_d256_dv256_bhsd_causal_bwd_dq
// PTX-NOT: _mma
// PTX: gpu.binary @attn_bf16_d256_dv256_bhsd_causal_bwd_dkdv
func.func @bf16_d256(%q: tensor<1x2x32x256xbf16>, %lse: tensor<1x2x32xf32>)
    -> (tensor<1x2x32x256xbf16>, tensor<1x2x32x256xbf16>, tensor<1x2x32x256xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q, %lse mask = <causal>
      : (tensor<1x2x32x256xbf16>, tensor<1x2x32x256xbf16>, tensor<1x2x32x256xbf16>,
         tensor<1x2x32x256xbf16>, tensor<1x2x32x256xbf16>, tensor<1x2x32xf32>)
      -> (tensor<1x2x32x256xbf16>, tensor<1x2x32x256xbf16>, tensor<1x2x32x256xbf16>)
  return %dq, %dk, %dv : tensor<1x2x32x256xbf16>, tensor<1x2x32x256xbf16>, tensor<1x2x32x256xbf16>
}
