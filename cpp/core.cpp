// clang_llm._core: the shared measuring code for Python (data engine, verify
// tooling, tests). One LoadedModule parses a module once and measures many
// pipelines on copies of it, each with clang -Oz's code generator.

#include "measure.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/IRReader/IRReader.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"

#include <memory>
#include <optional>
#include <stdexcept>

namespace py = pybind11;
using namespace llvm;

namespace {

std::string errorText(Error E) {
  std::string S = toString(std::move(E));
  for (char &C : S)
    if (C == '\n')
      C = ' ';
  return S;
}

class LoadedModule {
public:
  explicit LoadedModule(const std::string &Bytes, const std::string &Name) {
    SMDiagnostic Diag;
    auto Buf = MemoryBuffer::getMemBuffer(Bytes, Name, false);
    M = parseIR(Buf->getMemBufferRef(), Diag, Ctx);
    if (!M) {
      std::string Msg;
      raw_string_ostream OS(Msg);
      Diag.print(Name.c_str(), OS, false);
      throw std::invalid_argument("cannot parse module: " + Msg);
    }
    auto TMOr = clang_llm::createClangOzTargetMachine(*M);
    if (!TMOr)
      throw std::runtime_error(errorText(TMOr.takeError()));
    TM = std::move(*TMOr);
  }

  py::dict measure(const std::string &Passes, unsigned Codegen) {
    std::optional<clang_llm::CodegenKnobs> K = clang_llm::CodegenKnobs::fromBits(Codegen);
    if (!K)
      throw std::invalid_argument("unknown code generator knobs: " + std::to_string(Codegen));
    Expected<clang_llm::Sizes> S = [&] {
      py::gil_scoped_release NoGil;
      return clang_llm::measure(*M, Passes, *K, *TM);
    }();
    if (!S)
      throw std::invalid_argument(errorText(S.takeError()));
    py::dict D;
    D["text"] = S->Text;
    D["data"] = S->Data;
    D["ir_instructions"] = S->IRInstructions;
    return D;
  }

  std::optional<std::string> check(const std::string &Passes) {
    if (Error E = clang_llm::checkPipeline(Passes, TM.get()))
      return errorText(std::move(E));
    return std::nullopt;
  }

  std::string hash() const { return clang_llm::contentHash(*M); }
  uint64_t instructionCount() const { return clang_llm::countInstructions(*M); }
  std::string sourceFilename() const { return M->getSourceFileName(); }
  std::string irText() const {
    std::string S;
    raw_string_ostream OS(S);
    M->print(OS, nullptr);
    return S;
  }

  const char *outlinerHazard() const { return clang_llm::machineOutlinerHazard(*M); }

private:
  LLVMContext Ctx; // declared first: destroyed after the module and machine
  std::unique_ptr<Module> M;
  std::unique_ptr<TargetMachine> TM;
};

} // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "In-process pipeline evaluation with clang -Oz's code generator";
  py::class_<LoadedModule>(m, "LoadedModule")
      .def(py::init([](py::bytes Data, const std::string &Name) {
             return std::make_unique<LoadedModule>(std::string(Data), Name);
           }),
           py::arg("data"), py::arg("name") = "<memory>",
           "Parse LLVM bitcode or textual IR.")
      .def("measure", &LoadedModule::measure, py::arg("passes"),
           py::arg("codegen") = 0u,
           "Run a pipeline on a copy, generate an object in memory, return "
           "{'text', 'data', 'ir_instructions'}.")
      .def("check", &LoadedModule::check, py::arg("passes"),
           "None if the pipeline parses, else the parser's message.")
      .def("content_hash", &LoadedModule::hash)
      .def("machine_outliner_hazard",
           [](const LoadedModule &L) -> std::optional<std::string> {
             const char *H = L.outlinerHazard();
             return H ? std::optional<std::string>(H) : std::nullopt;
           },
           "What in the module makes the machine outliner unsafe (it is then left "
           "off whatever a decision says), or None.")
      .def("instruction_count", &LoadedModule::instructionCount)
      .def("ir_text", &LoadedModule::irText)
      .def_property_readonly("source_filename", &LoadedModule::sourceFilename);
  m.def("object_sizes", [](py::bytes Obj) {
    auto S = clang_llm::objectSizes(std::string_view(Obj));
    if (!S)
      throw std::invalid_argument(errorText(S.takeError()));
    py::dict D;
    D["text"] = S->Text;
    D["data"] = S->Data;
    return D;
  }, "Sizes of an ELF object file's sections, as measure() counts them.");
  m.attr("OZ_PIPELINE") = clang_llm::ozPipeline();
  m.attr("LLVM_VERSION") = clang_llm::llvmVersion();
}
