// Shared by the pass plugin and the Python extension: everything that runs a
// pipeline or measures code size goes through here, so that the numbers the data
// engine learns from are the numbers clang would produce.
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Error.h"
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace llvm {
class Module;
class TargetMachine;
} // namespace llvm

namespace clang_llm {

// Per-module code generator settings a decision may carry besides its pass
// pipeline. They travel as a bit set (candidates.tsv's codegen column, preset
// decisions, the result store's key; pipelines.KNOBS names the bits), so that 0
// and 1 still mean "nothing" and "machine outliner" as before the others existed.
struct CodegenKnobs {
  bool MachineOutliner = false; // 1
  bool SplitSpillSize = false;  // 2: the greedy allocator splits live ranges for size
  bool IPRA = false;            // 4: interprocedural register allocation
  // 8: size layout: no probability-driven block placement (it lays blocks out
  // for speed), and branch folding merges common tails down to one instruction
  // (LLVM's default 3). (LLVM 22's basic register allocator was tried as bit 8
  // first and dropped: it crashes code generation on x87 code and on a quarter
  // of csmith's programs.)
  bool SizeLayout = false;
  // 16: no machine LICM. Hoisting loop invariants out of loops makes no code
  // smaller; it lengthens live ranges across the loop, which costs spills and
  // callee-saved register pushes (-disable-machine-licm).
  bool NoMachineLICM = false;
  // 32: no loop strength reduction in the code generator's IR passes: its new
  // induction variables and preheader set-up cost more bytes than the address
  // arithmetic they replace, more often than not (-disable-lsr).
  bool NoLSR = false;
  // 64: a constant-size block copy or fill that would take more than one store
  // becomes rep movs/stos, as larger ones already do at -Oz, instead of up to
  // four pairs of vector moves (-max-store-memcpy=1, -max-store-memset=1). It
  // moves a threshold; it adds no library calls.
  bool RepMemOps = false;
  // 128: a branch on an and/or of conditions is split into one branch per
  // condition (cmp, jcc each) instead of setcc, setcc, and/or, jcc, which LLVM
  // keeps together when the second condition is cheap to compute
  // (-x86-br-merging-base-cost=-1).
  bool SplitBranches = false;
  // 256: no machine common subexpression elimination: reusing a value across
  // blocks lengthens its live range, which at -Oz often costs a spill or a
  // callee-saved register more than recomputing it (-disable-machine-cse).
  bool NoMachineCSE = false;
  // 512: no machine sinking. Sinking an instruction into the successor that
  // uses it splits critical edges to get there (new blocks and jumps) and
  // moves code where it cannot be shared; it wins or loses per module, about
  // evenly (-disable-machine-sink).
  bool NoMachineSink = false;
  // 1024: the greedy allocator assigns local live ranges in reverse order,
  // another roll of the same dice: some modules need fewer spills and copies
  // (-greedy-reverse-local-assignment).
  bool ReverseLocalAssignment = false;

