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

py::dict sizesDict(const clang_llm::Sizes &S) {
  py::dict D;
  S.fields([&](const char *Name, uint64_t V) { D[Name] = V; });
  return D;
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
    Meter = std::make_unique<clang_llm::Measurer>(*M, *TM);
  }

  // What the module would be under -fno-asynchronous-unwind-tables (the
  // data engine's second flag set); changes its content hash.
  void dropUnwindTables() {
    clang_llm::dropUnwindTables(*M);
    Meter->reset();
  }
  bool unwindTables() const { return M->getUwtable() != UWTableKind::None; }

  py::dict measure(const std::string &Passes, unsigned Codegen) {
    std::optional<clang_llm::CodegenKnobs> K = clang_llm::CodegenKnobs::fromBits(Codegen);
    if (!K)
      throw std::invalid_argument("unknown code generator knobs: " + std::to_string(Codegen));
    Expected<clang_llm::Sizes> S = [&] {
      py::gil_scoped_release NoGil;
      return Meter->measure(Passes, *K);
    }();
    if (!S)
      throw std::invalid_argument(errorText(S.takeError()));
    return sizesDict(*S);
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
  std::unique_ptr<clang_llm::Measurer> Meter;
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
           "{'image', 'ram', 'text', 'rodata', 'unwind', 'data', 'bss', 'dynrelocs', "
           "'imports', 'import_slots', 'ir_instructions'} (cpp/measure.h: Sizes).")
      .def("drop_unwind_tables", &LoadedModule::dropUnwindTables,
           "Make the module what -fno-asynchronous-unwind-tables gives (no uwtable).")
      .def_property_readonly("unwind_tables", &LoadedModule::unwindTables)
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
  m.def("object_sizes", [](py::bytes Obj, bool PositionIndependent) {
    auto S = clang_llm::objectSizes(std::string_view(Obj), PositionIndependent);
    if (!S)
      throw std::invalid_argument(errorText(S.takeError()));
    py::dict D = sizesDict(*S);
    D.attr("pop")("ir_instructions");
    return D;
  }, py::arg("obj"), py::arg("position_independent") = true,
  "An ELF object file's sizes as measure() counts them (image, ram, text, rodata, "
  "unwind, data, bss, dynrelocs, imports, import_slots); position_independent: linked into a PIE, clang's default. "
  "A bare object has no -Oz object to compare its imports with: imports are 0.");
  m.attr("OZ_PIPELINE") = clang_llm::ozPipeline();
  m.attr("LLVM_VERSION") = clang_llm::llvmVersion();
}
