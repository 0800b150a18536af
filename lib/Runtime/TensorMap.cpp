//===- TensorMap.cpp - cached TMA descriptors for memrefs -----------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// mgpuTensorMapEncodeTiledMemref: the generated host code asks for a device
// copy of a CUtensorMap before every launch of a TMA kernel. Encoding and
// uploading one costs an allocation and a copy; the same tensors come back
// call after call, so descriptors are cached by everything that determines
// them, and a hit costs no CUDA call at all (so a warmed-up program can be
// captured into a CUDA graph).
//
// Uploads: a miss encodes the map into the cache entry (host memory that lives
// as long as the entry) and copies it with cuMemcpyHtoDAsync on the caller's
// stream, where the kernel that reads it is launched next. The driver stages
// pageable host-to-device copies before returning; the runtime does not rely
// on that alone: the entry, and so the host copy, outlives the upload (an
// evicted entry first waits for its upload). Without a caller stream the
// upload goes to the legacy stream and is waited for, since the programs then
// run on runtime-owned non-blocking streams that do not order after it.
//
//===----------------------------------------------------------------------===//

#include "Driver.h"

#include "attn/Runtime/AttnRuntime.h"

#include <cstdint>
#include <cstring>
#include <list>
#include <mutex>
#include <unordered_map>

using namespace attn::runtime;

