// RUN: attn-opt %s --attn-lower-to-gpu="kernel=auto drop-host specialize-values" --canonicalize | FileCheck %s
// RUN: attn-opt %s --attn-lower-to-gpu="kernel=auto drop-host specialize-values" | FileCheck %s --check-prefix=MANIFEST
// RUN: not attn-opt %s --attn-lower-to-gpu="kernel=mma specialize-values" 2>&1 | FileCheck %s --check-prefix=INELIGIBLE
// RUN: not attn-opt %s --attn-lower-to-gpu="kernel=fast specialize-values" 2>&1 | FileCheck %s --check-prefix=BADKIND
// RUN: not attn-opt %s --attn-lower-to-gpu="kernel=auto block-q=96 specialize-values" 2>&1 | FileCheck %s --check-prefix=BADQ
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="kernel=auto block-q=64 block-kv=32 drop-host specialize-values" | FileCheck %s --check-prefix=SIZES
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="kernel=auto block-kv=128 drop-host specialize-values" 2>&1 | FileCheck %s --check-prefix=TOOBIG

// The tensor-core kernel: shared memory is one dynamic, 1024-aligned
// workgroup array viewed as the Q tile (128 rows at head dim 64) and two
// stages of K and V (64 keys); Q, K, V tiles are staged by cp.async (16
// bytes, L2 only), Q fragments by ldmatrix x4, K by ldmatrix x4 (two key
// tiles per load), V by ldmatrix.trans x4, m16n8k16 mma.sync for both
// products, quad shuffles for the row maxima and sums. Key blocks inside the
// band for every row of the block skip the per-element mask.
// CHECK-LABEL: gpu.module @attn_f16_d64_dv64_bhsd_causal_s3e000000_mma
// CHECK: memref.global "public" @attn_dynamic_shared_memory : memref<0xi8, #gpu.address_space<workgroup>> {alignment = 1024 : i64}
// CHECK: gpu.func @attn_f16_d64_dv64_bhsd_causal_s3e000000_mma(
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK: %[[SMEM:.+]] = memref.get_global @attn_dynamic_shared_memory
// CHECK: %[[QS:.+]] = memref.view %[[SMEM]][%c0][] : memref<0xi8, #gpu.address_space<workgroup>> to memref<128x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[KS:.+]] = memref.view %[[SMEM]][%c16384][] : {{.*}} to memref<2x64x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[VS:.+]] = memref.view %[[SMEM]][%c32768][] : {{.*}} to memref<2x64x64xf16, #gpu.address_space<workgroup>>
// Q by cp.async, 16 bytes per copy, zero-filled past Sq: 128 x 64 / (128 x 8).
// CHECK-COUNT-8: nvgpu.device_async_copy %{{.+}}[%{{.+}}], %[[QS]][%{{.+}}, %{{.+}}], 8, %{{.+}} {bypassL1} : memref<?xf16> to memref<128x64xf16, #gpu.address_space<workgroup>>
// CHECK: nvgpu.device_async_create_group
// CHECK: nvgpu.device_async_wait %{{.+}} {numGroups = 0 : i32}
// CHECK: gpu.barrier
// Two row tiles of 16 per warp, 4 k-steps each, loaded once.
// CHECK-COUNT-8: nvgpu.ldmatrix %[[QS]][{{.+}}] {numTiles = 4 : i32, transpose = false} : memref<128x64xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// Two-stage K/V pipeline: the prologue fills stage 0; each step waits for its
// stage, then prefetches the next tile into the other one.
// CHECK: nvgpu.device_async_copy %{{.+}}, %[[KS]][%c0, %{{.+}}, %{{.+}}]
// CHECK: nvgpu.device_async_copy %{{.+}}, %[[VS]][%c0, %{{.+}}, %{{.+}}]
// CHECK: scf.for %[[KB:.+]] = {{.*}} iter_args
// CHECK:   %[[STAGE:.+]] = arith.remui
// CHECK:   nvgpu.device_async_wait %{{.+}} {numGroups = 0 : i32}
// CHECK:   gpu.barrier
// CHECK:   nvgpu.device_async_copy %{{.+}}, %[[KS]][%[[OTHER:[^,]+]], %{{.+}}, %{{.+}}]
// CHECK:   nvgpu.device_async_copy %{{.+}}, %[[VS]][%[[OTHER]], %{{.+}}, %{{.+}}]
// The unmasked step (a block fully inside the band), then the masked one.
// CHECK:   %[[FULL:.+]] = arith.andi
// CHECK:   scf.if %[[FULL]] -> (f32, f32, f32, f32, f32, f32, f32, f32, vector<2x2xf32>
// CHECK:     nvgpu.ldmatrix %[[KS]][%[[STAGE]], {{.+}}] {numTiles = 4 : i32, transpose = false}
// CHECK:     nvgpu.mma.sync({{.+}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// CHECK-NOT:   arith.select
// CHECK:     gpu.shuffle  xor
// CHECK:     math.exp2
// CHECK:     nvgpu.ldmatrix %[[VS]][%[[STAGE]], {{.+}}] {numTiles = 4 : i32, transpose = true}
// CHECK:     nvgpu.mma.sync
// CHECK:   } else {
// CHECK:     nvgpu.ldmatrix %[[KS]][%[[STAGE]], {{.+}}] {numTiles = 4 : i32, transpose = false}
// CHECK:     arith.cmpi slt
// CHECK:     arith.select
// CHECK:     gpu.shuffle  xor
// CHECK:     nvgpu.ldmatrix %[[VS]][%[[STAGE]], {{.+}}] {numTiles = 4 : i32, transpose = true}
// CHECK: nvgpu.device_async_wait %{{.+}} {numGroups = 0 : i32}
// CHECK: gpu.shuffle  xor
// CHECK-NOT: nvgpu.mma.sync
// The output in pairs of columns (4-byte stores).
// CHECK: vector.store %{{.+}}, %{{.+}}[%{{.+}}] {alignment = 4 : i64} : memref<?xf16>, vector<2xf16>
// CHECK: gpu.return

