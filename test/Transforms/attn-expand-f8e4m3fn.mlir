// RUN: attn-opt %s --attn-expand-f8e4m3fn --split-input-file | FileCheck %s
// arith.extf / arith.truncf of f8E4M3FN become integer arithmetic on the
// bits (python/tests/test_cpu_fp8.py checks every value through
// attn-to-cpu); other conversions are left alone.

// CHECK-LABEL: func.func @extf
// CHECK-SAME: (%[[X:.+]]: f8E4M3FN)
// CHECK: %[[BITS:.+]] = arith.bitcast %[[X]] : f8E4M3FN to i8
// CHECK: arith.extui %[[BITS]] : i8 to i32
// CHECK: arith.uitofp
// CHECK: arith.negf
// CHECK-NOT: arith.extf
// CHECK: return
func.func @extf(%x: f8E4M3FN) -> f32 {
  %y = arith.extf %x : f8E4M3FN to f32
  return %y : f32
}

// -----

// To f16 through f32 (exact).
// CHECK-LABEL: func.func @extf_f16
// CHECK: arith.bitcast %{{.+}} : f8E4M3FN to i8
// CHECK: %[[R:.+]] = arith.truncf %{{.+}} : f32 to f16
// CHECK: return %[[R]]
func.func @extf_f16(%x: f8E4M3FN) -> f16 {
  %y = arith.extf %x : f8E4M3FN to f16
  return %y : f16
}

// -----

// CHECK-LABEL: func.func @truncf
// CHECK-SAME: (%[[X:.+]]: f32)
// CHECK: arith.bitcast %[[X]] : f32 to i32
// CHECK: arith.shrui
// CHECK: %[[C8:.+]] = arith.trunci %{{.+}} : i32 to i8
// CHECK: %[[R:.+]] = arith.bitcast %[[C8]] : i8 to f8E4M3FN
// CHECK-NOT: arith.truncf
// CHECK: return %[[R]]
func.func @truncf(%x: f32) -> f8E4M3FN {
  %y = arith.truncf %x : f32 to f8E4M3FN
  return %y : f8E4M3FN
}

// -----

// From bf16 through f32 (exact, so rounding once).
// CHECK-LABEL: func.func @truncf_bf16
// CHECK: arith.extf %{{.+}} : bf16 to f32
// CHECK: arith.bitcast %{{.+}} : i8 to f8E4M3FN
func.func @truncf_bf16(%x: bf16) -> f8E4M3FN {
  %y = arith.truncf %x : bf16 to f8E4M3FN
  return %y : f8E4M3FN
}

// -----

// Must not fire: f64 sources (rounding through f32 would round twice),
// other FP8 types, other conversions.
// CHECK-LABEL: func.func @untouched
// CHECK: arith.truncf %{{.+}} : f64 to f8E4M3FN
// CHECK: arith.truncf %{{.+}} : f32 to f8E5M2
// CHECK: arith.extf %{{.+}} : f8E5M2 to f32
// CHECK: arith.truncf %{{.+}} : f32 to bf16
// CHECK-NOT: arith.bitcast
func.func @untouched(%a: f64, %b: f32, %c: f8E5M2) -> (f8E4M3FN, f8E5M2, f32, bf16) {
  %0 = arith.truncf %a : f64 to f8E4M3FN
  %1 = arith.truncf %b : f32 to f8E5M2
  %2 = arith.extf %c : f8E5M2 to f32
  %3 = arith.truncf %b : f32 to bf16
  return %0, %1, %2, %3 : f8E4M3FN, f8E5M2, f32, bf16
}