namespace {

constexpr int kMaxRank = 5;
constexpr size_t kCapacity = 1024;
const char *const kEntry = "mgpuTensorMapEncodeTiledMemref";

/// Everything a descriptor depends on, as one flat array.
struct Key {
  enum {
    Context,
    Base,
    Rank,
    DataType,
    Interleave,
    Swizzle,
    L2Promotion,
    OobFill,
    Sizes,
    Strides = Sizes + kMaxRank,
    Box = Strides + kMaxRank,
    Count = Box + kMaxRank
  };
  int64_t v[Count] = {};
  bool operator==(const Key &other) const {
    return std::memcmp(v, other.v, sizeof(v)) == 0;
  }
};

struct KeyHash {
  size_t operator()(const Key &key) const {
    uint64_t h = 1469598103934665603ull; // FNV-1a over the words
    for (int64_t word : key.v)
      h = (h ^ uint64_t(word)) * 1099511628211ull;
    return size_t(h ^ (h >> 29));
  }
};

struct Entry {
  Key key;
  CUtensorMap host;           // the encoded map, the upload's source
  CUdeviceptr allocation = 0; // the device buffer holding `device`
  CUdeviceptr device = 0;     // the map, 64-byte aligned as TMA requires
  CUstream stream = nullptr;  // the upload's stream
  CUevent uploaded = nullptr; // recorded after the upload; null once done
  bool otherStreams = false;  // used from a stream other than `stream`
};

/// Most recently used first. Never destroyed (see AttnRuntime.cpp).
struct Cache {
  std::mutex mutex;
  std::list<Entry> entries;
  std::unordered_map<Key, std::list<Entry>::iterator, KeyHash> index;
};

Cache &cache() {
  static Cache *c = new Cache;
  return *c;
}

int64_t elementSize(int64_t dataType) {
  switch (dataType) {
  case CU_TENSOR_MAP_DATA_TYPE_UINT8:
    return 1;
  case CU_TENSOR_MAP_DATA_TYPE_UINT16:
  case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
  case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16:
    return 2;
  case CU_TENSOR_MAP_DATA_TYPE_UINT32:
  case CU_TENSOR_MAP_DATA_TYPE_INT32:
  case CU_TENSOR_MAP_DATA_TYPE_FLOAT32:
  case CU_TENSOR_MAP_DATA_TYPE_FLOAT32_FTZ:
  case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32:
  case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32_FTZ:
    return 4;
  case CU_TENSOR_MAP_DATA_TYPE_UINT64:
  case CU_TENSOR_MAP_DATA_TYPE_INT64:
  case CU_TENSOR_MAP_DATA_TYPE_FLOAT64:
    return 8;
  default:
    return 0; // the sub-byte types have no memref element to match
  }
}

/// Reads the ranked memref descriptor {allocated, aligned, offset,
/// sizes[rank], strides[rank]} into `key`, checking what TMA requires.
/// Returns false with an error recorded, or with `empty` set (no error) when
/// a dimension is 0.
bool makeKey(Key &key, int64_t rank, const void *descriptor, int64_t dataType,
             const int64_t *box, bool &empty) {
  int64_t size = elementSize(dataType);
  if (rank < 1 || rank > kMaxRank || !descriptor || !box || size == 0) {
    recordError("%s: unsupported rank %lld or data type %lld, or a null "
                "descriptor or box",
                kEntry, (long long)rank, (long long)dataType);
    return false;
  }
  const char *bytes = static_cast<const char *>(descriptor);
  char *aligned;
  int64_t offset, sizes[kMaxRank], strides[kMaxRank];
  std::memcpy(&aligned, bytes + sizeof(void *), sizeof(void *));
  std::memcpy(&offset, bytes + 2 * sizeof(void *), sizeof(int64_t));
  std::memcpy(sizes, bytes + 2 * sizeof(void *) + 8, rank * 8);
  std::memcpy(strides, bytes + 2 * sizeof(void *) + 8 + rank * 8, rank * 8);
  auto base = reinterpret_cast<uintptr_t>(aligned + offset * size);
  key.v[Key::Base] = int64_t(base);
  key.v[Key::Rank] = rank;
  key.v[Key::DataType] = dataType;
  empty = false;
  for (int64_t i = 0; i < rank; ++i) {
    key.v[Key::Sizes + i] = sizes[i];
    key.v[Key::Strides + i] = strides[i];
    key.v[Key::Box + i] = box[i];
    empty |= sizes[i] == 0;
    bool inner = i == rank - 1;
    if (sizes[i] < 0 || sizes[i] > (int64_t(1) << 32) || box[i] < 1 ||
        box[i] > 256 || (inner && strides[i] != 1) ||
        (!inner && (strides[i] <= 0 || strides[i] * size % 16 != 0))) {
      recordError("%s: dimension %lld (size %lld, stride %lld, box %lld) is "
                  "not TMA-compatible: the innermost stride must be 1, the "
                  "others multiples of 16 bytes, boxes 1..256",
                  kEntry, (long long)i, (long long)sizes[i],
                  (long long)strides[i], (long long)box[i]);
      return false;
    }
  }
  if (!empty && base % 16 != 0) {
    recordError("%s: base address %p is not 16-byte aligned", kEntry,
                reinterpret_cast<void *>(base));
    return false;
  }
  return true;
}

/// Encodes `e.key` into `e.host`; dimensions innermost first.
bool encode(const Driver &d, Entry &e) {
  const int64_t *v = e.key.v;
  int64_t rank = v[Key::Rank];
  int64_t size = elementSize(v[Key::DataType]);
  cuuint64_t globalDim[kMaxRank], globalStrides[kMaxRank];
  cuuint32_t boxDim[kMaxRank], elementStrides[kMaxRank];
  for (int64_t i = 0; i < rank; ++i) {
    int64_t dim = rank - 1 - i;
    globalDim[i] = cuuint64_t(v[Key::Sizes + dim]);
    boxDim[i] = cuuint32_t(v[Key::Box + dim]);
    elementStrides[i] = 1;
    if (i < rank - 1)
      globalStrides[i] = cuuint64_t(v[Key::Strides + dim - 1] * size);
  }
  return check(
      d.cuTensorMapEncodeTiled(
          &e.host, CUtensorMapDataType(v[Key::DataType]), cuuint32_t(rank),
          reinterpret_cast<void *>(v[Key::Base]), globalDim, globalStrides,
          boxDim, elementStrides, CUtensorMapInterleave(v[Key::Interleave]),
          CUtensorMapSwizzle(v[Key::Swizzle]),
          CUtensorMapL2promotion(v[Key::L2Promotion]),
          CUtensorMapFloatOOBfill(v[Key::OobFill])),
      "cuTensorMapEncodeTiled",
      "%s: rank %lld, data type %lld, sizes [%lld, %lld, ...], box [%lld, "
      "%lld, ...], interleave %lld, swizzle %lld, l2 %lld, oob %lld",
      kEntry, (long long)rank, (long long)v[Key::DataType],
      (long long)v[Key::Sizes], (long long)v[Key::Sizes + 1],
      (long long)v[Key::Box], (long long)v[Key::Box + 1],
      (long long)v[Key::Interleave], (long long)v[Key::Swizzle],
      (long long)v[Key::L2Promotion], (long long)v[Key::OobFill]);
}

/// Frees the least recently used entry. Its buffer is freed ordered on
/// `stream`; if other streams used it, the context is synchronized first, as
/// they may still be reading it (evictions are rare: 1024 live descriptors).
void evictOne(const Driver &d, Cache &c, CUstream stream) {
  Entry &e = c.entries.back();
  if (e.uploaded) {
    check(d.cuEventSynchronize(e.uploaded), "cuEventSynchronize",
          "%s: eviction", kEntry);
    d.cuEventDestroy(e.uploaded);
  }
  // Not a wait on e.stream: the caller may have destroyed it since.
  if (e.otherStreams || e.stream != stream)
    check(d.cuCtxSynchronize(), "cuCtxSynchronize", "%s: eviction", kEntry);
  check(d.cuMemFreeAsync(e.allocation, stream), "cuMemFreeAsync",
        "%s: eviction", kEntry);
  c.index.erase(e.key);
  c.entries.pop_back();
}

/// Allocates the device copy of `e.host` and uploads it on `stream`.
bool upload(const Driver &d, Entry &e, CUstream stream) {
  constexpr size_t kAlign = 64;
  if (!check(d.cuMemAllocAsync(&e.allocation, sizeof(CUtensorMap) + kAlign,
                               stream),
             "cuMemAllocAsync", "%s", kEntry))
    return false;
  e.device = (e.allocation + kAlign - 1) & ~CUdeviceptr(kAlign - 1);
  e.stream = stream;
  bool ok =
      check(d.cuMemcpyHtoDAsync(e.device, &e.host, sizeof(CUtensorMap), stream),
            "cuMemcpyHtoDAsync", "%s", kEntry);
  if (ok && !stream)
    ok = check(d.cuStreamSynchronize(nullptr), "cuStreamSynchronize", "%s",
               kEntry);
  else if (ok)
    ok = check(d.cuEventCreate(&e.uploaded, CU_EVENT_DISABLE_TIMING),
               "cuEventCreate", "%s", kEntry) &&
         check(d.cuEventRecord(e.uploaded, stream), "cuEventRecord", "%s",
               kEntry);
  if (!ok)
    d.cuMemFreeAsync(e.allocation, stream);
  return ok;
}

/// A hit from another stream than the upload's waits for the upload, until
/// the upload is known to be complete.
void orderAfterUpload(const Driver &d, Entry &e, CUstream stream) {
  if (stream == e.stream)
    return;
  e.otherStreams = true;
  if (!e.uploaded)
    return;
  CUresult r = d.cuEventQuery(e.uploaded);
  if (r == CUDA_SUCCESS) {
    d.cuEventDestroy(e.uploaded);
    e.uploaded = nullptr;
  } else if (stream) {
    check(d.cuStreamWaitEvent(stream, e.uploaded, 0), "cuStreamWaitEvent",
          "%s: waiting for the upload", kEntry);
  } else {
    // No caller stream: the kernel runs on a runtime-owned stream that no
    // wait here could order, so wait on the host (once per entry).
    if (check(d.cuEventSynchronize(e.uploaded), "cuEventSynchronize",
              "%s: waiting for the upload", kEntry)) {
      d.cuEventDestroy(e.uploaded);
      e.uploaded = nullptr;
    }
  }
}

/// Creates the entry for `key`, or returns null with an error recorded.
void *miss(const Driver &d, Cache &c, const Key &key, CUstream stream) {
  CUstreamCaptureStatus capture = CU_STREAM_CAPTURE_STATUS_NONE;
  if (stream && d.cuStreamIsCapturing(stream, &capture) == CUDA_SUCCESS &&
      capture != CU_STREAM_CAPTURE_STATUS_NONE) {
    recordError("%s: new tensor map while the stream is being captured: run "
                "the program once before capturing it",
                kEntry);
    return nullptr;
  }
  c.entries.emplace_front();
  Entry &e = c.entries.front();
  e.key = key;
  if (!encode(d, e) || !upload(d, e, stream)) {
    c.entries.pop_front();
    return nullptr;
  }
  c.index.emplace(key, c.entries.begin());
  while (c.entries.size() > kCapacity)
    evictOne(d, c, stream);
  return reinterpret_cast<void *>(e.device);
}

} // namespace

