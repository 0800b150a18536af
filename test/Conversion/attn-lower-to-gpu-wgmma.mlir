// RUN: attn-opt %s --attn-lower-to-gpu="chip=sm_90a kernel=auto drop-host" --canonicalize | FileCheck %s
// RUN: attn-opt %s --attn-lower-to-gpu="chip=sm_90a kernel=auto drop-host" | FileCheck %s --check-prefix=MANIFEST
// RUN: attn-opt %s --attn-lower-to-gpu="chip=sm_80 kernel=auto drop-host" | FileCheck %s --check-prefix=SM80
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=wgmma drop-host" 2>&1 | FileCheck %s --check-prefix=INELIGIBLE

// The sm_90a kernel. Q, K and V come as TMA descriptors (pointers, cast to
// the nvgpu tensor-map type: 4-D boxes of 64 columns x 128 rows, 128-byte
// swizzle); five mbarriers (full and empty per K/V stage, Q).
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_s3db504f3_wgmma(
// CHECK-SAME: %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr) kernel attributes {known_block_size = array<i32: 384, 1, 1>}
// CHECK: builtin.unrealized_conversion_cast %{{.+}} : !llvm.ptr to !nvgpu.tensormap.descriptor<tensor = memref<1x1x128x64xbf16, #gpu.address_space<workgroup>>, swizzle = swizzle_128b, l2promo = l2promo_256b, oob = zero, interleave = none>
// CHECK: %[[BARS:.+]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 5>
// CHECK: nvgpu.mbarrier.init %[[BARS]][%c0], %c1
// CHECK: nvgpu.mbarrier.init %[[BARS]][%c2], %c8
// CHECK: nvvm.fence.mbarrier.init
// CHECK: gpu.barrier
// The producer warpgroup gives registers away; one thread issues Q, then
// each K/V tile once the consumers released its stage.
// CHECK: scf.if
// CHECK:   nvvm.setmaxregister  decrease 24
// CHECK:   nvgpu.mbarrier.arrive.expect_tx %[[BARS]][%c4], %c32768
// CHECK:   nvgpu.tma.async.load %{{.+}}[%c0, %{{.+}}, %block_id_y, %block_id_z], %[[BARS]][%c4]
// CHECK:   nvgpu.tma.async.load %{{.+}}[%c64, %{{.+}}, %block_id_y, %block_id_z], %[[BARS]][%c4]
// CHECK:   scf.for
// CHECK:     nvgpu.mbarrier.try_wait.parity
// CHECK:     nvgpu.mbarrier.arrive.expect_tx %[[BARS]][%{{.+}}], %c65536
// CHECK-COUNT-4: nvgpu.tma.async.load
// The consumers: S = Q·Kᵀ (8 wgmma k-steps, K-major B), softmax, P to
// shared memory for the async proxy, O += P·V (V MN-major: B <row>), then
// each warp releases the stage.
// CHECK: } else {
// CHECK:   nvvm.setmaxregister  increase 240
// CHECK:   nvgpu.mbarrier.try_wait.parity %[[BARS]][%c4]
// CHECK:   scf.for
// CHECK:     nvgpu.mbarrier.try_wait.parity
// CHECK:     scf.if
// CHECK:       nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 128, k = 16>, D[<f32>, {{.+}}], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK:       nvvm.wgmma.commit.group.sync.aligned
// CHECK:       nvvm.wgmma.wait.group.sync.aligned 0
// CHECK:       gpu.shuffle  xor
// CHECK:       vector.store {{.+}} {alignment = 4 : i64} : memref<8192xbf16, #gpu.address_space<workgroup>>, vector<2xbf16>
// CHECK:       nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK:       nvvm.barrier id = %{{.+}} number_of_threads = %c128_i32
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 128, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <row>]
// CHECK:     } else {
// CHECK:     nvgpu.mbarrier.arrive %[[BARS]]
// CHECK: gpu.return

// MANIFEST: \22block\22:[384,1,1],\22dynamic_shared_memory\22:196608,
// MANIFEST-SAME: \22grid\22:[\22ceil(Sq / 128)\22,\22Hq\22,\22B\22],\22kernel\22:\22wgmma\22
// MANIFEST-SAME: {\22box\22:[64,128],\22kind\22:\22tensormap\22,\22l2_promotion\22:\22256B\22,\22name\22:\22q_tma\22,\22oob_fill\22:\22zero\22,\22role\22:\22tma_descriptor\22,\22swizzle\22:\22128B\22,\22tensor\22:\22q\22}

// Other chips keep the mma.sync kernel.
// SM80: gpu.func @attn_bf16_d128_dv128_bhsd_causal_s3db504f3_mma(

// INELIGIBLE: error: 'attn.attention' op the wgmma kernel needs equal head dims of 64, 128 or 256
// INELIGIBLE: error: 'attn.attention' op the wgmma kernel needs f16 or bf16
func.func @gqa_causal(%q: tensor<1x8x100x128xbf16>, %k: tensor<1x2x100x128xbf16>) -> tensor<1x8x100x128xbf16> {
  %o = attn.attention %q, %k, %k mask = <causal> : (tensor<1x8x100x128xbf16>, tensor<1x2x100x128xbf16>, tensor<1x2x100x128xbf16>) -> tensor<1x8x100x128xbf16>
  return %o : tensor<1x8x100x128xbf16>
}

// -----

func.func @d96(%q: tensor<1x8x100x96xf16>) -> tensor<1x8x100x96xf16> {
  %o = attn.attention %q, %q, %q : (tensor<1x8x100x96xf16>, tensor<1x8x100x96xf16>, tensor<1x8x100x96xf16>) -> tensor<1x8x100x96xf16>
  return %o : tensor<1x8x100x96xf16>
}

// -----

func.func @f32(%q: tensor<1x8x100x64xf32>) -> tensor<1x8x100x64xf32> {
  %o = attn.attention %q, %q, %q : (tensor<1x8x100x64xf32>, tensor<1x8x100x64xf32>, tensor<1x8x100x64xf32>) -> tensor<1x8x100x64xf32>
  return %o : tensor<1x8x100x64xf32>
}
