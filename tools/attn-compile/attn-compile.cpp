//===- attn-compile.cpp - write PTX kernel bundles ------------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//   attn-compile input.mlir -o bundles/ [--chip=sm_90a] [--opt-level=3]
//                [--no-fuse]
//   attn-compile --shared model.mlir -o layer.so [--runtime-dir=DIR]
//
// Runs the attn-to-ptx pipeline on a module (attn ops, or unfused attention
// graphs, which are fused first) and writes, for each kernel, <name>.ptx and
// <name>.json: the entry, parameters in order (role, dtype, shape), grid and
// block as functions of the sizes, dynamic shared memory, chip and variant.
//
// With --shared, runs the attn-to-llvm pipeline instead and writes a
// program: layer.so (the host code, its kernels embedded, linked against
// libattn_runtime), layer.h (the C entry points) and layer.json (the same,
// for attn.program in Python).
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/AttnToGPU.h"
#include "attn/Conversion/Manifest.h"
#include "attn/InitAttn.h"
#include "attn/Pipelines/Pipelines.h"
#include "attn/Program/Program.h"
#include "attn/Version.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

using namespace mlir;

static llvm::cl::OptionCategory attnCategory("attn-compile options");

static llvm::cl::opt<std::string>
    inputFile(llvm::cl::Positional, llvm::cl::desc("<input.mlir|spec.json>"),
              llvm::cl::init("-"), llvm::cl::cat(attnCategory));
static llvm::cl::opt<std::string>
    outputDir("o",
              llvm::cl::desc("Directory for the bundles (with --shared: the "
                             "shared library)"),
              llvm::cl::value_desc("dir"), llvm::cl::Required,
              llvm::cl::cat(attnCategory));
static llvm::cl::opt<std::string>
    chip("chip", llvm::cl::desc("Target: sm_80, sm_90 or sm_90a"),
         llvm::cl::init("sm_90a"), llvm::cl::cat(attnCategory));
static llvm::cl::opt<int> optLevel("opt-level", llvm::cl::init(3),
                                   llvm::cl::desc("LLVM optimization level: "
                                                  "0, 1, 2 or 3"),
                                   llvm::cl::cat(attnCategory));
static llvm::cl::opt<std::string>
    cudaPath("cuda-path", llvm::cl::init(""),
             llvm::cl::desc("CUDA toolkit for libdevice (default: $CUDA_HOME, "
                            "$CUDA_PATH, $CUDA_ROOT or /usr/local/cuda)"),
             llvm::cl::cat(attnCategory));
static llvm::cl::opt<std::string> kernel(
    "kernel", llvm::cl::init("auto"),
    llvm::cl::desc("Kernel body: baseline (thread per row), mma (mma.sync "
                   "tensor cores), wgmma (sm_90a TMA + wgmma) or auto (the "
                   "fastest the variant and chip allow)"),
    llvm::cl::cat(attnCategory));
static llvm::cl::opt<bool> requireTensorCores(
    "require-tensor-cores", llvm::cl::init(false),
    llvm::cl::desc("With --kernel=auto, an attention variant that no "
                   "tensor-core kernel takes is an error (default: a remark "
                   "and the baseline kernel)"),
    llvm::cl::cat(attnCategory));
static llvm::cl::opt<int64_t>
    blockQ("block-q", llvm::cl::init(0),
           llvm::cl::desc("Query rows per block of the tensor-core kernel (64 "
                          "or 128; 0: by head dim)"),
           llvm::cl::cat(attnCategory));
static llvm::cl::opt<int64_t>
    blockKV("block-kv", llvm::cl::init(0),
            llvm::cl::desc("Keys per step of the tensor-core kernel (16, 32, "
                           "64 or 128; with --kernel=wgmma, a multiple of 16 "
                           "up to 256; 0: by head dim)"),
            llvm::cl::cat(attnCategory));
