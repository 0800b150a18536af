//===- Manifest.cpp - kernel manifests as attributes and JSON -------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/Manifest.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
namespace json = llvm::json;

Attribute mlir::attn::jsonToAttribute(MLIRContext *ctx,
                                      const json::Value &value) {
  Builder b(ctx);
  switch (value.kind()) {
  case json::Value::Null:
    return b.getUnitAttr();
  case json::Value::Boolean:
    return b.getBoolAttr(*value.getAsBoolean());
  case json::Value::Number:
    if (std::optional<int64_t> i = value.getAsInteger())
      return b.getI64IntegerAttr(*i);
    return b.getF64FloatAttr(*value.getAsNumber());
  case json::Value::String:
    return b.getStringAttr(*value.getAsString());
  case json::Value::Array: {
    SmallVector<Attribute> elements;
    for (const json::Value &v : *value.getAsArray())
      elements.push_back(jsonToAttribute(ctx, v));
    return b.getArrayAttr(elements);
  }
  case json::Value::Object: {
    SmallVector<NamedAttribute> entries;
    for (const auto &[key, v] : *value.getAsObject())
      entries.push_back(b.getNamedAttr(key.str(), jsonToAttribute(ctx, v)));
    return b.getDictionaryAttr(entries);
  }
  }
  llvm_unreachable("unknown JSON kind");
}

json::Value mlir::attn::attributeToJSON(Attribute attr) {
  return llvm::TypeSwitch<Attribute, json::Value>(attr)
      .Case([](UnitAttr) { return nullptr; })
      .Case([](BoolAttr a) { return a.getValue(); })
      .Case([](IntegerAttr a) { return a.getValue().getSExtValue(); })
      .Case([](FloatAttr a) { return a.getValueAsDouble(); })
      .Case([](StringAttr a) { return a.getValue().str(); })
      .Case([](ArrayAttr a) {
        json::Array out;
        for (Attribute e : a)
          out.push_back(attributeToJSON(e));
        return json::Value(std::move(out));
      })
      .Case([](DictionaryAttr a) {
        json::Object out;
        for (NamedAttribute e : a)
          out[e.getName().getValue()] = attributeToJSON(e.getValue());
        return json::Value(std::move(out));
      })
      .Default([](Attribute a) {
        std::string text;
        llvm::raw_string_ostream(text) << a;
        return json::Value(text);
      });
}
