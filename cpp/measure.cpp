#include "measure.h"
#include "clang_llm_generated.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Analysis/AliasAnalysis.h"
#include "llvm/Analysis/TargetLibraryInfo.h"
#include "llvm/Analysis/TargetTransformInfo.h"
#include "llvm/BinaryFormat/ELF.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Object/ObjectFile.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Passes/StandardInstrumentations.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Triple.h"
#include "llvm/Transforms/Utils/Cloning.h"

#include "llvm/Support/Endian.h"

#include <map>
#include <mutex>
#include <tuple>

using namespace llvm;

namespace clang_llm {

const char *ozPipeline() { return CLANG_LLM_OZ_PIPELINE; }
const char *llvmVersion() { return CLANG_LLM_LLVM_VERSION; }

Error checkPipeline(StringRef Pipeline, TargetMachine *TM) {
  PassBuilder PB(TM);
  ModulePassManager MPM;
  return PB.parsePassPipeline(MPM, Pipeline);
}

Error runPipeline(Module &M, StringRef Pipeline, TargetMachine *TM) {
  LoopAnalysisManager LAM;
  FunctionAnalysisManager FAM;
  CGSCCAnalysisManager CGAM;
  ModuleAnalysisManager MAM;
  // Clang registers the standard instrumentations; among them is the one that
  // keeps passes off optnone functions, so leaving it out would change code.
  PassInstrumentationCallbacks PIC;
  StandardInstrumentations SI(M.getContext(), /*DebugLogging=*/false,
                              /*VerifyEach=*/false);
  SI.registerCallbacks(PIC, &MAM);
  PassBuilder PB(TM, PipelineTuningOptions(), std::nullopt, &PIC);

  // Library info from the module's triple, as clang builds it; per-function
  // "no-builtins" attributes still apply on top.
  TargetLibraryInfoImpl TLII(M.getTargetTriple());
  FAM.registerPass([&] { return TargetLibraryAnalysis(TLII); });
  FAM.registerPass([&] { return PB.buildDefaultAAPipeline(); });
  PB.registerModuleAnalyses(MAM);
  PB.registerCGSCCAnalyses(CGAM);
  PB.registerFunctionAnalyses(FAM);
  PB.registerLoopAnalyses(LAM);
  PB.crossRegisterProxies(LAM, FAM, CGAM, MAM);

  ModulePassManager MPM;
  if (Error E = PB.parsePassPipeline(MPM, Pipeline))
    return E;
  MPM.run(M, MAM);
  return Error::success();
}

namespace {
// An option given explicitly (-mllvm) is the user's decision, as it is with
// clang itself: a knob never overrides it, so a decision that asks for one gets
// the user's setting instead (checked once, before this process first sets it).
bool setByUser(cl::Option &O) {
  return O.getNumOccurrences() > 0;
}

cl::Option *findOption(StringRef Name) {
  auto &Opts = cl::getRegisteredOptions();
  auto It = Opts.find(Name);
  return It == Opts.end() ? nullptr : It->second;
}

// One of LLVM's global code generator options, set while decisions ask for it
// and put back to LLVM's default while they do not (unless the user set it).
class GlobalOption {
public:
  GlobalOption(const char *Name, const char *Value)
      : Name(Name), Value(Value), O(findOption(Name)), User(O && setByUser(*O)) {}
  void want(bool On) {
    if (!O || User || On == Ours)
      return;
    O->reset(); // else a second occurrence is an error ("may only occur once")
    if (On)
      O->addOccurrence(1, Name, Value);
    Ours = On;
  }

private:
  const char *Name, *Value;
  cl::Option *O;
  const bool User;
  bool Ours = false;
};
} // namespace

void applyCodegenKnobs(TargetMachine &TM, const Module &M, const CodegenKnobs &Knobs) {
  static std::mutex Lock;
  static GlobalOption SplitForSize("split-spill-mode", "size");
  static GlobalOption NoBlockPlacement("disable-block-placement", "true");
  static GlobalOption TailMergeOne("tail-merge-size", "1");
  static GlobalOption NoMachineLICM("disable-machine-licm", "true");
  static GlobalOption NoLSR("disable-lsr", "true");
  static GlobalOption RepCopy("max-store-memcpy", "1");
  static GlobalOption RepFill("max-store-memset", "1");
  static GlobalOption SplitBranches("x86-br-merging-base-cost", "-1");
  static GlobalOption NoMachineCSE("disable-machine-cse", "true");
  static GlobalOption NoMachineSink("disable-machine-sink", "true");
  static GlobalOption ReverseLocal("greedy-reverse-local-assignment", "true");
  {
    std::lock_guard<std::mutex> G(Lock);
    SplitForSize.want(Knobs.SplitSpillSize);
    NoBlockPlacement.want(Knobs.SizeLayout);
    TailMergeOne.want(Knobs.SizeLayout);
    NoMachineLICM.want(Knobs.NoMachineLICM);
    NoLSR.want(Knobs.NoLSR);
    RepCopy.want(Knobs.RepMemOps);
    RepFill.want(Knobs.RepMemOps);
    SplitBranches.want(Knobs.SplitBranches);
    NoMachineCSE.want(Knobs.NoMachineCSE);
    NoMachineSink.want(Knobs.NoMachineSink);
    ReverseLocal.want(Knobs.ReverseLocalAssignment);
  }
  TM.Options.EnableIPRA = Knobs.IPRA && !ipraHazard(M);
  const bool Outliner = Knobs.MachineOutliner && !machineOutlinerHazard(M);
  TM.Options.EnableMachineOutliner = Outliner;
  if (!Outliner)
    return;
  // On x86 the outliner has no "target default" mode, so without "always" the
  // TargetOptions bit alone adds nothing. The global only takes effect where the
  // bit is set, so other target machines in the process are unaffected.
  static std::once_flag Once;
  std::call_once(Once, [] {
    cl::Option *O = findOption("enable-machine-outliner");
    if (O && !setByUser(*O))
      O->addOccurrence(1, "enable-machine-outliner", "always");
  });
}

const char *ipraHazard(const Module &M) {
  for (const Function &F : M) {
    if (F.isDeclaration())
      continue;
    if (!F.hasLocalLinkage() && !F.isDSOLocal())
      return "a preemptible function definition (-fPIC)";
    // The linker may keep another object's definition of a weak or linkonce one.
    if (F.isInterposable() || !F.isDefinitionExact())
      return "a weak function definition";
    // LLVM 22's x87 stackifier aborts ("Access past stack top!") on IPRA's
    // call register masks: gcc.c-torture/execute/20080502-1.c, long double.
    for (const BasicBlock &BB : F)
      for (const Instruction &I : BB) {
        if (I.getType()->isX86_FP80Ty())
          return "x87 long double code";
        for (const Value *Op : I.operands())
          if (Op->getType()->isX86_FP80Ty())
            return "x87 long double code";
      }
  }
  return nullptr;
}

const char *machineOutlinerHazard(const Module &M) {
  static const char *const Features[] = {"+retpoline-indirect-calls", "+retpoline-indirect-branches",
                                         "+lvi-cfi", "+lvi-load-hardening"};
  for (const Function &F : M) {
    if (F.hasFnAttribute(Attribute::SpeculativeLoadHardening))
      return "speculative load hardening";
    StringRef TF = F.getFnAttribute("target-features").getValueAsString();
    for (const char *Feat : Features)
      if (TF.contains(Feat))
        return Feat + 1;
  }
  return nullptr;
}

std::unique_ptr<TargetMachine> cloneTargetMachine(const TargetMachine &Proto, const Module &M,
                                                  const CodegenKnobs &Knobs) {
  std::unique_ptr<TargetMachine> TM(Proto.getTarget().createTargetMachine(
      Proto.getTargetTriple(), Proto.getTargetCPU(),
      Proto.getTargetFeatureString(), Proto.Options,
      Proto.getRelocationModel(), Proto.getCodeModel(), Proto.getOptLevel()));
  if (TM)
    applyCodegenKnobs(*TM, M, Knobs);
  return TM;
}

static void initTargets() {
  static std::once_flag Once;
  std::call_once(Once, [] {
    InitializeAllTargetInfos();
    InitializeAllTargets();
    InitializeAllTargetMCs();
    InitializeAllAsmPrinters();
    InitializeAllAsmParsers();
  });
}

Expected<std::unique_ptr<TargetMachine>>
createClangOzTargetMachine(const Module &M) {
  initTargets();
  Triple TT = M.getTargetTriple();
  std::string Err;
  const Target *T = TargetRegistry::lookupTarget(TT, Err);
  if (!T)
    return createStringError(inconvertibleErrorCode(), "%s", Err.c_str());
  // clang passes the CPU and features it also writes as function attributes.
  std::string CPU, Features;
  for (const Function &F : M) {
    if (F.isDeclaration())
      continue;
    if (CPU.empty() && F.hasFnAttribute("target-cpu"))
      CPU = F.getFnAttribute("target-cpu").getValueAsString().str();
    if (Features.empty() && F.hasFnAttribute("target-features"))
      Features = F.getFnAttribute("target-features").getValueAsString().str();
  }
  TargetOptions Opts;
  // The clang-22 defaults on Linux that TargetOptions does not share.
  Opts.UseInitArray = true;
  Opts.EmitAddrsig = true;
  Opts.UniqueSectionNames = true;
  std::unique_ptr<TargetMachine> TM(T->createTargetMachine(
      TT, CPU, Features, Opts, Reloc::PIC_, std::nullopt,
      CodeGenOptLevel::Default));
  if (!TM)
    return createStringError(inconvertibleErrorCode(),
                             "cannot create a target machine for %s",
                             TT.str().c_str());
  return std::move(TM);
}

namespace {
// An SHF_MERGE section's bytes as the linker lays them out: each distinct piece
// (a NUL-terminated string of EntSize-wide characters, alignment padding
// included as empty strings, or an EntSize-byte constant) once, each string
// piece starting at the section's alignment, as lld lays out its merge
// sections (no tail merging: lld does that only at -O2).
struct MergeGroup {
  uint64_t PieceAlign = 1;
  StringSet<> Pieces;
  uint64_t Bytes = 0; // the end of the last piece: pieces start aligned, the last is not padded
  void add(StringRef Piece) {
    if (Pieces.insert(Piece).second)
      Bytes = alignTo(Bytes, PieceAlign) + Piece.size();
  }
};

void addMergePieces(MergeGroup &G, StringRef Content, uint64_t EntSize, bool Strings) {
  EntSize = std::max<uint64_t>(EntSize, 1);
  if (!Strings) {
    for (uint64_t I = 0; I + EntSize <= Content.size(); I += EntSize)
      G.add(Content.substr(I, EntSize));
    return;
  }
  uint64_t Start = 0;
  for (uint64_t I = 0; I + EntSize <= Content.size(); I += EntSize) {
    StringRef Unit = Content.substr(I, EntSize);
    if (Unit.find_first_not_of('\0') != StringRef::npos)
      continue;
    G.add(Content.slice(Start, I + EntSize)); // the piece includes its terminator
    Start = I + EntSize;
  }
  if (Start < Content.size()) // an unterminated tail: kept whole
    G.add(Content.substr(Start));
}

// .eh_frame's FDEs (length-prefixed records whose CIE pointer is not 0): their
// bytes plus the .eh_frame_hdr search table entry (two 4-byte fields) each.
uint64_t unwindBytes(StringRef EH, bool LittleEndian) {
  uint64_t Bytes = 0;
  uint64_t Off = 0;
  auto Read32 = [&](uint64_t At) {
    return support::endian::read32(EH.data() + At, LittleEndian ? endianness::little : endianness::big);
  };
  while (Off + 4 <= EH.size()) {
    uint64_t Len = Read32(Off);
    uint64_t Header = 4;
    if (Len == 0)
      break; // terminator
    if (Len == 0xffffffffu) {
      if (Off + 12 > EH.size())
        break;
      Len = support::endian::read64(EH.data() + Off + 4, LittleEndian ? endianness::little : endianness::big);
      Header = 12;
    }
    if (Off + Header + 4 > EH.size() || Len > EH.size() - Off - Header)
      break;
    bool IsCIE = Read32(Off + Header) == 0;
    if (!IsCIE)
      Bytes += Header + Len + 8;
    Off += Header + Len;
  }
  return Bytes;
}

// The relocation type that stores an absolute address, which a PIE or shared
// object turns into a dynamic relocation.
bool absoluteAddress(uint16_t Machine, uint64_t Type) {
  switch (Machine) {
  case ELF::EM_X86_64:
    return Type == ELF::R_X86_64_64;
  case ELF::EM_AARCH64:
    return Type == ELF::R_AARCH64_ABS64;
  case ELF::EM_RISCV:
    return Type == ELF::R_RISCV_64;
  default:
    return false;
  }
}
constexpr uint64_t DynRelocBytes = 24; // an Elf64_Rela entry

// How a relocation reaches a symbol, for what an imported one costs: a call
// goes through a PLT stub, an absolute address becomes a dynamic relocation of
// its own (counted as DynRelocs), anything else (GOT-relative loads, TLS, a
// PC-relative reference the linker must satisfy with a copy) needs a GOT slot.
enum class Reach { Call, Absolute, Slot };
Reach reach(uint16_t Machine, uint64_t Type) {
  if (absoluteAddress(Machine, Type))
    return Reach::Absolute;
  switch (Machine) {
  case ELF::EM_X86_64:
    return Type == ELF::R_X86_64_PLT32 ? Reach::Call : Reach::Slot;
  case ELF::EM_AARCH64:
    return Type == ELF::R_AARCH64_CALL26 || Type == ELF::R_AARCH64_JUMP26 ? Reach::Call : Reach::Slot;
  case ELF::EM_RISCV:
    return Type == ELF::R_RISCV_CALL_PLT || Type == ELF::R_RISCV_CALL ? Reach::Call : Reach::Slot;
  default:
    return Reach::Slot;
  }
}

// What the dynamic link adds per imported symbol (x86-64 and the other ELF64
// targets alike): an Elf64_Sym, a .gnu.version entry and the name in .dynstr;
// per way of reaching it a relocation and an 8-byte slot, and a call's PLT stub.
constexpr uint64_t DynSymBytes = 24 + 2, SlotBytes = 8, PLTStubBytes = 16;
struct Import {
  bool Call = false, Slot = false;
};
void addImports(Sizes &S, const std::map<std::string, Import> &Imports) {
  for (const auto &[Name, I] : Imports) {
    S.Imports += DynSymBytes + Name.size() + 1;
    if (I.Call) {
      S.Imports += PLTStubBytes + DynRelocBytes + SlotBytes;
      S.ImportSlots += SlotBytes;
    }
    if (I.Slot) {
      S.Imports += DynRelocBytes + SlotBytes;
      S.ImportSlots += SlotBytes;
    }
  }
}

// sh_entsize, which SectionRef does not expose: through the typed ELF file.
uint64_t entrySize(const object::ELFObjectFileBase &Obj, const object::SectionRef &Sec) {
  auto Of = [&](const auto *O) -> uint64_t {
    return O ? uint64_t(O->getSection(Sec.getRawDataRefImpl())->sh_entsize) : 0;
  };
  if (auto *O = dyn_cast<object::ELF64LEObjectFile>(&Obj))
    return Of(O);
  if (auto *O = dyn_cast<object::ELF64BEObjectFile>(&Obj))
    return Of(O);
  if (auto *O = dyn_cast<object::ELF32LEObjectFile>(&Obj))
    return Of(O);
  return Of(dyn_cast<object::ELF32BEObjectFile>(&Obj));
}

// A linked program or shared object: what the link made, section by section,
// so that image() is exactly `size`'s text + data (every allocated section that
// occupies file space) and ram() its data + bss.
Expected<Sizes> linkedSizes(const object::ELFObjectFileBase &ELF) {
  Sizes S;
  for (const object::SectionRef &Sec : ELF.sections()) {
    object::ELFSectionRef ES(Sec);
    uint64_t Flags = ES.getFlags();
    if (!(Flags & ELF::SHF_ALLOC))
      continue;
    uint64_t Size = Sec.getSize();
    uint32_t Type = ES.getType();
    Expected<StringRef> Name = Sec.getName();
    if (!Name)
      return Name.takeError();
    // lld pads the RELRO segment to a page boundary with a NOBITS section of
    // its own: layout, not data (llvm-size counts it as bss; the GNU linkers
    // have no such section). Left out, RAM moves with what the program stores,
    // not with where the page boundary falls.
    if (Type == ELF::SHT_NOBITS && *Name == ".relro_padding")
      continue;
    if (Type == ELF::SHT_NOBITS) {
      S.BSS += Size;
      continue;
    }
    if (Flags & ELF::SHF_EXECINSTR)
      S.Text += Size;
    else if (Flags & ELF::SHF_WRITE)
      S.Data += Size;
    else if (*Name == ".eh_frame" || *Name == ".eh_frame_hdr" || Type == ELF::SHT_X86_64_UNWIND)
      S.Unwind += Size;
    else if (Type == ELF::SHT_RELA || Type == ELF::SHT_REL || Type == ELF::SHT_RELR)
      S.DynRelocs += Size;
    else
      S.ROData += Size;
  }
  return S;
}
} // namespace

Expected<Sizes> objectSizes(StringRef ObjectBytes, bool PositionIndependent,
                            const StringSet<> *Reference, StringSet<> *AllImports) {
  auto Obj = object::ObjectFile::createObjectFile(
      MemoryBufferRef(ObjectBytes, "<memory>"));
  if (!Obj)
    return Obj.takeError();
  auto *ELF = dyn_cast<object::ELFObjectFileBase>(Obj->get());
  if (!ELF)
    return createStringError(inconvertibleErrorCode(), "not an ELF object file");
  if (ELF->getEType() == ELF::ET_EXEC || ELF->getEType() == ELF::ET_DYN)
    return linkedSizes(*ELF);
  Sizes S;
  // Merge groups as lld forms them: by flags and entry size, string sections
  // also by alignment.
  std::map<std::tuple<uint64_t, uint64_t, uint64_t>, MergeGroup> Merged;
  // Ordered by name so that the sum is the same whatever the symbol order.
  std::map<std::string, Import> Imports;
  for (const object::SectionRef &Sec : ELF->sections()) {
    object::ELFSectionRef ES(Sec);
    uint64_t Flags = ES.getFlags();
    if (ES.getType() == ELF::SHT_RELA || ES.getType() == ELF::SHT_REL) {
      Expected<object::section_iterator> Target = Sec.getRelocatedSection();
      if (!Target) {
        consumeError(Target.takeError());
        continue;
      }
      // Debug info and other unallocated sections cost nothing at run time.
      if (*Target == ELF->section_end() || !(object::ELFSectionRef(**Target).getFlags() & ELF::SHF_ALLOC))
        continue;
      for (const object::RelocationRef &R : Sec.relocations()) {
        Reach How = reach(ELF->getEMachine(), R.getType());
        if (PositionIndependent && How == Reach::Absolute)
          S.DynRelocs += DynRelocBytes;
        object::symbol_iterator Sym = R.getSymbol();
        if (Sym == ELF->symbol_end())
          continue;
        Expected<uint32_t> SymFlags = Sym->getFlags();
        if (!SymFlags)
          return SymFlags.takeError();
        if (!(*SymFlags & object::SymbolRef::SF_Undefined))
          continue;
        Expected<StringRef> SymName = Sym->getName();
        if (!SymName)
          return SymName.takeError();
        // The GOT's own symbol is the linker's, not an import.
        if (SymName->empty() || *SymName == "_GLOBAL_OFFSET_TABLE_")
          continue;
        if (AllImports)
          AllImports->insert(*SymName);
        if (!Reference || Reference->contains(*SymName))
          continue;
        Import &I = Imports[SymName->str()];
        I.Call |= How == Reach::Call;
        I.Slot |= How == Reach::Slot;
      }
      continue;
    }
    if (!(Flags & ELF::SHF_ALLOC))
      continue;
    uint64_t Size = Sec.getSize();
    if (ES.getType() == ELF::SHT_NOBITS) {
      if (Flags & ELF::SHF_WRITE)
        S.BSS += Size;
      continue;
    }
    if (Flags & ELF::SHF_EXECINSTR) {
      S.Text += Size;
      continue;
    }
    if (Flags & ELF::SHF_WRITE) {
      S.Data += Size;
      continue;
    }
    Expected<StringRef> Name = Sec.getName();
    if (!Name)
      return Name.takeError();
    Expected<StringRef> Content = Sec.getContents();
    if (!Content)
      return Content.takeError();
    if (*Name == ".eh_frame" || ES.getType() == ELF::SHT_X86_64_UNWIND) {
      S.Unwind += unwindBytes(*Content, ELF->isLittleEndian());
      continue;
    }
    if (Flags & ELF::SHF_MERGE) {
      bool Strings = Flags & ELF::SHF_STRINGS;
      uint64_t Align = Sec.getAlignment().value();
      uint64_t EntSize = entrySize(*ELF, Sec);
      MergeGroup &G = Merged[{Flags, EntSize, Strings ? Align : 0}];
      G.PieceAlign = Strings ? Align : 1;
      addMergePieces(G, *Content, EntSize, Strings);
      continue;
    }
    S.ROData += Size;
  }
  for (auto &KV : Merged)
    S.ROData += KV.second.Bytes;
  addImports(S, Imports);
  return S;
}

bool positionIndependent(const Module &M) {
  return M.getPICLevel() != PICLevel::NotPIC || M.getPIELevel() != PIELevel::Default;
}

void dropUnwindTables(Module &M) {
  for (Function &F : M)
    F.removeFnAttr(Attribute::UWTable);
  NamedMDNode *Flags = M.getModuleFlagsMetadata();
  if (!Flags)
    return;
  SmallVector<MDNode *, 8> Keep;
  for (MDNode *Flag : Flags->operands()) {
    auto *Key = Flag->getNumOperands() > 1 ? dyn_cast<MDString>(Flag->getOperand(1)) : nullptr;
    if (!Key || Key->getString() != "uwtable")
      Keep.push_back(Flag);
  }
  Flags->clearOperands();
  for (MDNode *Flag : Keep)
    Flags->addOperand(Flag);
}

namespace {
// Runs Pipeline on a copy of M and generates an object in memory with a clone
// of Proto carrying Knobs: the same legacy codegen set-up clang uses after its
// middle end. Insts: the IR instructions after the pipeline.
Error compile(const Module &M, StringRef Pipeline, const CodegenKnobs &Knobs, const TargetMachine &Proto,
              SmallVectorImpl<char> &Buffer, uint64_t &Insts) {
  std::unique_ptr<Module> Copy = CloneModule(M);
  std::unique_ptr<TargetMachine> TM = cloneTargetMachine(Proto, M, Knobs);
  if (!TM)
    return createStringError(inconvertibleErrorCode(), "cannot clone the target machine");
  if (Error E = runPipeline(*Copy, Pipeline, TM.get()))
    return E;
  Insts = countInstructions(*Copy);
  raw_svector_ostream OS(Buffer);
  legacy::PassManager CodeGen;
  CodeGen.add(createTargetTransformInfoWrapperPass(TM->getTargetIRAnalysis()));
  TargetLibraryInfoImpl TLII(Copy->getTargetTriple());
  CodeGen.add(new TargetLibraryInfoWrapperPass(TLII));
  if (TM->addPassesToEmitFile(CodeGen, OS, nullptr, CodeGenFileType::ObjectFile,
                              /*DisableVerify=*/true))
    return createStringError(inconvertibleErrorCode(), "the target cannot emit object files");
  CodeGen.run(*Copy);
  return Error::success();
}
} // namespace

Expected<Sizes> Measurer::measure(StringRef Pipeline, const CodegenKnobs &Knobs) {
  bool PI = positionIndependent(M);
  bool ClangOz = Pipeline == ozPipeline() && Knobs.bits() == 0;
  if (!Reference && !ClangOz) {
    // What -Oz's object imports, once per module: the reference every
    // pipeline's new imports are charged against.
    SmallVector<char, 0> Oz;
    uint64_t Unused;
    if (Error E = compile(M, ozPipeline(), CodegenKnobs{}, TM, Oz, Unused))
      return std::move(E);
    StringSet<> Imported;
    if (Expected<Sizes> S = objectSizes(StringRef(Oz.data(), Oz.size()), PI, nullptr, &Imported); !S)
      return S.takeError();
    Reference = std::move(Imported);
  }
  SmallVector<char, 0> Buffer;
  uint64_t Insts = 0;
  if (Error E = compile(M, Pipeline, Knobs, TM, Buffer, Insts))
    return std::move(E);
  StringRef Obj(Buffer.data(), Buffer.size());
  Expected<Sizes> S = [&]() -> Expected<Sizes> {
    if (Reference)
      return objectSizes(Obj, PI, &*Reference);
    // Measuring -Oz itself first: its imports are the reference, and it is
    // charged none.
    StringSet<> Imported;
    Expected<Sizes> R = objectSizes(Obj, PI, nullptr, &Imported);
    if (R)
      Reference = std::move(Imported);
    return R;
  }();
  if (S)
    S->IRInstructions = Insts;
  return S;
}

uint64_t countInstructions(const Module &M) {
  uint64_t N = 0;
  for (const Function &F : M)
    N += F.getInstructionCount();
  return N;
}

std::string contentHash(const Module &M) {
  // Over the printed IR, not the bitcode: the same module read back by opt
  // encodes to different bitcode bytes than clang's in-memory one, while its
  // text is identical. The ModuleID line names the file, not the content.
  std::string Text;
  raw_string_ostream OS(Text);
  M.print(OS, nullptr);
  StringRef Body(Text);
  if (Body.starts_with("; ModuleID"))
    Body = Body.split('\n').second;
  uint64_t H = xxh3_64bits(Body);
  std::string Out;
  raw_string_ostream(Out) << format_hex_no_prefix(H, 16);
  return Out;
}

} // namespace clang_llm