// The calling contract: 128-row blocks, 48 KB of dynamic shared memory.
// MANIFEST: attn_f16_d64_dv64_bhsd_causal_s3e000000_mma = {block = [128, 1, 1], dynamic_shared_memory = 49152 : i64,{{.*}} grid = [{ceil_div = ["Sq", 128]}, "Hq", "B"], kernel = "mma.sync",{{.*}} tile = {block_kv = 64 : i64, block_q = 128 : i64, stages = 2 : i64}

// bf16 uses nvvm.mma.sync directly (nvgpu.mma.sync rejects bf16), the rows
// of the fragments packed into i32 registers.
// CHECK-LABEL: gpu.func @attn_bf16_d64_dv64_bhsd_none_s3e000000_mma(
// CHECK: nvgpu.ldmatrix {{.*}} -> vector<4x2xbf16>
// CHECK: vector.bitcast %{{.+}} : vector<2xbf16> to vector<1xi32>
// CHECK: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>}
// CHECK: gpu.return

// f32 falls back to the baseline kernel under auto.
// CHECK-LABEL: gpu.func @attn_f32_d64_dv64_bhsd_none_s3e000000(
// CHECK-NOT: mma.sync
// CHECK: gpu.return

// INELIGIBLE: error: 'attn.attention' op the tensor-core kernel needs f16 or bf16
// BADQ: error: 'attn.attention' op block-q must be 64 or 128, got 96
// BADKIND: error: attn-lower-to-gpu: kernel must be baseline, mma, wgmma or auto, got 'fast'
func.func @three(%q: tensor<1x8x100x64xf16>, %k: tensor<1x2x100x64xf16>, %b: tensor<1x8x100x64xbf16>,
                 %f: tensor<1x8x100x64xf32>)
    -> (tensor<1x8x100x64xf16>, tensor<1x8x100x64xbf16>, tensor<1x8x100x64xf32>) {
  %o = attn.attention %q, %k, %k mask = <causal> : (tensor<1x8x100x64xf16>, tensor<1x2x100x64xf16>, tensor<1x2x100x64xf16>) -> tensor<1x8x100x64xf16>
  %p = attn.attention %b, %b, %b : (tensor<1x8x100x64xbf16>, tensor<1x8x100x64xbf16>, tensor<1x8x100x64xbf16>) -> tensor<1x8x100x64xbf16>
  %r = attn.attention %f, %f, %f : (tensor<1x8x100x64xf32>, tensor<1x8x100x64xf32>, tensor<1x8x100x64xf32>) -> tensor<1x8x100x64xf32>
  return %o, %p, %r : tensor<1x8x100x64xf16>, tensor<1x8x100x64xbf16>, tensor<1x8x100x64xf32>
}

// -----

// Head dim 256: 64-row blocks and 32 keys by default; block sizes from the
// options are part of the kernel's name. A tiling beyond the shared memory
// of a block is an error.
// SIZES: = {block = [128, 1, 1], dynamic_shared_memory = 98304 : i64,
// SIZES-LABEL: gpu.func @attn_bf16_d256_dv256_bhsd_window_l128_r0_s3d800000_mma_q64_kv32(
// SIZES: memref.view {{.*}} to memref<64x256xbf16, #gpu.address_space<workgroup>>
// SIZES: memref.view {{.*}} to memref<2x32x256xbf16, #gpu.address_space<workgroup>>
// SIZES: memref.view {{.*}} to memref<2x32x256xbf16, #gpu.address_space<workgroup>>
// TOOBIG: error: 'attn.attention' op the tiles need 294912 bytes of shared memory, more than 232448
func.func @d256(%q: tensor<1x8x100x256xbf16>) -> tensor<1x8x100x256xbf16> {
  %o = attn.attention %q, %q, %q mask = <window, left = 128, right = 0> : (tensor<1x8x100x256xbf16>, tensor<1x8x100x256xbf16>, tensor<1x8x100x256xbf16>) -> tensor<1x8x100x256xbf16>
  return %o : tensor<1x8x100x256xbf16>
}
