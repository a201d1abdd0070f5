// clang-llm / clang-llm++: the native front door of the driver.
//
// A build calls the compiler hundreds of times (configure alone runs a few
// hundred probes), and starting Python costs about 10 ms a call, which was
// most of clang-llm's whole-build overhead. This launcher handles the calls that
// need no judgement natively: arguments without -Oz-llm (exec clang-22
// untouched) and plain -Oz-llm with the default back end (exec clang-22 with the
// plugin and the best-fixed decision, read from the shipped candidates.tsv).
// Everything else (response files, -Oz-llm=verify, -emit-llvm, options that
// need clang's own middle end, other back ends, logging, capture, overrides of
// the clang to run, any doubt) goes to the Python driver (clang_llm/driver.py),
// which stays the specification: tests run both over the same arguments with
// CLANG_LLM_DRY_RUN=1 and require the same command.
//
// The tables below mirror driver.py; tests/integration/test_launcher.py checks
// every entry of the Python tables against this program.

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

extern char **environ;

namespace {

const std::string FLAG = "-Oz-llm";
const char *GUARD = "CLANG_LLM_DRIVER_ACTIVE";
const char *PRESET_VAR = "CLANG_LLM_PRESET_DECISION";
const char *PRESET_NO_UNWIND_VAR = "CLANG_LLM_PRESET_DECISION_NO_UNWIND";

const std::set<std::string> SEPARATE_VALUE = {
    "-o", "-x", "-I", "-D", "-U", "-L", "-l", "-B", "-F", "-T", "-u", "-e", "-z", "-include",
    "-imacros", "-isystem", "-idirafter", "-iquote", "-iprefix", "-iwithprefix",
    "-iwithprefixbefore", "-isysroot", "--sysroot", "-MF", "-MT", "-MQ", "-MJ", "-Xclang",
    "-Xlinker", "-Xassembler", "-Xpreprocessor", "-Xanalyzer", "-mllvm", "-target", "-arch",
    "--param", "-aux-triple", "-serialize-diagnostics", "-dependency-file", "-dependency-dot",
    "-working-directory", "-resource-dir", "-include-pch", "-rpath", "-Xopenmp-target",
    "-Xcuda-fatbinary", "-Xcuda-ptxas", "--serialize-diagnostics", "-G", "-ivfsoverlay",
    "-iframework", "-iframeworkwithsysroot", "-imultilib", "--gcc-toolchain", "--target"};
const std::set<std::string> SOURCE_EXT = {"c",  "i",   "cc", "cp", "cxx", "cpp", "CPP", "c++",
                                          "C",  "ii",  "m",  "mi", "mm",  "M",   "mii", "bc",
                                          "ll", "h",   "hh", "hpp", "hxx", "H"};
const std::set<std::string> ASM_EXT = {"s", "S", "sx"};
// Option names that need clang's own middle end: the Python driver explains them.
const std::set<std::string> NEEDS_CLANG_MIDDLE_END = {
    "-flto", "-fsanitize", "-fprofile-generate", "-fprofile-instr-generate",
    "-fcs-profile-generate", "-fprofile-use", "-fprofile-instr-use", "-fprofile-sample-use",
    "-fauto-profile", "-fmemory-profile", "-fembed-bitcode", "-fpass-plugin"};
const std::set<std::string> NO_CODEGEN = {"-E", "-M", "-MM", "-fsyntax-only"};

bool startsWith(const std::string &S, const std::string &P) { return S.compare(0, P.size(), P) == 0; }

std::string env(const char *Name) {
  const char *V = std::getenv(Name);
  return V ? V : "";
}

bool isExecutableFile(const std::string &P) {
  struct stat St;
  return access(P.c_str(), X_OK) == 0 && stat(P.c_str(), &St) == 0 && S_ISREG(St.st_mode);
}

// _paths._which for a bare name: PATH order, empty entries meaning ".".
std::string which(const std::string &Name) {
  std::string Path = std::getenv("PATH") ? std::getenv("PATH") : "/bin:/usr/bin";
  size_t Start = 0;
  while (true) {
    size_t End = Path.find(':', Start);
    std::string Dir = Path.substr(Start, End == std::string::npos ? std::string::npos : End - Start);
    std::string P = (Dir.empty() ? std::string(".") : Dir) + "/" + Name;
    if (isExecutableFile(P))
      return P;
    if (End == std::string::npos)
      return "";
    Start = End + 1;
  }
}

std::string optionName(const std::string &A) { return A.substr(0, A.find('=')); }

bool isOptLevel(const std::string &A) {
  if (!startsWith(A, "-O"))
    return false;
  static const std::set<std::string> Levels = {"0", "1", "2", "3", "4", "s", "z", "g", "fast"};
  return A == "-O" || Levels.count(A.substr(2)) || A == FLAG || startsWith(A, FLAG + "=");
}

std::string inputKind(const std::string &Path, const std::string &Lang) {
  if (!Lang.empty() && Lang != "none")
    return startsWith(Lang, "assembler") ? "asm" : "source";
  if (Path == "-")
    return "other";
  std::string Base = Path.substr(Path.rfind('/') == std::string::npos ? 0 : Path.rfind('/') + 1);
  std::string Ext = Base.find('.') == std::string::npos ? "" : Path.substr(Path.rfind('.') + 1);
  if (SOURCE_EXT.count(Ext))
    return "source";
  if (ASM_EXT.count(Ext))
    return "asm";
  return "other";
}

struct Scan {
  long LastOpt = -1;
  std::vector<size_t> LlmIndices;
  bool Compiles = false;
  std::set<std::string> Flags;
  bool Blocked = false;
};

// driver._scan, keeping only what the fast path needs.
Scan scan(const std::vector<std::string> &Args) {
  Scan S;
  std::string Lang;
  std::set<std::string> Enabled;
  for (size_t I = 0; I < Args.size(); ++I) {
    const std::string &A = Args[I];
    if (SEPARATE_VALUE.count(A) && I + 1 < Args.size()) {
      if (A == "-x")
        Lang = Args[I + 1];
      ++I;
      continue;
    }
    if (A == "--") {
      for (size_t J = I + 1; J < Args.size(); ++J)
        S.Compiles |= inputKind(Args[J], Lang) == "source";
      break;
    }
    if (isOptLevel(A)) {
      S.LastOpt = static_cast<long>(I);
      if (startsWith(A, FLAG))
        S.LlmIndices.push_back(I);
    } else if (startsWith(A, "-x") && A.size() > 2) {
      Lang = A.substr(2);
    } else if (startsWith(A, "-o") && A.size() > 2 && !startsWith(A, "-objc")) {
      // an output file: nothing to record
    } else if (A == "-" || !startsWith(A, "-")) {
      S.Compiles |= inputKind(A, Lang) == "source";
    } else {
      S.Flags.insert(A);
      std::string Name = optionName(A);
      if (NEEDS_CLANG_MIDDLE_END.count(Name))
        Enabled.insert(Name);
      else if (startsWith(Name, "-fno-"))
        Enabled.erase("-f" + Name.substr(5));
    }
  }
  S.Blocked = !Enabled.empty();
  return S;
}

// The best-fixed decisions from candidates.tsv, as policy.preset_env() encodes
// them ("<codegen knob bits>:<passes>"): First for modules with unwind tables
// (clang's default), Second for modules without them where the file names
// another default for that flag set (best_fixed_no_unwind), else "". First is
// "" when anything is unusual.
struct Presets {
  std::string First, Second;
};

Presets presetsFromCandidates(const std::string &Path) {
  std::ifstream In(Path);
  if (!In)
    return {};
  std::string Line, Format, Best, BestBare;
  Presets P;
  bool SawHeader = false, SawFirst = false, BareOk = true;
  while (std::getline(In, Line)) {
    if (Line.empty())
      continue;
    if (Line[0] == '#') {
      size_t Tab = Line.find('\t');
      std::string Key = Line.substr(1, Tab == std::string::npos ? std::string::npos : Tab - 1);
      std::string Value = Tab == std::string::npos ? "" : Line.substr(Tab + 1);
      if (Key == "format")
        Format = Value;
      else if (Key == "best_fixed")
        Best = Value;
      else if (Key == "best_fixed_no_unwind")
        BestBare = Value;
      continue;
    }
    std::vector<std::string> F;
    std::stringstream SS(Line);
    std::string Field;
    while (std::getline(SS, Field, '\t'))
      F.push_back(Field);
    if (F.size() != 5)
      return {};
    if (!SawHeader) {
      if (F[0] != "name")
        return {};
      SawHeader = true;
      continue;
    }
    if (!SawFirst && F[0] != "oz")
      return {};  // pipelines.py refuses such a file; let it say why
    SawFirst = true;
    // Knob bits as the plugin reads them (CodegenKnobs::AllBits is 2047).
    const bool KnobsOk = !F[1].empty() && F[1].size() <= 4 &&
                         F[1].find_first_not_of("0123456789") == std::string::npos && std::stoi(F[1]) <= 2047;
    // An unvalidated default (the plugin must trial-run it) or unknown knobs: no preset.
    if (!Best.empty() && F[0] == Best) {
      if (F[2] != "1" || !KnobsOk)
        return {};
      P.First = F[1] + ":" + F[4];
    }
    if (!BestBare.empty() && F[0] == BestBare) {
      BareOk = F[2] == "1" && KnobsOk;
      P.Second = F[1] + ":" + F[4];
    }
  }
  if (Format != "1" || !BareOk)
    return {};
  if (P.Second == P.First)
    P.Second.clear();
  return P;
}

struct Install {
  std::string PackageDir;  // .../site-packages/clang_llm (the plugin)
  std::string DataDir;     // where candidates.tsv is (the source tree for editable installs)
};

// The directory this program is in (symbolic links resolved), or "".
std::string selfDir() {
  char Buf[PATH_MAX];
  ssize_t N = readlink("/proc/self/exe", Buf, sizeof(Buf) - 1);
  if (N <= 0)
    return "";
  std::string Exe(Buf, static_cast<size_t>(N));
  return Exe.substr(0, Exe.rfind('/'));
}

Install locate() {
  Install I;
  std::string Bin = selfDir();
  if (Bin.empty())
    return I;
  std::string Pkg = Bin + "/../lib/python" CLANG_LLM_PYTHON_VERSION "/site-packages/clang_llm";
  if (char *Real = realpath(Pkg.c_str(), nullptr)) {
    I.PackageDir = Real;
    std::free(Real);
  }
#ifdef CLANG_LLM_EDITABLE_SOURCE
  I.DataDir = CLANG_LLM_EDITABLE_SOURCE "/data";
#else
  I.DataDir = I.PackageDir.empty() ? "" : I.PackageDir + "/data";
#endif
  return I;
}

[[noreturn]] void execPython(const std::string &Prog, char **Argv) {
  // The Python driver installed beside this program.
  std::string Py = selfDir() + "/" + Prog + "-py";
  if (env("CLANG_LLM_DRY_RUN") != "")
    std::cerr << "clang-llm: dry run: route python\n";
  execv(Py.c_str(), Argv);
  std::cerr << Prog << ": error: cannot run the Python driver " << Py << ": " << std::strerror(errno)
            << "\n";
  std::exit(1);
}

int execClang(const std::string &Clang, const std::vector<std::string> &Args, const Presets &Preset) {
  setenv(GUARD, "1", 1);
  if (!Preset.First.empty())
    setenv(PRESET_VAR, Preset.First.c_str(), 1);
  if (!Preset.Second.empty())
    setenv(PRESET_NO_UNWIND_VAR, Preset.Second.c_str(), 1);
  if (env("CLANG_LLM_DRY_RUN") != "") {
    // The same report as driver.py's dry run, so the two can be compared.
    std::cerr << "clang-llm: dry run: route native\n";
    std::cout << "exec " << Clang << "\n";
    for (const std::string &A : Args)
      std::cout << "arg " << A << "\n";
    if (!Preset.First.empty())
      std::cout << "env " << PRESET_VAR << "=" << Preset.First << "\n";
    if (!Preset.Second.empty())
      std::cout << "env " << PRESET_NO_UNWIND_VAR << "=" << Preset.Second << "\n";
    return 0;
  }
  std::vector<char *> Argv;
  Argv.push_back(const_cast<char *>(Clang.c_str()));
  for (const std::string &A : Args)
    Argv.push_back(const_cast<char *>(A.c_str()));
  Argv.push_back(nullptr);
  std::fflush(nullptr);
  execv(Clang.c_str(), Argv.data());
  std::cerr << "clang-llm: error: cannot run " << Clang << ": " << std::strerror(errno) << "\n";
  return 127;
}

} // namespace

