// RUN: attn-opt %s --attn-lower-to-gpu="drop-host specialize-values" | FileCheck %s --check-prefix=LATENT
// RUN: attn-opt %s --attn-lower-to-gpu="drop-host specialize-values" | FileCheck %s --check-prefix=LATENT-MANIFEST
// RUN: attn-opt %s --attn-lower-to-gpu="drop-host specialize-values chip=sm_90a kernel=auto" | FileCheck %s --check-prefix=WGMMA
// RUN: attn-opt %s --attn-lower-to-gpu="drop-host specialize-values chip=sm_90a kernel=auto" | FileCheck %s --check-prefix=WGMMA-MANIFEST

// DeepSeek MLA's absorbed decode as attn-lower-to-gpu-paged.mlir's @mla, but
// with the values as the first 512 columns of the key rows (a slice of the
// key cache): the latent split kernel, one per row-tile size (16 and 64
// packed query rows; the host picks), 8 warps, no value-cache argument, Q
// [rows, 576] and a two-stage ring of 64 key rows that are both K and V, the
// tiles' cache rows in shared memory.
// LATENT-LABEL: gpu.module @attn_paged_bf16_d576_dv512_nhd_p64_none_s3e0a71de_vk_r16
// LATENT: gpu.func @attn_paged_bf16_d576_dv512_nhd_p64_none_s3e0a71de_vk_r16(%{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xi32>, %{{.+}}: memref<?xi32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index) kernel attributes {known_block_size = array<i32: 256, 1, 1>}
// LATENT: memref.view {{.+}} to memref<16x576xbf16, #gpu.address_space<workgroup>>
// LATENT: memref.view {{.+}} to memref<2x64x576xbf16, #gpu.address_space<workgroup>>
// LATENT: memref.view {{.+}} to memref<16x64xbf16, #gpu.address_space<workgroup>>
// LATENT: memref.view {{.+}} to memref<2x64xi32, #gpu.address_space<workgroup>>
// LATENT: scf.for
// LATENT:   nvgpu.device_async_wait %{{.+}} {numGroups = 0 : i32}
// LATENT:   nvgpu.device_async_copy
// LATENT:   nvvm.mma.sync
// LATENT:   nvgpu.ldmatrix {{.+}} {numTiles = 4 : i32, transpose = true}
// LATENT-LABEL: gpu.module @attn_paged_bf16_d576_dv512_nhd_p64_none_s3e0a71de_vk_r64
// LATENT: memref.view {{.+}} to memref<64x576xbf16, #gpu.address_space<workgroup>>
// LATENT: memref.view {{.+}} to memref<64x64xbf16, #gpu.address_space<workgroup>>
// LATENT-NOT: gpu.module @attn_paged_bf16_d576_dv512_nhd_p64_none_s3e0a71de {
// LATENT-MANIFEST: attn.kernels = {
// LATENT-MANIFEST-SAME: attn_paged_bf16_d576_dv512_nhd_p64_none_s3e0a71de_vk_r16 = {block = [256, 1, 1], dynamic_shared_memory = 169024 : i64, entry = "attn_paged_bf16_d576_dv512_nhd_p64_none_s3e0a71de_vk_r16", grid = [{mul = [{ceil_div = [{mul = [{div = ["Hq", "Hkv"]}, "Sq"]}, 16]}, "Splits"]}, {mul = ["Hkv", 1]}, "B"], kernel = "paged.latent.mma.sync"
// LATENT-MANIFEST-SAME: rows_per_block = 16 : i64,
// LATENT-MANIFEST-SAME: attn_paged_bf16_d576_dv512_nhd_p64_none_s3e0a71de_vk_r64 = {block = [256, 1, 1], dynamic_shared_memory = 230656 : i64,
// LATENT-MANIFEST-SAME: rows_per_block = 64 : i64,
// LATENT-MANIFEST-SAME: values = "key_prefix"
// LATENT-MANIFEST-NOT: v_cache

// On sm_90a (kernel=auto) one kernel on wgmma for any number of rows
// (PagedLatentWgmmaKernel.cpp): 384 threads in three warpgroups, cp.async
// copies tracked by mbarriers (count 128: the producer warpgroup), S = Q·Kᵀ
// as 36 m64n64k16 wgmma from shared memory, P handed to the second
// warpgroup through mbarriers of 128 arrivals.
// WGMMA-NOT: _vk_r16
// WGMMA-LABEL: gpu.module @attn_paged_bf16_d576_dv512_nhd_p64_none_s3e0a71de_vk_wg_r64
// WGMMA: known_block_size = array<i32: 384, 1, 1>
// WGMMA: nvgpu.mbarrier.init %{{.+}}[%{{.+}}], %c128
// WGMMA-COUNT-3: nvgpu.mbarrier.init %{{.+}}[%{{.+}}], %c128
// WGMMA: nvvm.setmaxregister decrease 24
// WGMMA: nvgpu.device_async_copy
// WGMMA: nvvm.cp.async.mbarrier.arrive %{{.+}} {noinc = true}
// WGMMA: nvvm.setmaxregister increase 240
// WGMMA-COUNT-36: nvvm.wgmma.mma_async %{{.+}}, %{{.+}}, %{{.+}}, <m = 64, n = 64, k = 16>
// WGMMA: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// WGMMA: nvgpu.mbarrier.arrive
// WGMMA: nvvm.wgmma.mma_async %{{.+}}, %{{.+}}, %{{.+}}, <m = 64, n = 256, k = 16>
// WGMMA-NOT: nvvm.mma.sync
// WGMMA-MANIFEST: attn.kernels = {
// WGMMA-MANIFEST-NOT: paged.latent.mma.sync
// WGMMA-MANIFEST-SAME: _vk_wg_r64 = {block = [384, 1, 1], dynamic_shared_memory = 229904 : i64,{{.+}}kernel = "paged.latent.wgmma"{{.+}}rows_per_block = 64 : i64
func.func @mla_latent(%q: tensor<2x1x128x576xbf16>, %kc: tensor<10x64x1x576xbf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x128x512xbf16> {
  %vc = tensor.extract_slice %kc[0, 0, 0, 0] [10, 64, 1, 512] [1, 1, 1, 1] : tensor<10x64x1x576xbf16> to tensor<10x64x1x512xbf16>
  %o = attn.paged_attention %q, %kc, %vc, %t, %l scale = 0.1352 : (tensor<2x1x128x576xbf16>, tensor<10x64x1x576xbf16>, tensor<10x64x1x512xbf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x128x512xbf16>
  return %o : tensor<2x1x128x512xbf16>
}
