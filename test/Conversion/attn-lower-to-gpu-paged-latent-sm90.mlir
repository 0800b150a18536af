// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="drop-host chip=sm_90a kernel=auto" | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="drop-host chip=sm_90a kernel=mma" | FileCheck %s --check-prefix=MMA

// Which split kernel a latent cache gets on sm_90a. Head dims in whole
// 64-column panels with Dv split into two (320 / 256 here): the one wgmma
// kernel, whose softcap runs on scaled scores (tanh) and whose window is a
// run-time argument; kernel=mma keeps the two mma.sync kernels.
// CHECK-LABEL: gpu.module @attn_paged_bf16_d320_dv256_hnd_p61_window_cap_vk_wg_r64
// CHECK: known_block_size = array<i32: 384, 1, 1>
// CHECK: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 64, k = 16>
// CHECK: math.tanh
// CHECK: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 128, k = 16>
// CHECK-NOT: window_cap_vk_r16
// MMA: gpu.module @attn_paged_bf16_d320_dv256_hnd_p61_window_cap_vk_r16
// MMA: gpu.module @attn_paged_bf16_d320_dv256_hnd_p61_window_cap_vk_r64
// MMA-NOT: window_cap_vk_wg_r64
func.func @latent_window_softcap(%q: tensor<4x3x32x320xbf16>, %kc: tensor<64x2x61x320xbf16>, %t: tensor<4x40xi32>, %l: tensor<4xi32>) -> tensor<4x3x32x256xbf16> {
  %vc = tensor.extract_slice %kc[0, 0, 0, 0] [64, 2, 61, 256] [1, 1, 1, 1] : tensor<64x2x61x320xbf16> to tensor<64x2x61x256xbf16>
  %o = attn.paged_attention %q, %kc, %vc, %t, %l cache_layout = hnd mask = <window, left = 300, right = 0> scale = 0.0559 softcap = 30.0 : (tensor<4x3x32x320xbf16>, tensor<64x2x61x320xbf16>, tensor<64x2x61x256xbf16>, tensor<4x40xi32>, tensor<4xi32>) -> tensor<4x3x32x256xbf16>
  return %o : tensor<4x3x32x256xbf16>
}

// -----

// Head dims the wgmma kernel does not take (288 is not whole 64-column
// panels): the two mma.sync kernels on sm_90a too.
// CHECK-LABEL: gpu.module @attn_paged_f16_d288_dv256_nhd_p64_causal_vk_r16
// CHECK: nvgpu.mma.sync
// CHECK-LABEL: gpu.module @attn_paged_f16_d288_dv256_nhd_p64_causal_vk_r64
// CHECK-NOT: nvvm.wgmma.mma_async
func.func @latent_d288(%q: tensor<2x1x16x288xf16>, %kc: tensor<8x64x1x288xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x16x256xf16> {
  %vc = tensor.extract_slice %kc[0, 0, 0, 0] [8, 64, 1, 256] [1, 1, 1, 1] : tensor<8x64x1x288xf16> to tensor<8x64x1x256xf16>
  %o = attn.paged_attention %q, %kc, %vc, %t, %l mask = <causal> : (tensor<2x1x16x288xf16>, tensor<8x64x1x288xf16>, tensor<8x64x1x256xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x16x256xf16>
  return %o : tensor<2x1x16x256xf16>
}