int main(int Argc, char **Argv) {
  std::string Self = Argv[0];
  Self = Self.substr(Self.rfind('/') == std::string::npos ? 0 : Self.rfind('/') + 1);
  const bool Cxx = Self.size() >= 2 && Self.compare(Self.size() - 2, 2, "++") == 0;
  const std::string Prog = Cxx ? "clang-llm++" : "clang-llm";
  std::vector<std::string> Args(Argv + 1, Argv + Argc);

  // Anything the Python driver explains or decides with more context.
  bool Slow = !env(GUARD).empty() || !env(Cxx ? "CLANG_LLM_CLANGXX" : "CLANG_LLM_CLANG").empty() ||
              (!Args.empty() && Args[0] == "explain");
  for (const std::string &A : Args)
    Slow |= startsWith(A, "@");
  std::string Clang;
  if (!Slow) {
    Clang = which(Cxx ? "clang++-22" : "clang-22");
    if (Clang.empty()) {
      std::string Fallback = Cxx ? "/usr/lib/llvm-22/bin/clang++" : "/usr/lib/llvm-22/bin/clang";
      Clang = isExecutableFile(Fallback) ? Fallback : "";
    }
    Slow = Clang.empty();  // the Python driver words the error
  }
  if (Slow)
    execPython(Prog, Argv);

  bool Mentions = false;
  for (const std::string &A : Args)
    Mentions |= startsWith(A, FLAG);
  if (!Mentions)
    return execClang(Clang, Args, {});

  Scan S = scan(Args);
  if (S.LlmIndices.empty())
    return execClang(Clang, Args, {});
  std::set<size_t> Drop(S.LlmIndices.begin(), S.LlmIndices.end());
  const std::string &Win = Args[static_cast<size_t>(S.LastOpt)];
  std::vector<std::string> Out;
  if (!startsWith(Win, FLAG)) {
    for (size_t J = 0; J < Args.size(); ++J)
      if (!Drop.count(J))
        Out.push_back(Args[J]);
    return execClang(Clang, Out, {});
  }
  if (Win != FLAG)
    execPython(Prog, Argv);  // -Oz-llm=verify, or a value to complain about
  for (size_t J = 0; J < Args.size(); ++J) {
    if (J == static_cast<size_t>(S.LastOpt))
      Out.push_back("-Oz");
    else if (!Drop.count(J))
      Out.push_back(Args[J]);
  }
  bool NoCodegen = false;
  for (const std::string &F : NO_CODEGEN)
    NoCodegen |= S.Flags.count(F) > 0;
  if (NoCodegen || !S.Compiles)
    return execClang(Clang, Out, {});
  if (S.Blocked || S.Flags.count("-emit-llvm"))
    execPython(Prog, Argv);

  // The plugin with the best-fixed decision, when nothing asks for more.
  std::string Policy = env("CLANG_LLM_POLICY");
  if ((!Policy.empty() && Policy != "best-fixed") || env("CLANG_LLM_MODE") == "verify" ||
      !env("CLANG_LLM_LOG").empty() || !env("CLANG_LLM_CAPTURE").empty())
    execPython(Prog, Argv);
  Install I = locate();
  std::string Plugin = I.PackageDir + "/clang_llm_plugin.llvm22.so";
  Presets Preset = I.DataDir.empty() ? Presets{} : presetsFromCandidates(I.DataDir + "/candidates.tsv");
  struct stat St;
  if (I.PackageDir.empty() || stat(Plugin.c_str(), &St) != 0 || !S_ISREG(St.st_mode) || Preset.First.empty())
    execPython(Prog, Argv);
  Out.insert(Out.end(), {"-Xclang", "-disable-llvm-passes", "-fpass-plugin=" + Plugin});
  return execClang(Clang, Out, Preset);
}
