// RUN: attn-opt %s --attn-lower-to-gpu="chip=sm_90a kernel=auto drop-host" | FileCheck %s

// DeepSeek's MLA prefill (D = 192, Dv = 128) on the sm_90a kernel: Q and K
// in three 64-column panels, V in two; 128 keys per step (P stays in
// registers, so two K and two V stages fit 227 KB):
//   Q 128 x 192 x 2 = 49152, a K stage 128 x 192 x 2 = 49152,
//   a V stage 128 x 128 x 2 = 32768;
//   49152 + 2 x 49152 + 2 x 32768 = 212992 bytes.
// CHECK: attn.kernels = {attn_bf16_d192_dv128_bhsd_causal_wgmma = {
// CHECK-SAME: block = [384, 1, 1], dynamic_shared_memory = 212992 : i64
// CHECK-SAME: kernel = "wgmma"
// CHECK-SAME: tile = {block_kv = 128 : i64, block_q = 128 : i64, stages = 2 : i64}
// CHECK-LABEL: gpu.func @attn_bf16_d192_dv128_bhsd_causal_wgmma(
// CHECK:   nvgpu.mbarrier.arrive.expect_tx %{{.+}}, %c49152
// CHECK-COUNT-3: nvgpu.tma.async.load
// CHECK:   scf.for
// CHECK:     nvgpu.mbarrier.arrive.expect_tx %{{.+}}, %c49152
// CHECK-COUNT-3: nvgpu.tma.async.load
// CHECK:     nvgpu.mbarrier.arrive.expect_tx %{{.+}}, %c32768
// CHECK-COUNT-2: nvgpu.tma.async.load
// S = Q·Kᵀ: twelve k-steps of 16 over D = 192, 128 keys wide.
// CHECK-COUNT-12: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 128, k = 16>
// CHECK-NOT: nvvm.wgmma.mma_async
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// O += P·V: eight k-steps over the 128 keys, Dv = 128 wide, P from
// registers.
// CHECK: scf.for
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: llvm.inline_asm {{.+}}wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16
// CHECK: gpu.return
func.func @mla_prefill(%q: tensor<1x128x4096x192xbf16>, %k: tensor<1x128x4096x192xbf16>, %v: tensor<1x128x4096x128xbf16>) -> tensor<1x128x4096x128xbf16> {
  %o = attn.attention %q, %k, %v mask = <causal> : (tensor<1x128x4096x192xbf16>, tensor<1x128x4096x192xbf16>, tensor<1x128x4096x128xbf16>) -> tensor<1x128x4096x128xbf16>
  return %o : tensor<1x128x4096x128xbf16>
}