static llvm::cl::opt<bool>
    persistent("persistent", llvm::cl::init(false),
               llvm::cl::desc("Dense variants the sm_90a wgmma kernel takes "
                              "with its persistent schedule get it (blocks "
                              "walk the query tiles; a spec's \"persistent\" "
                              "asks for it alone)"),
               llvm::cl::cat(attnCategory));
static llvm::cl::opt<bool> lengthAlternatives(
    "length-alternatives", llvm::cl::init(true),
    llvm::cl::desc("Also compile a dense variant's length alternatives: "
                   "kernels with other tiling, each preferred at some sizes "
                   "(its manifest's \"prefer\"), which the launchers choose "
                   "between at each call (docs/design-length-choice.md)"),
    llvm::cl::cat(attnCategory));
static llvm::cl::opt<std::string> tensorMaps(
    "tensor-maps", llvm::cl::init("param"),
    llvm::cl::desc("How the wgmma kernel takes its TMA descriptors: param "
                   "(128-byte __grid_constant__ parameters the launcher "
                   "passes by value) or global (pointers to descriptors in "
                   "device memory); --shared always uses global"),
    llvm::cl::cat(attnCategory));
static llvm::cl::opt<bool> specInput(
    "spec", llvm::cl::init(false),
    llvm::cl::desc("The input is JSON: a kernel spec or an array of them "
                   "(docs/kernel-spec.md), compiled without any MLIR"),
    llvm::cl::cat(attnCategory));
static llvm::cl::opt<bool> specializeValues(
    "specialize-values", llvm::cl::init(false),
    llvm::cl::desc("Compile the ops' scale, softcap and window extents into "
                   "their kernels (by default dense and paged kernels take "
                   "them as arguments; a --spec says itself, with numbers or "
                   "\"runtime\")"),
    llvm::cl::cat(attnCategory));
static llvm::cl::opt<bool> noFuse("no-fuse", llvm::cl::init(false),
                                  llvm::cl::desc("Do not run attn-fuse first"),
                                  llvm::cl::cat(attnCategory));

/// Bundle files are named after their kernel: a name must be a plain file
/// name (no separator, not . or ..) so that every file lands in the output
/// directory whatever symbol names the input carries.
static llvm::cl::opt<bool> shared(
    "shared", llvm::cl::init(false),
    llvm::cl::desc("Compile the module to a GPU program: a shared library "
                   "with a C entry point per public function (attn-to-llvm), "
                   "its C header and JSON description next to it"),
    llvm::cl::cat(attnCategory));
static llvm::cl::opt<int64_t>
    threads("program-threads", llvm::cl::init(256),
            llvm::cl::desc("With --shared: threads per block of the kernels "
                           "made of the code around attention"),
            llvm::cl::cat(attnCategory));
static llvm::cl::opt<std::string> runtimeDir(
    "runtime-dir", llvm::cl::init(""),
    llvm::cl::desc("With --shared: the directory of libattn_runtime.so "
                   "(default: ../lib from attn-compile)"),
    llvm::cl::cat(attnCategory));

static bool isPlainFileName(StringRef name) {
  return !name.empty() && name != "." && name != ".." &&
         llvm::all_of(name, [](char c) {
           return llvm::isAlnum(c) || c == '_' || c == '.' || c == '-';
         });
}

/// Checks the manifest a kernel carries (the attn.kernels entry of its
/// name) has what a launcher needs; an input may bring its own.
static LogicalResult checkManifest(const llvm::json::Object &manifest,
                                   StringRef name, std::string &why) {
  auto fail = [&](const Twine &msg) {
    why = ("the manifest of kernel '" + name + "' " + msg).str();
    return failure();
  };
  std::optional<StringRef> entry = manifest.getString("entry");
  if (!entry)
    return fail("has no \"entry\"");
  if (*entry != name)
    return fail("names entry '" + *entry + "'");
  for (StringRef key : {"params", "grid", "block"})
    if (!manifest.getArray(key))
      return fail("has no \"" + key + "\" array");
  if (manifest.getArray("grid")->size() != 3 ||
      manifest.getArray("block")->size() != 3)
    return fail("needs 3 grid and 3 block dimensions");
  for (const llvm::json::Value &b : *manifest.getArray("block")) {
    std::optional<int64_t> v = b.getAsInteger();
    if (!v || *v < 1)
      return fail("has a block dimension that is not a positive integer");
  }
  std::optional<int64_t> smem = manifest.getInteger("dynamic_shared_memory");
  if (!smem || *smem < 0)
    return fail("has no non-negative \"dynamic_shared_memory\"");
  for (StringRef key : {"kernel"})
    if (!manifest.getString(key))
      return fail("has no \"" + key + "\"");
  if (!manifest.getObject("variant"))
    return fail("has no \"variant\" object");
  return success();
}

