// RUN: attn-opt %s --attn-lower-to-gpu="kernel=auto drop-host" --canonicalize | FileCheck %s
// RUN: not attn-opt %s --attn-lower-to-gpu="kernel=mma" 2>&1 | FileCheck %s --check-prefix=INELIGIBLE
// RUN: not attn-opt %s --attn-lower-to-gpu="kernel=fast" 2>&1 | FileCheck %s --check-prefix=BADKIND

// The tensor-core kernel: Q, K, V tiles of 64 rows staged in workgroup memory
// by cp.async, Q
// fragments by ldmatrix x4, K by ldmatrix x2, V by ldmatrix.trans, m16n8k16
// mma.sync for both products, quad shuffles for the row maxima and sums.
// CHECK-LABEL: gpu.func @attn_f16_d64_dv64_bhsd_causal_s3e000000_mma
// CHECK-SAME: workgroup(%[[QS:.+]] : memref<64x64xf16, #gpu.address_space<workgroup>>, %[[KS:.+]] : memref<2x64x64xf16, #gpu.address_space<workgroup>>, %[[VS:.+]] : memref<2x64x64xf16, #gpu.address_space<workgroup>>)
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// Q by cp.async, 16 bytes per copy, zero-filled past Sq.
// CHECK-COUNT-4: nvgpu.device_async_copy %{{.+}}[%{{.+}}], %[[QS]][%{{.+}}, %{{.+}}], 8, %{{.+}} : memref<?xf16> to memref<64x64xf16, #gpu.address_space<workgroup>>
// CHECK: nvgpu.device_async_create_group
// CHECK: nvgpu.device_async_wait %{{.+}} {numGroups = 0 : i32}
// CHECK: gpu.barrier
// CHECK-COUNT-4: nvgpu.ldmatrix %[[QS]][{{.+}}] {numTiles = 4 : i32, transpose = false} : memref<64x64xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// Two-stage K/V pipeline: the prologue fills stage 0; each step waits for its
// stage, then prefetches the next tile into the other one.
// CHECK: nvgpu.device_async_copy %{{.+}}, %[[KS]][%c0, %{{.+}}, %{{.+}}]
// CHECK: nvgpu.device_async_copy %{{.+}}, %[[VS]][%c0, %{{.+}}, %{{.+}}]
// CHECK: scf.for %[[KB:.+]] = {{.*}} iter_args
// CHECK:   %[[STAGE:.+]] = arith.remui
// CHECK:   nvgpu.device_async_wait %{{.+}} {numGroups = 0 : i32}
// CHECK:   gpu.barrier
// CHECK:   %[[OTHER:.+]] = arith.subi %c1, %[[STAGE]]
// CHECK:   nvgpu.device_async_copy %{{.+}}, %[[KS]][%[[OTHER]], %{{.+}}, %{{.+}}]
// CHECK:   nvgpu.device_async_copy %{{.+}}, %[[VS]][%[[OTHER]], %{{.+}}, %{{.+}}]
// CHECK:   nvgpu.ldmatrix %[[KS]][%[[STAGE]], {{.+}}] {numTiles = 2 : i32, transpose = false}
// CHECK:   nvgpu.mma.sync({{.+}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// CHECK:   gpu.shuffle  xor
// CHECK:   math.exp2
// CHECK:   nvgpu.ldmatrix %[[VS]][%[[STAGE]], {{.+}}] {numTiles = 2 : i32, transpose = true}
// CHECK:   nvgpu.mma.sync
// CHECK: nvgpu.device_async_wait %{{.+}} {numGroups = 0 : i32}
// CHECK: gpu.shuffle  xor
// CHECK-NOT: nvgpu.mma.sync
// CHECK: gpu.return

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

// INELIGIBLE: error: 'attn.attention' op the tensor-core kernel needs f16 or bf16, head dims that are multiples of 16 up to 128 and a known scale
// BADKIND: error: attn-lower-to-gpu: kernel must be baseline, mma or auto, got 'fast'
func.func @three(%q: tensor<1x8x100x64xf16>, %k: tensor<1x2x100x64xf16>, %b: tensor<1x8x100x64xbf16>,
                 %f: tensor<1x8x100x64xf32>)
    -> (tensor<1x8x100x64xf16>, tensor<1x8x100x64xbf16>, tensor<1x8x100x64xf32>) {
  %o = attn.attention %q, %k, %k mask = <causal> : (tensor<1x8x100x64xf16>, tensor<1x2x100x64xf16>, tensor<1x2x100x64xf16>) -> tensor<1x8x100x64xf16>
  %p = attn.attention %b, %b, %b : (tensor<1x8x100x64xbf16>, tensor<1x8x100x64xbf16>, tensor<1x8x100x64xbf16>) -> tensor<1x8x100x64xbf16>
  %r = attn.attention %f, %f, %f : (tensor<1x8x100x64xf32>, tensor<1x8x100x64xf32>, tensor<1x8x100x64xf32>) -> tensor<1x8x100x64xf32>
  return %o, %p, %r : tensor<1x8x100x64xf16>, tensor<1x8x100x64xbf16>, tensor<1x8x100x64xf32>
}
