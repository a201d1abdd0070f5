// The clang-llm pass plugin. It only moves a module to the Python policy and a
// pipeline string back; every decision is made in python/clang_llm/policy.py.
//
//   opt-22 -load-pass-plugin=<this> -passes=llm-oz in.bc
//   clang-22 -Oz -Xclang -disable-llvm-passes -fpass-plugin=<this> -c f.c
//
// Under clang the pre-codegen callback replaces the (disabled) middle end and
// then lets clang generate code as usual.

#include "measure.h"

#include <pybind11/embed.h>
#include <pybind11/stl.h>

#include "llvm/IR/Module.h"
#include "llvm/IR/PassManager.h"
#include "llvm/IR/Verifier.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Plugins/PassPlugin.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"

#include <dlfcn.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

namespace py = pybind11;
using namespace llvm;

namespace {

bool strictMode() {
  const char *S = std::getenv("CLANG_LLM_STRICT");
  return S && *S && std::string(S) != "0";
}

std::string oneLine(std::string S) {
  for (char &C : S)
    if (C == '\n' || C == '\r')
      C = ' ';
  while (!S.empty() && S.back() == ' ')
    S.pop_back();
  return S;
}

bool isFile(const std::string &P) {
  struct stat St;
  return ::stat(P.c_str(), &St) == 0 && S_ISREG(St.st_mode);
}

std::string pluginPath() {
  Dl_info Info;
  if (dladdr(reinterpret_cast<void *>(&pluginPath), &Info) && Info.dli_fname)
    return Info.dli_fname;
  return {};
}

// The interpreter whose site-packages hold clang_llm: the virtual environment
// the plugin is installed in (found from the plugin's own path), else the Python
// the plugin was built for. CLANG_LLM_PYTHON overrides both.
std::string choosePythonExecutable() {
  if (const char *P = std::getenv("CLANG_LLM_PYTHON"); P && *P)
    return P;
  std::string Dir = pluginPath();
  while (!Dir.empty()) {
    auto Slash = Dir.find_last_of('/');
    if (Slash == std::string::npos || Slash == 0)
      break;
    Dir = Dir.substr(0, Slash);
    if (isFile(Dir + "/pyvenv.cfg")) {
      for (const char *Name : {"/bin/python3", "/bin/python"})
        if (isFile(Dir + Name))
          return Dir + Name;
    }
  }
  if (isFile(CLANG_LLM_BUILD_PYTHON))
    return CLANG_LLM_BUILD_PYTHON;
  return {};
}

// Starts Python once per process and never finalises it (the host may call back
// into the plugin until exit). Returns an empty string or the reason it failed.
std::string ensurePython() {
  static std::string Failure;
  static bool Done = false;
  if (Done)
    return Failure;
  Done = true;
  if (Py_IsInitialized())
    return Failure; // a host that already runs Python (e.g. a Python process)

  // opt and clang dlopen plugins RTLD_GLOBAL, but a host that used RTLD_LOCAL
  // would hide libpython's symbols from extension modules such as numpy's.
  Dl_info Info;
  if (dladdr(reinterpret_cast<void *>(&Py_InitializeFromConfig), &Info) &&
      Info.dli_fname)
    dlopen(Info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);

  PyConfig Config;
  // Isolated: the compiler's environment (PYTHONPATH, PYTHONHOME, user site)
  // must not decide which clang_llm runs; the executable picks the venv.
  PyConfig_InitIsolatedConfig(&Config);
  Config.install_signal_handlers = 0;
  Config.parse_argv = 0;
  std::string Exe = choosePythonExecutable();
  PyStatus St = PyStatus_Ok();
  if (!Exe.empty())
    St = PyConfig_SetBytesString(&Config, &Config.executable, Exe.c_str());
  if (!PyStatus_Exception(St))
    St = Py_InitializeFromConfig(&Config);
  PyConfig_Clear(&Config);
  if (PyStatus_Exception(St)) {
    Failure = std::string("cannot start Python") +
              (St.err_msg ? std::string(": ") + St.err_msg : std::string());
    return Failure;
  }
  {
    py::gil_scoped_acquire Gil; // a no-op here, but keeps the state explicit
    try {
      // The object file may be going to stdout (-o -): Python output must not.
      py::exec("import sys\nsys.stdout = sys.stderr\nsys.argv = ['clang-llm-plugin']\n");
    } catch (const std::exception &E) {
      Failure = E.what();
    }
  }
  // Hand the GIL back so each call can take it; the thread state lives on.
  PyEval_SaveThread();
  return Failure;
}

// What Python sees of one module. Lives only for the duration of one call.
struct ModuleHandle {
  Module *M;
  TargetMachine *TM;
  std::string Route;
  // Verify mode measures -Oz and k candidates: the import reference is
  // computed once, from -Oz's measurement.
  mutable std::shared_ptr<clang_llm::Measurer> Meter;