/// A module holding the kernels of the JSON specs in `sourceMgr`'s buffer
/// (one spec or an array of them); null after an error, reported at the
/// file (and the spec's index in an array).
static OwningOpRef<ModuleOp> buildSpecModule(llvm::SourceMgr &sourceMgr,
                                             MLIRContext *ctx) {
  const llvm::MemoryBuffer *buffer = sourceMgr.getMemoryBuffer(1);
  Location fileLoc =
      FileLineColLoc::get(ctx,
                          buffer->getBufferIdentifier() == "<stdin>"
                              ? "-"
                              : buffer->getBufferIdentifier(),
                          1, 1);
  llvm::Expected<llvm::json::Value> json =
      llvm::json::parse(buffer->getBuffer());
  if (!json) {
    emitError(fileLoc) << "attn-compile: not JSON: "
                       << llvm::toString(json.takeError());
    return nullptr;
  }
  // Each spec with its place: the file, and its index in an array.
  struct Item {
    const llvm::json::Value *spec;
    std::string where;
  };
  SmallVector<Item> items;
  if (const llvm::json::Array *array = json->getAsArray()) {
    for (auto [i, v] : llvm::enumerate(*array))
      items.push_back({&v, "spec " + std::to_string(i) + ": "});
  } else {
    items.push_back({&*json, ""});
  }
  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);
  attn::KernelOptions options;
  options.chip = chip;
  options.kernel = kernel;
  options.blockQ = blockQ;
  options.blockKV = blockKV;
  options.lengthAlternatives = lengthAlternatives;
  options.persistent = persistent;
  options.requireTensorCores = requireTensorCores;
  options.tensorMaps = tensorMaps == "global" ? attn::TensorMapPassing::Global
                                              : attn::TensorMapPassing::Param;
  attn::KernelGenerator generator(*module, options);
  for (const Item &item : items) {
    std::string why;
    std::optional<attn::KernelSpec> spec =
        attn::parseKernelSpec(*item.spec, &why);
    if (!spec) {
      emitError(fileLoc) << "attn-compile: " << item.where
                         << "bad kernel spec: " << why;
      return nullptr;
    }
    auto diagnose = [&](DiagnosticSeverity severity) {
      InFlightDiagnostic diag = severity == DiagnosticSeverity::Error
                                    ? emitError(fileLoc)
                                    : emitRemark(fileLoc);
      diag << item.where;
      return diag;
    };
    if (failed(generator.add(*spec, fileLoc, diagnose)))
      return nullptr;
  }
  generator.finish();
  return module;
}

/// The directory of libattn_runtime.so: the option, else ../lib from this
/// executable (the build tree's and an install's layout).
static std::string getRuntimeDir(const char *argv0) {
  if (!runtimeDir.empty())
    return runtimeDir;
  std::string self = llvm::sys::fs::getMainExecutable(
      argv0, reinterpret_cast<void *>(&getRuntimeDir));
  SmallString<128> dir(llvm::sys::path::parent_path(self));
  llvm::sys::path::append(dir, "..", "lib");
  return std::string(dir);
}