  static constexpr unsigned AllBits = 2047;
  unsigned bits() const {
    return MachineOutliner | SplitSpillSize << 1 | IPRA << 2 | SizeLayout << 3 | NoMachineLICM << 4 |
           NoLSR << 5 | RepMemOps << 6 | SplitBranches << 7 | NoMachineCSE << 8 | NoMachineSink << 9 |
           ReverseLocalAssignment << 10;
  }
  // The knobs of a bit set, or nothing when it holds a bit no knob has.
  static std::optional<CodegenKnobs> fromBits(unsigned long Bits) {
    if (Bits > AllBits)
      return std::nullopt;
    return CodegenKnobs{(Bits & 1) != 0,  (Bits & 2) != 0,   (Bits & 4) != 0,
                        (Bits & 8) != 0,  (Bits & 16) != 0,  (Bits & 32) != 0,
                        (Bits & 64) != 0, (Bits & 128) != 0, (Bits & 256) != 0,
                        (Bits & 512) != 0, (Bits & 1024) != 0};
  }
};

// The one size metric: the bytes a module adds to a linked program, as `size`
// (Berkeley: text + data) counts them after the link, and the RAM it takes.
// Image bytes are what clang-llm minimises; .text alone is a diagnostic.
//   Text     executable sections
//   ROData   other read-only allocated bytes; SHF_MERGE sections counted as the
//            linker merges them (each distinct string or constant once)
//   Unwind   .eh_frame FDEs plus the 8-byte .eh_frame_hdr entry the linker adds
//            for each (CIEs are shared across objects by the linker: left out)
//   Data     writable allocated bytes that occupy file space (.data, .data.rel.ro,
//            .init_array, ...)
//   BSS      zero-initialised bytes (SHT_NOBITS): RAM only
//   DynRelocs  in a position-independent module, the 24-byte dynamic relocation
//            (.rela.dyn) each absolute address stored in allocated data costs
//            at load time
//   Imports  what the link adds for each symbol the compiled module imports
//            that clang's -Oz object for it does not (memset for a loop, exp2
//            for a pow, a strncmp -Oz's code turned into a compare, a library
//            call for an idiom -Oz leaves alone), should it come from a shared
//            library and no other module import it: its
//            dynamic symbol (.dynsym entry, name in .dynstr, .gnu.version
//            entry), and per way of reaching it a 24-byte dynamic relocation
//            with an 8-byte slot (.got for an address, .got.plt for a call) and
//            for a call a 16-byte PLT stub. -Oz itself is charged none: the
//            charge is what a pipeline's imports may add to the link beyond
//            -Oz's, never a credit (a symbol -Oz imports and a pipeline does
//            not may still be imported by the rest of the program). Calls into
//            the rest of the program -Oz's code makes as well cost nothing. In
//            a static link a new library call costs at least this.
//   ImportSlots  those slots' bytes, part of Imports: writable, so RAM too
//   image() = Text + ROData + Unwind + Data + DynRelocs + Imports
//   ram() = Data + BSS + ImportSlots
struct Sizes {
  uint64_t Text = 0;
  uint64_t ROData = 0;
  uint64_t Unwind = 0;
  uint64_t Data = 0;
  uint64_t BSS = 0;
  uint64_t DynRelocs = 0;
  uint64_t Imports = 0;
  uint64_t ImportSlots = 0;
  uint64_t IRInstructions = 0; // after the pipeline, before codegen

