// RUN: attn-opt %s --attn-lower-to-gpu="chip=sm_90a kernel=auto drop-host" | FileCheck %s

// DeepSeek's MLA prefill (D = 192, Dv = 128) on the sm_90a kernel: Q and K
// in three 64-column panels, V in two; 64 keys per step, since two K and two
// V stages of 128 keys would not fit 227 KB with Q and P (272 KB):
//   Q 128 x 192 x 2 = 49152, a K stage 64 x 192 x 2 = 24576,
//   a V stage 64 x 128 x 2 = 16384, P 2 x 2 x 64 x 64 x 2 = 32768;
//   49152 + 2 x 24576 + 2 x 16384 + 32768 = 163840 bytes.
// CHECK: attn.kernels = {attn_bf16_d192_dv128_bhsd_causal_wgmma = {
// CHECK-SAME: block = [384, 1, 1], dynamic_shared_memory = 163840 : i64
// CHECK-SAME: kernel = "wgmma"
// CHECK-SAME: tile = {block_kv = 64 : i64, block_q = 128 : i64, stages = 2 : i64}
// CHECK-LABEL: gpu.func @attn_bf16_d192_dv128_bhsd_causal_wgmma(
// CHECK:   nvgpu.mbarrier.arrive.expect_tx %{{.+}}, %c49152
// CHECK-COUNT-3: nvgpu.tma.async.load
// CHECK:   scf.for
// CHECK:     nvgpu.mbarrier.arrive.expect_tx %{{.+}}, %c24576
// CHECK-COUNT-3: nvgpu.tma.async.load
// CHECK:     nvgpu.mbarrier.arrive.expect_tx %{{.+}}, %c16384
// CHECK-COUNT-2: nvgpu.tma.async.load
// S = Q·Kᵀ: twelve k-steps of 16 over D = 192, 64 keys wide.
// CHECK-COUNT-12: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 64, k = 16>
// CHECK-NOT: nvvm.wgmma.mma_async
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// O += P·V: four k-steps over the 64 keys, Dv = 128 wide.
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 128, k = 16>
// CHECK: gpu.return
func.func @mla_prefill(%q: tensor<1x128x4096x192xbf16>, %k: tensor<1x128x4096x192xbf16>, %v: tensor<1x128x4096x128xbf16>) -> tensor<1x128x4096x128xbf16> {
  %o = attn.attention %q, %k, %v mask = <causal> : (tensor<1x128x4096x192xbf16>, tensor<1x128x4096x192xbf16>, tensor<1x128x4096x128xbf16>) -> tensor<1x128x4096x128xbf16>
  return %o : tensor<1x128x4096x128xbf16>
}