  std::string sourceFilename() const { return M->getSourceFileName(); }
  std::string name() const { return M->getModuleIdentifier(); }
  std::string triple() const { return M->getTargetTriple().str(); }
  // The user's unwind-table flags as they reach the IR (-fno-asynchronous-unwind-tables
  // drops the uwtable module flag): they change which candidate is smallest.
  bool unwindTables() const { return M->getUwtable() != UWTableKind::None; }
  std::string hash() const { return clang_llm::contentHash(*M); }
  uint64_t instructionCount() const { return clang_llm::countInstructions(*M); }
  size_t functionCount() const {
    size_t N = 0;
    for (const Function &F : *M)
      N += !F.isDeclaration();
    return N;
  }
  std::string irText() const {
    std::string S;
    raw_string_ostream OS(S);
    M->print(OS, nullptr);
    return S;
  }
  py::bytes bitcode() const {
    SmallVector<char, 0> Buf;
    raw_svector_ostream OS(Buf);
    // Keep the use-list order: the printed IR (and so content_hash) lists
    // predecessors in that order, and without it about a third of captured
    // modules read back with a different hash than the one they were named by.
    WriteBitcodeToFile(*M, OS, /*ShouldPreserveUseListOrder=*/true);
    return py::bytes(Buf.data(), Buf.size());
  }
  std::optional<std::string> check(const std::string &Passes) const {
    if (Error E = clang_llm::checkPipeline(Passes, TM))
      return oneLine(toString(std::move(E)));
    return std::nullopt;
  }
  py::dict measure(const std::string &Passes, unsigned Codegen) const {
    std::optional<clang_llm::CodegenKnobs> K = clang_llm::CodegenKnobs::fromBits(Codegen);
    if (!K)
      throw std::invalid_argument("unknown code generator knobs: " + std::to_string(Codegen));
    Expected<clang_llm::Sizes> S = [&] {
      py::gil_scoped_release NoGil;
      if (!Meter)
        Meter = std::make_shared<clang_llm::Measurer>(*M, *TM);
      return Meter->measure(Passes, *K);
    }();
    if (!S)
      throw std::runtime_error(oneLine(toString(S.takeError())));
    py::dict D;
    S->fields([&](const char *Name, uint64_t V) { D[Name] = V; });
    return D;
  }
  // Runs Passes on the module in a forked child and verifies the result, so a
  // pipeline that aborts LLVM or breaks the IR costs a fallback, not the build.
  std::optional<std::string> trial(const std::string &Passes) const;
};

std::optional<std::string> ModuleHandle::trial(const std::string &Passes) const {
  int Fds[2];
  if (pipe(Fds) != 0)
    return std::string("trial: pipe failed");
  fflush(stdout);
  fflush(stderr);
  pid_t Pid;
  {
    py::gil_scoped_release NoGil; // the child must not inherit a held GIL
    Pid = fork();
    if (Pid == 0) {
      close(Fds[0]);
      dup2(Fds[1], STDERR_FILENO);
      // The child must die quietly: the host's crash and fatal-error handlers
      // would delete the parent's registered output files on their way out.
      for (int Sig : {SIGSEGV, SIGABRT, SIGILL, SIGBUS, SIGFPE, SIGTRAP, SIGALRM})
        signal(Sig, SIG_DFL);
      remove_fatal_error_handler();
      install_fatal_error_handler(
          [](void *, const char *Reason, bool) {
            static const char Prefix[] = "LLVM ERROR: ";
            (void)!write(STDERR_FILENO, Prefix, sizeof Prefix - 1);
            (void)!write(STDERR_FILENO, Reason, strlen(Reason));
            (void)!write(STDERR_FILENO, "\n", 1);
            _exit(3);
          },
          nullptr);
      alarm(600);
      if (Error E = clang_llm::runPipeline(*M, Passes, TM)) {
        errs() << toString(std::move(E)) << "\n";
        _exit(3);
      }
      if (verifyModule(*M, &errs())) {
        errs() << "pipeline produced invalid IR\n";
        _exit(4);
      }
      _exit(0);
    }
  }
  close(Fds[1]);
  if (Pid < 0) {
    close(Fds[0]);
    return std::string("trial: fork failed");
  }
  std::string Out;
  char Buf[4096];
  ssize_t N;
  while ((N = read(Fds[0], Buf, sizeof Buf)) > 0)
    Out.append(Buf, N);
  close(Fds[0]);
  int Status = 0;
  waitpid(Pid, &Status, 0);
  if (WIFEXITED(Status) && WEXITSTATUS(Status) == 0)
    return std::nullopt;
  // Keep the last non-empty line: LLVM puts the reason there.
  std::string Last;
  size_t Pos = 0;
  while (Pos < Out.size()) {
    size_t End = Out.find('\n', Pos);
    if (End == std::string::npos)
      End = Out.size();
    if (End > Pos)
      Last = Out.substr(Pos, End - Pos);
    Pos = End + 1;
  }
  std::string Why = WIFSIGNALED(Status)
                        ? "killed by signal " + std::to_string(WTERMSIG(Status))
                        : "exit status " + std::to_string(WEXITSTATUS(Status));
  return oneLine(Last.empty() ? Why : Last + " (" + Why + ")");
}

struct Decision {
  std::string Passes;
  clang_llm::CodegenKnobs Knobs;
};

// Asks the policy for a decision. Any failure yields clang's -Oz pipeline with a
// one-line reason, or an error on the module under CLANG_LLM_STRICT.
std::optional<Decision> decide(Module &M, TargetMachine *TM, const char *Route) {
  auto Fallback = [&](const std::string &Why) -> std::optional<Decision> {
    if (strictMode()) {
      M.getContext().emitError("clang-llm: policy failed (strict mode): " +
                               oneLine(Why));
      return std::nullopt;
    }
    errs() << "clang-llm: warning: using clang's -Oz pipeline for '"
           << M.getSourceFileName() << "': " << oneLine(Why) << "\n";
    return Decision{clang_llm::ozPipeline(), {}};
  };

  // A decision the driver already made because it cannot depend on the module
  // (policy.preset_decision): "<codegen knob bits>:<passes>". Skips starting Python.
  // The driver's preset is per flag set: without unwind tables
  // (-fno-asynchronous-unwind-tables) another candidate can be smallest.
  const char *Preset = std::getenv("CLANG_LLM_PRESET_DECISION");
  if (const char *Bare = std::getenv("CLANG_LLM_PRESET_DECISION_NO_UNWIND");
      Bare && M.getUwtable() == UWTableKind::None)
    Preset = Bare;
  if (const char *P = Preset) {
    char *End = nullptr;
    std::optional<clang_llm::CodegenKnobs> Knobs = clang_llm::CodegenKnobs::fromBits(std::strtoul(P, &End, 10));
    if (End != P && *End == ':' && Knobs) {
      Decision D{End + 1, *Knobs};
      if (Error E = clang_llm::checkPipeline(D.Passes, TM))
        consumeError(std::move(E)); // not trusted after all: ask the policy below
      else
        return D;
    }
  }

  std::string Failure = ensurePython();
  if (!Failure.empty())
    return Fallback(Failure);

  Decision D;
  try {
    py::gil_scoped_acquire Gil;
    ModuleHandle H{&M, TM, Route};
    py::module_::import("_clang_llm_plugin"); // registers the handle's type
    py::object Entry =
        py::module_::import("clang_llm.policy").attr("plugin_entry");
    py::object R = Entry(py::cast(&H, py::return_value_policy::reference));
    D.Passes = R.attr("passes").cast<std::string>();
    unsigned Bits = R.attr("codegen").cast<unsigned>();
    std::optional<clang_llm::CodegenKnobs> Knobs = clang_llm::CodegenKnobs::fromBits(Bits);
    if (!Knobs)
      return Fallback("unknown code generator knobs " + std::to_string(Bits));
    D.Knobs = *Knobs;
  } catch (const std::exception &E) {
    return Fallback(std::string("policy error: ") + E.what());
  }
  if (Error E = clang_llm::checkPipeline(D.Passes, TM))
    return Fallback("pipeline does not parse: " + toString(std::move(E)));
  return D;
}

bool runDecision(Module &M, TargetMachine *TM, const char *Route) {
  std::optional<Decision> D = decide(M, TM, Route);
  if (!D)
    return false;
  if (Error E = clang_llm::runPipeline(M, D->Passes, TM)) {
    // Parsed a moment ago, so this is not expected; still never run nothing.
    errs() << "clang-llm: warning: " << oneLine(toString(std::move(E))) << "\n";
    cantFail(clang_llm::runPipeline(M, clang_llm::ozPipeline(), TM));
    return true;
  }
  if (TM)
    clang_llm::applyCodegenKnobs(*TM, M, D->Knobs);
  return true;
}

// The opt route: opt's own target machine is not clang's, so build clang's.
struct LLMOzPass : PassInfoMixin<LLMOzPass> {
  PreservedAnalyses run(Module &M, ModuleAnalysisManager &) {
    auto TM = clang_llm::createClangOzTargetMachine(M);
    if (!TM) {
      errs() << "clang-llm: warning: " << toString(TM.takeError()) << "\n";
      runDecision(M, nullptr, "opt");
    } else {
      runDecision(M, TM->get(), "opt");
    }
    return PreservedAnalyses::none();
  }
  static bool isRequired() { return true; }
};

bool preCodeGen(Module &M, TargetMachine &TM, CodeGenFileType,
                raw_pwrite_stream &) {
  runDecision(M, &TM, "clang");
  return false; // clang generates the code as usual
}

} // namespace