  uint64_t image() const { return Text + ROData + Unwind + Data + DynRelocs + Imports; }
  uint64_t ram() const { return Data + BSS + ImportSlots; }
  // Every field by the name Python sees (the same dict from the extension and
  // the plugin's module handle).
  template <typename F> void fields(F &&Put) const {
    Put("image", image());
    Put("ram", ram());
    Put("text", Text);
    Put("rodata", ROData);
    Put("unwind", Unwind);
    Put("data", Data);
    Put("bss", BSS);
    Put("dynrelocs", DynRelocs);
    Put("imports", Imports);
    Put("import_slots", ImportSlots);
    Put("ir_instructions", IRInstructions);
  }
};

// Parses Pipeline with a PassBuilder built on TM; no IR is touched.
llvm::Error checkPipeline(llvm::StringRef Pipeline, llvm::TargetMachine *TM);

// Runs Pipeline on M in place with a fresh PassBuilder built on TM, the way clang
// would run its own pipeline (same alias-analysis and library-info set-up).
llvm::Error runPipeline(llvm::Module &M, llvm::StringRef Pipeline,
                        llvm::TargetMachine *TM);

// LLVM 22's machine outliner crashes code generation ("X86 Indirect Thunks")
// on modules that ask for retpoline or LVI thunks or speculative load
// hardening (-mretpoline, -mlvi-cfi, -mlvi-hardening,
// -mspeculative-load-hardening; openssh builds with -mretpoline). Returns what
// M asks for that does this, or nullptr.
const char *machineOutlinerHazard(const llvm::Module &M);

// IPRA lets a caller assume a callee clobbers only the registers its code in
// this module does. That is wrong for a callee the dynamic linker may replace
// (a preemptible definition, called through the PLT in -fPIC code: the PLT stub
// and any interposer clobber what the ABI allows) and for a weak definition the
// static linker may replace; and LLVM 22 crashes with it on x87 (long double)
// code. Returns what in M keeps IPRA off, or nullptr.
const char *ipraHazard(const llvm::Module &M);

// Makes Knobs take effect in TM's code generator for M. The outliner needs both
// the TargetOptions bit and LLVM's global "always" mode on x86 (no target
// default), and stays off where machineOutlinerHazard(M), whatever Knobs say;
// IPRA likewise where ipraHazard(M). Split-for-size exists only as LLVM's
// process-wide -split-spill-mode (the size layout, no machine LICM, no LSR and
// the later knobs likewise as their options): it is set here for the next code generation
// in this process and put back when a later decision does not ask for it (a
// measuring worker runs many). An option the user set with -mllvm
// (-enable-machine-outliner, -split-spill-mode, ...) is left as the user set it.
// Every route (clang, opt, measuring) applies decisions through this.
void applyCodegenKnobs(llvm::TargetMachine &TM, const llvm::Module &M, const CodegenKnobs &Knobs);

// A target machine equivalent to Proto (same target, CPU, features, options,
// relocation and code model, optimisation level) with Knobs applied for M.
std::unique_ptr<llvm::TargetMachine>
cloneTargetMachine(const llvm::TargetMachine &Proto, const llvm::Module &M, const CodegenKnobs &Knobs);

// The target machine clang-22 -Oz -c creates for M (PIE, default code model,
// codegen at -O2), for measuring outside clang.
llvm::Expected<std::unique_ptr<llvm::TargetMachine>>
createClangOzTargetMachine(const llvm::Module &M);

// Measures pipelines on one module: each runs on a copy of M, generates an
// object in memory with a clone of TM carrying its knobs, and is measured with
// the imports -Oz's object has as the reference (compiled once, the first time
// a measurement needs it, or taken from measuring -Oz itself first). M itself
// is left untouched; call reset() after changing it.
class Measurer {
public:
  Measurer(const llvm::Module &M, const llvm::TargetMachine &TM) : M(M), TM(TM) {}
  llvm::Expected<Sizes> measure(llvm::StringRef Pipeline, const CodegenKnobs &Knobs);
  void reset() { Reference.reset(); }

private:
  const llvm::Module &M;
  const llvm::TargetMachine &TM;
  std::optional<llvm::StringSet<>> Reference;
};

// Sizes of an in-memory ELF object; PositionIndependent: it will be linked
// into a PIE or shared object (clang's default), where absolute addresses in
// data need dynamic relocations. Reference: the symbols it may import at no
// charge (Measurer: -Oz's), the others it references being
// charged as Imports; null: an object alone, which cannot tell, charges none.
// AllImports, if given, receives every symbol it imports. Of a linked program or shared object, the
// sections as linked: image() is then `size`'s text + data (unwind: .eh_frame
// and .eh_frame_hdr, dynrelocs: the dynamic relocation sections, imports: none,
// the dynamic symbols, PLT and GOT being sections of their own there) and
// ram() its data + bss, less lld's .relro_padding (page-boundary padding).
llvm::Expected<Sizes> objectSizes(llvm::StringRef ObjectBytes, bool PositionIndependent,
                                  const llvm::StringSet<> *Reference = nullptr,
                                  llvm::StringSet<> *AllImports = nullptr);

// Whether M is compiled position-independent (PIE or PIC module flag).
bool positionIndependent(const llvm::Module &M);

// What -fno-asynchronous-unwind-tables would have given: M without unwind
// table requests (the uwtable function attribute and module flag), so no FDEs.
void dropUnwindTables(llvm::Module &M);

uint64_t countInstructions(const llvm::Module &M);

// A content hash of M (xxh3 of its printed IR without the ModuleID line), as
// 16 hex digits: equal for the same module in clang, opt and the extension.
std::string contentHash(const llvm::Module &M);

const char *ozPipeline();
const char *llvmVersion();

} // namespace clang_llm
