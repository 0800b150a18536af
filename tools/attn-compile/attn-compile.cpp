//===- attn-compile.cpp - write PTX kernel bundles ------------------------===//
//
//   attn-compile input.mlir -o bundles/ [--chip=sm_90a] [--opt-level=3]
//                [--no-fuse]
//
// Runs the attn-to-ptx pipeline on a module (attn ops, or unfused attention
// graphs, which are fused first) and writes, for each kernel, <name>.ptx and
// <name>.json: the entry, parameters in order (role, dtype, shape), grid and
// block as functions of the sizes, dynamic shared memory, chip and variant.
//
//===----------------------------------------------------------------------===//

#include "attn/InitAttn.h"
#include "attn/Pipelines/Pipelines.h"
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
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

using namespace mlir;

static llvm::cl::opt<std::string> inputFile(llvm::cl::Positional,
                                            llvm::cl::desc("<input.mlir>"),
                                            llvm::cl::init("-"));
static llvm::cl::opt<std::string>
    outputDir("o", llvm::cl::desc("Directory for the bundles"),
              llvm::cl::value_desc("dir"), llvm::cl::Required);
static llvm::cl::opt<std::string>
    chip("chip", llvm::cl::desc("sm_80, sm_90 or sm_90a"),
         llvm::cl::init("sm_90a"));
static llvm::cl::opt<int> optLevel("opt-level", llvm::cl::init(3),
                                   llvm::cl::desc("LLVM optimization level"));
static llvm::cl::opt<std::string>
    cudaPath("cuda-path", llvm::cl::init(""),
             llvm::cl::desc("CUDA toolkit for libdevice (default: $CUDA_HOME, "
                            "$CUDA_PATH, $CUDA_ROOT or /usr/local/cuda)"));
static llvm::cl::opt<std::string>
    kernel("kernel", llvm::cl::init("auto"),
           llvm::cl::desc("Kernel body: baseline, mma (tensor cores) or auto"));
static llvm::cl::opt<int64_t>
    blockQ("block-q", llvm::cl::init(0),
           llvm::cl::desc("Query rows per block of the tensor-core kernel (64 "
                          "or 128; 0: by head dim)"));
static llvm::cl::opt<int64_t>
    blockKV("block-kv", llvm::cl::init(0),
            llvm::cl::desc("Keys per step of the tensor-core kernel (16, 32, "
                           "64 or 128; 0: by head dim)"));
static llvm::cl::opt<bool> noFuse("no-fuse", llvm::cl::init(false),
                                  llvm::cl::desc("Do not run attn-fuse first"));

int main(int argc, char **argv) {
  mlir::attn::registerVersionPrinter(); // before --version is parsed
  llvm::InitLLVM init(argc, argv);
  llvm::cl::ParseCommandLineOptions(argc, argv, "attn kernel bundle writer\n");
  if (chip != "sm_80" && chip != "sm_90" && chip != "sm_90a") {
    llvm::errs() << "attn-compile: unsupported chip '" << chip
                 << "'; expected sm_80, sm_90 or sm_90a\n";
    return 1;
  }

  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  attn::registerAllAttnDialects(registry);
  MLIRContext context(registry);

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
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return 1;

  PassManager pm(&context);
  attn::AttnToPTXOptions options;
  options.chip = chip;
  options.optLevel = optLevel;
  options.fuse = !noFuse;
  options.cudaPath = cudaPath;
  options.kernel = kernel;
  options.blockQ = blockQ;
  options.blockKV = blockKV;
  attn::buildAttnToPTXPipeline(pm, options);
  if (failed(pm.run(*module)))
    return 1;
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();

  if (std::error_code ec = llvm::sys::fs::create_directories(outputDir)) {
    llvm::errs() << "attn-compile: cannot create " << outputDir << ": "
                 << ec.message() << "\n";
    return 1;
  }
  auto manifests = (*module)->getAttrOfType<DictionaryAttr>("attn.kernels");
  unsigned count = 0;
  for (auto binary : module->getOps<gpu::BinaryOp>()) {
    StringRef name = binary.getName();
    auto object = cast<gpu::ObjectAttr>(binary.getObjects()[0]);
    auto write = [&](StringRef file, StringRef text) -> bool {
      SmallString<128> path(outputDir);
      llvm::sys::path::append(path, file);
      std::unique_ptr<llvm::ToolOutputFile> out =
          openOutputFile(path, &error);
      if (!out) {
        llvm::errs() << "attn-compile: " << error << "\n";
        return false;
      }
      out->os() << text;
      out->keep();
      return true;
    };
    if (!write((name + ".ptx").str(), object.getObject().getValue()))
      return 1;
    llvm::json::Object manifest;
    if (manifests)
      if (auto text = manifests.getAs<StringAttr>(name))
        if (llvm::Expected<llvm::json::Value> parsed =
                llvm::json::parse(text.getValue()))
          if (llvm::json::Object *obj = parsed->getAsObject())
            manifest = std::move(*obj);
    manifest["chip"] = chip.getValue();
    manifest["ptx"] = (name + ".ptx").str();
    manifest["compile_seconds"] = seconds;
    std::string json;
    llvm::raw_string_ostream(json)
        << llvm::formatv("{0:2}", llvm::json::Value(std::move(manifest)));
    if (!write((name + ".json").str(), json + "\n"))
      return 1;
    llvm::outs() << outputDir << "/" << name << ".{ptx,json}\n";
    ++count;
  }
  if (count == 0) {
    llvm::errs() << "attn-compile: no attention found in " << inputFile << "\n";
    return 1;
  }
  return 0;
}
