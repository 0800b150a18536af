//===- ShardToMPI.cpp - partitioned programs on MPI -----------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The two steps around upstream's convert-shard-to-mpi that a partitioned
// (SPMD) module needs to run under mpirun on the CPU: attn-lower-all-slice
// before it, attn-mpi-to-llvm after it (the attn-to-cpu pipeline's `mpi`
// option runs all three).
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/ShardToMPI.h"
#include "attn/Conversion/Passes.h"

#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Conversion/MPIToLLVM/MPIToLLVM.h"
#include "mlir/Dialect/DLTI/DLTI.h"
#include "mlir/Dialect/MPI/IR/MPI.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Shard/Transforms/Transforms.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/DialectConversion.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNLOWERALLSLICE
#define GEN_PASS_DEF_ATTNMPITOLLVM
#include "attn/Conversion/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;

namespace {

/// The DLTI key upstream's MPI lowering reads the implementation from.
constexpr StringLiteral kImplementationKey = "MPI:Implementation";

struct AttnLowerAllSlice
    : public attn::impl::AttnLowerAllSliceBase<AttnLowerAllSlice> {
  void runOnOperation() override {
    SymbolTableCollection symbolTables;
    RewritePatternSet patterns(&getContext());
    shard::populateAllSliceOpLoweringPatterns(patterns, symbolTables);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
    WalkResult left = getOperation().walk([](shard::AllSliceOp op) {
      op.emitOpError("could not be lowered (its grid must have a static "
                     "shape)");
      return WalkResult::interrupt();
    });
    if (left.wasInterrupted())
      signalPassFailure();
  }
};

struct AttnMPIToLLVM : public attn::impl::AttnMPIToLLVMBase<AttnMPIToLLVM> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    auto key = StringAttr::get(ctx, kImplementationKey);
    auto map = module->getAttrOfType<MapAttr>(DLTIDialect::kMapAttrName);
    SmallVector<DataLayoutEntryInterface> entries;
    if (map)
      llvm::append_range(entries, map.getEntries());

    // The implementation: the module's, else the option's.
    if (!map || failed(map.query(key))) {
      std::string name = StringRef(implementation).lower();
      StringRef canonical = name == "mpich"     ? "MPICH"
                            : name == "openmpi" ? "OpenMPI"
                                                : "";
      if (canonical.empty()) {
        module.emitError("unknown MPI implementation '")
            << implementation << "': expected MPICH or OpenMPI";
        return signalPassFailure();
      }
      entries.push_back(
          DataLayoutEntryAttr::get(key, StringAttr::get(ctx, canonical)));
      module->setAttr(DLTIDialect::kMapAttrName, MapAttr::get(ctx, entries));
    }

    LLVMTypeConverter converter(ctx);
    RewritePatternSet patterns(ctx);
    mpi::populateMPIToLLVMConversionPatterns(converter, patterns);
    ConversionTarget target(*ctx);
    target.addLegalDialect<LLVM::LLVMDialect>();
    target.addIllegalDialect<mpi::MPIDialect>();
    if (failed(applyPartialConversion(module, target, std::move(patterns))))
      return signalPassFailure();

    // Consume the entry, and the grids nothing refers to any more.
    llvm::erase_if(entries, [&](DataLayoutEntryInterface entry) {
      return entry.getKey() == DataLayoutEntryKey(key);
    });
    if (entries.empty())
      module->removeAttr(DLTIDialect::kMapAttrName);
    else
      module->setAttr(DLTIDialect::kMapAttrName, MapAttr::get(ctx, entries));
    for (auto grid :
         llvm::make_early_inc_range(module.getOps<shard::GridOp>())) {
      if (!SymbolTable::symbolKnownUseEmpty(grid, module)) {
        grid.emitOpError("is still used after the MPI lowering (run "
                         "shard-partition and convert-shard-to-mpi first)");
        return signalPassFailure();
      }
      grid.erase();
    }
  }
};

} // namespace

//===----------------------------------------------------------------------===//
// Memory effects of mpi ops
//===----------------------------------------------------------------------===//

namespace {

/// An op that talks to the MPI library: it reads and writes state outside
/// the program (the default resource), so nothing moves it or drops it.
template <typename Op>
struct CommunicationEffects
    : public MemoryEffectOpInterface::ExternalModel<CommunicationEffects<Op>,
                                                    Op> {
  void
  getEffects(Operation *op,
             SmallVectorImpl<MemoryEffects::EffectInstance> &effects) const {
    effects.emplace_back(MemoryEffects::Read::get());
    effects.emplace_back(MemoryEffects::Write::get());
  }
};

/// mpi.allreduce also reads its send buffer and writes its receive buffer.
struct AllReduceEffects
    : public MemoryEffectOpInterface::ExternalModel<AllReduceEffects,
                                                    mpi::AllReduceOp> {
  void
  getEffects(Operation *op,
             SmallVectorImpl<MemoryEffects::EffectInstance> &effects) const {
    auto allReduce = cast<mpi::AllReduceOp>(op);
    effects.emplace_back(MemoryEffects::Read::get());
    effects.emplace_back(MemoryEffects::Write::get());
    effects.emplace_back(MemoryEffects::Read::get(),
                         &allReduce.getSendbufMutable());
    effects.emplace_back(MemoryEffects::Write::get(),
                         &allReduce.getRecvbufMutable());
  }
};

} // namespace

void mlir::attn::registerMPIMemoryEffectModels(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, mpi::MPIDialect *) {
    mpi::InitOp::attachInterface<CommunicationEffects<mpi::InitOp>>(*ctx);
    mpi::FinalizeOp::attachInterface<CommunicationEffects<mpi::FinalizeOp>>(
        *ctx);
    mpi::Barrier::attachInterface<CommunicationEffects<mpi::Barrier>>(*ctx);
    mpi::AllReduceOp::attachInterface<AllReduceEffects>(*ctx);
  });
}