/// --shared: the module to a program, its header and its description.
static int writeProgram(ModuleOp module, const char *argv0) {
  FailureOr<SmallVector<attn::ProgramFunction>> functions =
      attn::getProgramFunctions(module);
  if (failed(functions))
    return 1;
  PassManager pm(module.getContext());
  attn::AttnToLLVMOptions options;
  options.chip = chip;
  options.optLevel = optLevel;
  options.fuse = !noFuse;
  options.cudaPath = cudaPath;
  options.kernel = kernel;
  options.requireTensorCores = requireTensorCores;
  options.blockQ = blockQ;
  options.blockKV = blockKV;
  options.lengthAlternatives = lengthAlternatives;
  options.persistent = persistent;
  options.threads = threads;
  options.specializeValues = specializeValues;
  attn::buildAttnToLLVMPipeline(pm, options);
  if (failed(pm.run(module)))
    return 1;
  std::string error;
  SmallString<0> object;
  if (failed(attn::compileProgramObject(module, optLevel, object, &error))) {
    llvm::errs() << "attn-compile: " << error << "\n";
    return 1;
  }
  SmallString<128> objectPath;
  int fd;
  if (std::error_code ec = llvm::sys::fs::createTemporaryFile(
          "attn-program", "o", fd, objectPath)) {
    llvm::errs() << "attn-compile: cannot create a temporary file: "
                 << ec.message() << "\n";
    return 1;
  }
  llvm::FileRemover removeObject(objectPath);
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << object;
  }
  if (failed(attn::linkProgram(objectPath, outputDir, getRuntimeDir(argv0),
                               &error))) {
    llvm::errs() << "attn-compile: " << error << "\n";
    return 1;
  }
  StringRef stem = llvm::sys::path::stem(outputDir);
  SmallString<128> base(outputDir);
  llvm::sys::path::remove_filename(base);
  auto sibling = [&](StringRef extension) {
    SmallString<128> path(base);
    llvm::sys::path::append(path, stem + extension);
    return std::string(path);
  };
  for (auto [path, text] :
       {std::pair<std::string, std::string>{
            sibling(".h"), attn::emitProgramHeader(*functions, stem)},
        {sibling(".json"),
         llvm::formatv("{0:2}", attn::describeProgram(*functions)).str() +
             "\n"}}) {
    std::unique_ptr<llvm::ToolOutputFile> out = openOutputFile(path, &error);
    if (!out) {
      llvm::errs() << "attn-compile: " << error << "\n";
      return 1;
    }
    out->os() << text;
    out->keep();
  }
  llvm::outs() << outputDir << " " << sibling(".h") << " " << sibling(".json")
               << "\n";
  return 0;
}

