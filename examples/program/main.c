/* Runs the program compiled from attention_dynamic.mlir from C.
 *
 *   build/bin/attn-compile --shared examples/program/attention_dynamic.mlir \
 *       -o build/programs/attention_dynamic.so
 *   cc -Ibuild/programs -Iinclude examples/program/main.c \
 *       build/programs/attention_dynamic.so -Lbuild/lib -lattn_runtime -lm \
 *       -Wl,-rpath,build/lib -o build/programs/attention_dynamic
 *   build/programs/attention_dynamic [batch] [tokens] [timed calls]
 *
 * Makes random Q, K and V of the given batch and length, calls the program,
 * checks sampled rows of the result against causal GQA attention computed
 * here in double precision, and times back-to-back calls on one stream: the
 * host time per call (what a caller's thread spends) and the time per call
 * on the GPU. Exits non-zero on a mismatch or a runtime error. */

#include "attention_dynamic.h"
#include "attn/Runtime/AttnRuntime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { HQ = 32, HKV = 8, D = 128 };

static float bf16ToFloat(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static uint16_t floatToBf16(float f) { /* round to nearest even */
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  bits += 0x7fff + ((bits >> 16) & 1);
  return (uint16_t)(bits >> 16);
}

static float uniform(void) { /* in [-1, 1] */
  return (float)((double)rand() / RAND_MAX * 2 - 1);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Waits for the stream. The runtime synchronizes a caller's stream only when
 * asked to: programs never do unless their caller wants them to. */
static void synchronize(void *stream) {
  attnRuntimeSetStream(stream, /*synchronize=*/1);
  mgpuStreamSynchronize(stream);
  attnRuntimeSetStream(stream, /*synchronize=*/0);
}

static int check(const char *what) {
  const char *error = attnRuntimeGetError();
  if (!error)
    return 0;
  fprintf(stderr, "%s: %s\n", what, error);
  return 1;
}

/* A dense [b, h, s, d] bf16 tensor on the device, filled from the host. */
static AttnMemRef4_bf16 upload(const uint16_t *host, int64_t b, int64_t h,
                               int64_t s, void *stream) {
  AttnMemRef4_bf16 m;
  uint64_t bytes = (uint64_t)(b * h * s * D) * sizeof(uint16_t);
  m.allocated = m.aligned = mgpuMemAlloc(bytes ? bytes : 2, stream, 0);
  m.offset = 0;
  int64_t sizes[4] = {b, h, s, D};
  int64_t strides[4] = {h * s * D, s * D, D, 1};
  memcpy(m.sizes, sizes, sizeof sizes);
  memcpy(m.strides, strides, sizeof strides);
  if (bytes)
    mgpuMemcpy(m.aligned, (void *)host, bytes, stream);
  return m;
}

/* Output row (batch, token, query head) against the reference. */
static double rowError(const uint16_t *q, const uint16_t *k,
                       const uint16_t *v, const uint16_t *o, int64_t s,
                       int64_t bi, int64_t i, int64_t h) {
  const double scale = 0.0883883461;
  const int64_t kvh = h / (HQ / HKV);
  double *p = malloc(sizeof(double) * (size_t)(i + 1)), max = -INFINITY;
  const uint16_t *qi = q + ((bi * HQ + h) * s + i) * D;
  for (int64_t j = 0; j <= i; ++j) { /* causal, Sq = Sk */
    const uint16_t *kj = k + ((bi * HKV + kvh) * s + j) * D;
    double dot = 0;
    for (int d = 0; d < D; ++d)
      dot += (double)bf16ToFloat(qi[d]) * bf16ToFloat(kj[d]);
    p[j] = dot * scale;
    if (p[j] > max)
      max = p[j];
  }
  double sum = 0, worst = 0;
  for (int64_t j = 0; j <= i; ++j)
    sum += (p[j] = exp(p[j] - max));
  for (int d = 0; d < D; ++d) {
    double ref = 0;
    for (int64_t j = 0; j <= i; ++j)
      ref += p[j] * bf16ToFloat(v[((bi * HKV + kvh) * s + j) * D + d]);
    ref /= sum;
    /* The result is [B, S, Hq * D]. */
    double got = bf16ToFloat(o[(bi * s + i) * HQ * D + h * D + d]);
    double err = fabs(got - ref);
    if (err > worst)
      worst = err;
  }
  free(p);
  return worst;
}

int main(int argc, char **argv) {
  int64_t b = argc > 1 ? atoll(argv[1]) : 2;
  int64_t s = argc > 2 ? atoll(argv[2]) : 1000;
  int calls = argc > 3 ? atoi(argv[3]) : 200;
  if (b < 1 || s < 1 || calls < 1) {
    fprintf(stderr, "usage: %s [batch >= 1] [tokens >= 1] [calls >= 1]\n",
            argv[0]);
    return 2;
  }
  if (!attnRuntimeAvailable()) {
    fprintf(stderr, "no GPU: %s\n",
            attnRuntimeGetError() ? attnRuntimeGetError() : "(no reason)");
    return 77; /* skipped */
  }
  size_t nq = (size_t)(b * HQ * s * D), nkv = (size_t)(b * HKV * s * D);
  uint16_t *q = malloc(nq * 2), *k = malloc(nkv * 2), *v = malloc(nkv * 2),
           *o = malloc(nq * 2);
  srand(1);
  for (size_t i = 0; i < nq; ++i)
    q[i] = floatToBf16(uniform());
  for (size_t i = 0; i < nkv; ++i) {
    k[i] = floatToBf16(uniform());
    v[i] = floatToBf16(uniform());
  }
  void *stream = mgpuStreamCreate();
  attnRuntimeSetStream(stream, /*synchronize=*/0);
  AttnMemRef4_bf16 dq = upload(q, b, HQ, s, stream);
  AttnMemRef4_bf16 dk = upload(k, b, HKV, s, stream);
  AttnMemRef4_bf16 dv = upload(v, b, HKV, s, stream);
  AttnMemRef3_bf16 out;
  _mlir_ciface_attention(&out, &dq, &dk, &dv);
  if (out.sizes[0] != b || out.sizes[1] != s || out.sizes[2] != HQ * D) {
    fprintf(stderr, "result is %lldx%lldx%lld\n", (long long)out.sizes[0],
            (long long)out.sizes[1], (long long)out.sizes[2]);
    return 1;
  }
  mgpuMemcpy(o, out.aligned + out.offset, nq * 2, stream);
  synchronize(stream);
  if (check("first call"))
    return 1;
  attnRuntimeFree(out.allocated);

  /* Sampled rows: the first, the last and some between, every head. */
  double worst = 0;
  int64_t rows[] = {0, s / 3, s / 2, s - 1};
  for (int64_t bi = 0; bi < b; ++bi)
    for (int r = 0; r < 4; ++r)
      for (int64_t h = 0; h < HQ; ++h) {
        double e = rowError(q, k, v, o, s, bi, rows[r], h);
        if (e > worst)
          worst = e;
      }
  /* bf16 output: half an ulp of values below 1 is 2^-9. */
  int ok = worst <= 1.0 / 128;
  printf("batch %lld, %lld tokens: max abs error %.3g over sampled rows: %s\n",
         (long long)b, (long long)s, worst, ok ? "PASS" : "FAIL");

  double start = now();
  for (int i = 0; i < calls; ++i) {
    _mlir_ciface_attention(&out, &dq, &dk, &dv);
    attnRuntimeFree(out.allocated);
  }
  double host = now() - start;
  synchronize(stream);
  double total = now() - start;
  if (check("timed calls"))
    return 1;
  printf("%d calls: %.2f us host time per call, %.2f us per call end to end\n",
         calls, host / calls * 1e6, total / calls * 1e6);
  free(q), free(k), free(v), free(o);
  return ok ? 0 : 1;
}
