// RUN: attn-opt %s --attn-lower-to-gpu="chip=sm_90a kernel=auto drop-host specialize-values" --canonicalize | FileCheck %s
// RUN: attn-opt %s --attn-lower-to-gpu="chip=sm_90a kernel=auto drop-host specialize-values" | FileCheck %s --check-prefix=MANIFEST
// RUN: attn-opt %s --attn-lower-to-gpu="chip=sm_90a kernel=auto drop-host tensor-maps=global specialize-values" | FileCheck %s --check-prefix=GLOBAL
// RUN: attn-opt %s --attn-lower-to-gpu="chip=sm_80 kernel=auto drop-host specialize-values" | FileCheck %s --check-prefix=SM80
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=wgmma drop-host specialize-values" 2>&1 | FileCheck %s --check-prefix=INELIGIBLE

// The sm_90a kernel. Q, K and V come as TMA descriptors (pointers, cast to
// the nvgpu tensor-map type: 4-D boxes of 64 columns x 128 rows, 128-byte
// swizzle); nine mbarriers: per K/V stage a full and an empty barrier for K
// and for V, then Q.
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_s3db504f3_wgmma(
// CHECK-SAME: %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr) kernel attributes {known_block_size = array<i32: 384, 1, 1>}
// CHECK: builtin.unrealized_conversion_cast %{{.+}} : !llvm.ptr to !nvgpu.tensormap.descriptor<tensor = memref<1x1x128x64xbf16, #gpu.address_space<workgroup>>, swizzle = swizzle_128b, l2promo = l2promo_256b, oob = zero, interleave = none>
// Causal: the plain order (query blocks heaviest first, blockIdx.y/z), and
// the blocks dealt longest first within L2-sized groups of heads
// (getCausalBlockOrder): the linear block index, G = min(max(1, 24 MiB /
// (Sk x (D + Dv) x 2 bytes)) x Hq / Hkv, pairs), then the group, its size
// (the last one may be smaller), the heaviness, the pair; query block =
// gridDim.x - 1 - heaviness, head = pair % Hq, batch = pair / Hq. The
// grouped order is taken where query heads share K/V (Hq > Hkv), chosen at
// run time.
// CHECK: %[[PLAINQ:.+]] = arith.subi %{{.+}}, %c1 : index
// CHECK: %[[GX:.+]] = gpu.grid_dim  x
// CHECK: %[[GY:.+]] = gpu.grid_dim  y
// CHECK: %[[PAIRS:.+]] = arith.muli %[[GY]], %{{.+}} : index
// CHECK: %[[LIN:.+]] = arith.addi %block_id_x{{.*}}, %{{.+}} : index
// CHECK: arith.divui %c25165824, %{{.+}} : index
// CHECK: %[[G:.+]] = arith.minui %{{.+}}, %[[PAIRS]] : index
// CHECK: %[[SPAN:.+]] = arith.muli %[[G]], %[[GX]] : index
// CHECK: %[[GROUP:.+]] = arith.divui %[[LIN]], %[[SPAN]] : index
// CHECK: %[[SIZE:.+]] = arith.minui %[[G]], %{{.+}} : index
// CHECK: %[[HEAVY:.+]] = arith.divui %{{.+}}, %[[SIZE]] : index
// CHECK: %[[PAIR:.+]] = arith.addi %{{.+}}, %{{.+}} : index
// CHECK: %[[REV:.+]] = arith.subi %[[GX]], %[[HEAVY]] : index
// CHECK: %[[GQ:.+]] = arith.subi %[[REV]], %c1 : index
// CHECK: %[[GHEAD:.+]] = arith.remui %[[PAIR]], %[[GY]] : index
// CHECK: %[[GBATCH:.+]] = arith.divui %[[PAIR]], %[[GY]] : index
// CHECK: %[[SHARED:.+]] = arith.cmpi ugt, %{{.+}}, %{{.+}} : index
// CHECK: arith.select %[[SHARED]], %[[GQ]], %[[PLAINQ]] : index
// CHECK: %[[HEAD:.+]] = arith.select %[[SHARED]], %[[GHEAD]], %block_id_y : index
// CHECK: %[[BATCH:.+]] = arith.select %[[SHARED]], %[[GBATCH]], %block_id_z : index
// CHECK: %[[BARS:.+]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 9>
// CHECK: nvgpu.mbarrier.init %[[BARS]][%c0], %c1
// CHECK: nvgpu.mbarrier.init %[[BARS]][%c4], %c8
// CHECK: nvvm.fence.mbarrier.init
// CHECK: gpu.barrier
// The producer warpgroup gives registers away; one thread issues Q, then
// each K and each V tile once the consumers released its stage.
// CHECK: scf.if
// CHECK:   nvvm.setmaxregister  decrease 24
// CHECK:   nvgpu.mbarrier.arrive.expect_tx %[[BARS]][%c8], %c32768
// CHECK:   nvgpu.tma.async.load %{{.+}}[%c0, %{{.+}}, %[[HEAD]], %[[BATCH]]], %[[BARS]][%c8]
// CHECK:   nvgpu.tma.async.load %{{.+}}[%c64, %{{.+}}, %[[HEAD]], %[[BATCH]]], %[[BARS]][%c8]
// CHECK:   scf.for
// CHECK:     nvgpu.mbarrier.try_wait.parity
// CHECK:     nvgpu.mbarrier.arrive.expect_tx %[[BARS]][%{{.+}}], %c32768
// CHECK-COUNT-2: nvgpu.tma.async.load
// CHECK:     nvgpu.mbarrier.try_wait.parity
// CHECK:     nvgpu.mbarrier.arrive.expect_tx %[[BARS]][%{{.+}}], %c32768
// CHECK-COUNT-2: nvgpu.tma.async.load
// The consumers take registers, wait for Q, and warpgroup 1 hands the first
// GEMM turn to warpgroup 0 (ping-pong on named barriers 3 and 4).
// CHECK: } else {
// CHECK:   nvvm.setmaxregister  increase 240
// CHECK:   nvgpu.mbarrier.try_wait.parity %[[BARS]][%c8]
// CHECK:   nvvm.barrier.arrive id = %{{.+}} number_of_threads = %c256_i32
// Prologue: in its turn, S_0 = Q·K_0ᵀ (8 wgmma k-steps, K-major B).
// CHECK:   nvvm.barrier id = %{{.+}} number_of_threads = %c256_i32
// CHECK:   nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 128, k = 16>, D[<f32>, {{.+}}], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK:   nvvm.wgmma.commit.group.sync.aligned
// CHECK:   nvvm.barrier.arrive
// CHECK:   nvvm.wgmma.wait.group.sync.aligned 0
// CHECK:   nvgpu.mbarrier.arrive %[[BARS]][%c4]
// The softmax: exp2(s * scale * log2 e - m) as one FMA and ex2.approx.ftz;
// P stays in registers, bf16 pairs packed into 32-bit words (the register-A
// operand of the next P·V), nothing goes through shared memory.
// CHECK:   %[[E:.+]] = math.fma
// CHECK:   llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f32"(%[[E]])
// CHECK:   vector.bitcast {{.+}} : vector<2xbf16> to vector<1xi32>
// CHECK-NOT: vector.store
// CHECK-NOT: nvvm.fence.proxy
// Step j: S_j and O += P_{j-1}·V_{j-1} issued in one turn; P·V takes A (P)
// from registers through InlinePtx.h's wrapper (V MN-major: trans-b 1);
// wait for S_j only (one group may stay in flight), softmax_j, then wait
// for P·V, release V, rescale O.
// CHECK:   scf.for
// CHECK:     nvvm.barrier id
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.+}} B[<bf16>, <one>, <col>]
// CHECK:     nvvm.wgmma.commit.group.sync.aligned
// CHECK:     nvgpu.mbarrier.try_wait.parity
// CHECK:     nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: llvm.inline_asm has_side_effects asm_dialect = att "{\0A.reg .pred p;\0Asetp.ne.b32 p, 1, 0;\0Awgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {$0, {{.+}}, $63}, {$128, $129, $130, $131}, $132, p, 1, 1, 1;\0A}\0A", "=f,{{.+}},=f,0,1,{{.+}},63,r,r,r,r,l"
// CHECK:     nvvm.wgmma.commit.group.sync.aligned
// CHECK:     nvvm.barrier.arrive
// CHECK:     nvvm.wgmma.wait.group.sync.aligned 1
// CHECK:     nvgpu.mbarrier.arrive
// CHECK:     scf.if
// CHECK:     } else {
// CHECK:     nvvm.wgmma.wait.group.sync.aligned 0
// CHECK:     nvgpu.mbarrier.arrive
// Epilogue: the last P·V.
// CHECK:   llvm.inline_asm {{.+}}wgmma.mma_async
// CHECK:   nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: gpu.return

// MANIFEST: block = [384, 1, 1], dynamic_shared_memory = 163840 : i64,
// MANIFEST-SAME: grid = [{ceil_div = ["Sq", 128]}, "Hq", "B"], kernel = "wgmma"
// MANIFEST-SAME: {box = [64, 128], kind = "tensormap", l2_promotion = "256B", name = "q_tma", oob_fill = "zero", passing = "param", role = "tma_descriptor", swizzle = "128B", tensor = "q"}

// tensor-maps=global: the descriptors are pointers to device memory.
// GLOBAL: {box = [64, 128], kind = "tensormap", l2_promotion = "256B", name = "q_tma", oob_fill = "zero", passing = "global", role = "tma_descriptor", swizzle = "128B", tensor = "q"}

// Other chips keep the mma.sync kernel.
// SM80: gpu.func @attn_bf16_d128_dv128_bhsd_causal_s3db504f3_mma(

// INELIGIBLE: error: 'attn.attention' op the wgmma kernel needs head dims of 64, 128, 192 or 256 (64-column panels, at most 256 for wgmma's N)
// INELIGIBLE: error: 'attn.attention' op the wgmma kernel needs f16, bf16 or f8E4M3FN
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