extern "C" ATTN_RUNTIME_EXPORT void *mgpuTensorMapEncodeTiledMemref(
    int64_t rank, void *descriptor, int64_t dataType, int64_t interleave,
    int64_t swizzle, int64_t l2Promotion, int64_t oobFill, int64_t *boxDims) {
  const Driver *d = enter(kEntry);
  if (!d)
    return nullptr;
  Key key;
  bool empty = false;
  if (!makeKey(key, rank, descriptor, dataType, boxDims, empty) || empty)
    return nullptr; // a zero-size tensor: no kernel can read its map
  CUcontext ctx = nullptr;
  d->cuCtxGetCurrent(&ctx);
  key.v[Key::Context] = int64_t(reinterpret_cast<uintptr_t>(ctx));
  key.v[Key::Interleave] = interleave;
  key.v[Key::Swizzle] = swizzle;
  key.v[Key::L2Promotion] = l2Promotion;
  key.v[Key::OobFill] = oobFill;
  CUstream stream = callerStream();
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.index.find(key);
  if (it == c.index.end())
    return miss(*d, c, key, stream);
  c.entries.splice(c.entries.begin(), c.entries, it->second);
  Entry &e = c.entries.front();
  orderAfterUpload(*d, e, stream);
  return reinterpret_cast<void *>(e.device);
}