int main(int argc, char **argv) {
  mlir::attn::registerVersionPrinter(); // before --version is parsed
  llvm::InitLLVM init(argc, argv);
  // --help shows attn-compile's options, not every LLVM backend's.
  llvm::cl::HideUnrelatedOptions(attnCategory);
  llvm::cl::ParseCommandLineOptions(argc, argv, "attn kernel bundle writer\n");
  std::string why;
  if (failed(attn::checkSupportedChip(chip, &why))) {
    llvm::errs() << "attn-compile: " << why << "\n";
    return 1;
  }
  if (kernel != "baseline" && kernel != "mma" && kernel != "wgmma" &&
      kernel != "auto") {
    llvm::errs() << "attn-compile: --kernel must be " << attn::kKernelChoices
                 << ", got '" << kernel << "'\n";
    return 1;
  }
  if (tensorMaps != "param" && tensorMaps != "global") {
    llvm::errs() << "attn-compile: --tensor-maps must be param or global, got '"
                 << tensorMaps << "'\n";
    return 1;
  }
  if (optLevel < 0 || optLevel > 3) {
    llvm::errs() << "attn-compile: --opt-level must be 0, 1, 2 or 3\n";
    return 1;
  }

  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  attn::registerAllAttnDialects(registry);
  MLIRContext context(registry);
  // Diagnostics are located; the op they are attached to is not printed
  // (for an option error that would be the whole module).
  context.printOpOnDiagnostic(false);

  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> input = openInputFile(inputFile, &error);
  if (!input) {
    llvm::errs() << "attn-compile: " << error << "\n";
    return 1;
  }
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  auto start = std::chrono::steady_clock::now();
  OwningOpRef<ModuleOp> module =
      specInput ? buildSpecModule(sourceMgr, &context)
                : parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return 1;
  if (shared) {
    if (specInput) {
      llvm::errs() << "attn-compile: --shared compiles a module, not specs\n";
      return 1;
    }
    return writeProgram(*module, argv[0]);
  }

  PassManager pm(&context);
  attn::AttnToPTXOptions options;
  options.chip = chip;
  options.optLevel = optLevel;
  options.fuse = !noFuse && !specInput;
  options.cudaPath = cudaPath;
  options.kernel = kernel;
  options.requireTensorCores = requireTensorCores;
  options.blockQ = blockQ;
  options.blockKV = blockKV;
  options.lengthAlternatives = lengthAlternatives;
  options.persistent = persistent;
  options.tensorMaps = tensorMaps;
  options.specializeValues = specializeValues;
  attn::buildAttnToPTXPipeline(pm, options);
  if (failed(pm.run(*module)))
    return 1;
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();

  // Every kernel's name and manifest are checked before anything is
  // written, so a bad input leaves no partial bundle directory.
  auto manifests =
      (*module)->getAttrOfType<DictionaryAttr>(attn::kKernelsAttrName);
  SmallVector<std::pair<gpu::BinaryOp, llvm::json::Object>> bundles;
  for (auto binary : module->getOps<gpu::BinaryOp>()) {
    StringRef name = binary.getName();
    if (!isPlainFileName(name)) {
      emitError(binary.getLoc())
          << "attn-compile: kernel name '" << name
          << "' is not a plain file name (letters, digits, _ . -): its "
             "bundle would not stay in "
          << outputDir;
      return 1;
    }
    if (binary.getObjects().size() != 1 ||
        !isa<gpu::ObjectAttr>(binary.getObjects()[0])) {
      emitError(binary.getLoc()) << "attn-compile: gpu.binary @" << name
                                 << " does not hold exactly one PTX object";
      return 1;
    }
    llvm::json::Object manifest;
    if (manifests)
      if (auto dict = manifests.getAs<DictionaryAttr>(name))
        manifest = std::move(*attn::attributeToJSON(dict).getAsObject());
    if (failed(checkManifest(manifest, name, why))) {
      emitError(binary.getLoc()) << "attn-compile: " << why;
      return 1;
    }
    bundles.emplace_back(binary, std::move(manifest));
  }
  if (bundles.empty()) {
    llvm::errs() << "attn-compile: no attention found in " << inputFile << "\n";
    return 1;
  }

  if (std::error_code ec = llvm::sys::fs::create_directories(outputDir)) {
    llvm::errs() << "attn-compile: cannot create " << outputDir << ": "
                 << ec.message() << "\n";
    return 1;
  }
  auto write = [&](StringRef file, StringRef text) -> bool {
    SmallString<128> path(outputDir);
    llvm::sys::path::append(path, file);
    std::unique_ptr<llvm::ToolOutputFile> out = openOutputFile(path, &error);
    if (!out) {
      llvm::errs() << "attn-compile: " << error << "\n";
      return false;
    }
    out->os() << text;
    out->keep();
    return true;
  };
  for (auto &[binary, manifest] : bundles) {
    StringRef name = binary.getName();
    auto object = cast<gpu::ObjectAttr>(binary.getObjects()[0]);
    if (!write((name + ".ptx").str(), object.getObject().getValue()))
      return 1;
    manifest["chip"] = chip.getValue();
    manifest["ptx"] = (name + ".ptx").str();
    manifest["compile_seconds"] = seconds;
    std::string json;
    llvm::raw_string_ostream(json)
        << llvm::formatv("{0:2}", llvm::json::Value(std::move(manifest)));
    if (!write((name + ".json").str(), json + "\n"))
      return 1;
    llvm::outs() << outputDir << "/" << name << ".{ptx,json}\n";
  }
  return 0;
}