PYBIND11_EMBEDDED_MODULE(_clang_llm_plugin, m) {
  py::class_<ModuleHandle>(m, "Module")
      .def_property_readonly("source_filename", &ModuleHandle::sourceFilename)
      .def_property_readonly("name", &ModuleHandle::name)
      .def_property_readonly("triple", &ModuleHandle::triple)
      .def_property_readonly("unwind_tables", &ModuleHandle::unwindTables)
      .def_readonly("route", &ModuleHandle::Route)
      .def("content_hash", &ModuleHandle::hash)
      .def("instruction_count", &ModuleHandle::instructionCount)
      .def("function_count", &ModuleHandle::functionCount)
      .def("ir_text", &ModuleHandle::irText)
      .def("bitcode", &ModuleHandle::bitcode)
      .def("check", &ModuleHandle::check, py::arg("passes"))
      .def("trial", &ModuleHandle::trial, py::arg("passes"))
      .def("measure", &ModuleHandle::measure, py::arg("passes"),
           py::arg("codegen") = 0u);
  m.attr("oz_pipeline") = clang_llm::ozPipeline();
  m.attr("llvm_version") = clang_llm::llvmVersion();
}

extern "C" LLVM_ATTRIBUTE_WEAK __attribute__((visibility("default")))
::llvm::PassPluginLibraryInfo
llvmGetPassPluginInfo() {
  PassPluginLibraryInfo Info{LLVM_PLUGIN_API_VERSION, "clang-llm", "0.1",
                             nullptr};
  Info.RegisterPassBuilderCallbacks = [](PassBuilder &PB) {
    PB.registerPipelineParsingCallback(
        [](StringRef Name, ModulePassManager &MPM,
           ArrayRef<PassBuilder::PipelineElement>) {
          if (Name != "llm-oz")
            return false;
          MPM.addPass(LLMOzPass());
          return true;
        });
  };
  Info.PreCodeGenCallback = preCodeGen;
  return Info;
}
