"""The size metric (cpp/measure.h Sizes, clang_llm.sizes): each way a pipeline can
trade bytes moves the image or RAM the right way, and the object-level numbers
agree with what the linker makes of the object (ld.lld-22 -r merges SHF_MERGE
sections and llvm-size reads the result as `size` would)."""

import pytest

from clang_llm import _core, pipelines, sizes
from conftest import run

pytestmark = pytest.mark.integration

HEAD = 'target triple = "x86_64-pc-linux-gnu"\n'
FN_ATTRS = 'attributes #0 = { minsize optsize nounwind uwtable "frame-pointer"="none" }\n'
UWTABLE_FLAG = '!llvm.module.flags = !{!0}\n!0 = !{i32 7, !"uwtable", i32 2}\n'


def module(body: str, unwind: bool = True) -> _core.LoadedModule:
    text = HEAD + body + FN_ATTRS.replace(" uwtable", "" if not unwind else " uwtable")
    if unwind:
        text += UWTABLE_FLAG
    return _core.LoadedModule(text.encode(), "t.ll")


# A lookup table the program only reads, but declared writable: globalopt (in
# -Oz) proves it constant and moves it to .rodata; a pipeline without it leaves
# 4 KB of RAM behind for a table nothing writes.
TABLE = """
@tab = internal global [1024 x i32] [i32 1, i32 2, i32 3, i32 4, i32 5, {rest}]
define i32 @get(i64 %i) #0 {{
  %p = getelementptr [1024 x i32], ptr @tab, i64 0, i64 %i
  %v = load i32, ptr %p
  ret i32 %v
}}
""".format(rest=", ".join(["i32 7"] * 1019))


def test_a_table_left_in_data_costs_ram_and_verify_refuses_it():
    m = module(TABLE)
    oz = m.measure(pipelines.oz_pipeline(), 0)
    kept = m.measure("function(instcombine)", 0)
    assert oz["data"] == 0 and oz["rodata"] >= 4096 and oz["ram"] == 0
    assert kept["data"] >= 4096 and kept["ram"] >= 4096
    # .text is no smaller under -Oz here; by image alone the two could tie, but
    # the RAM rule never lets the writable copy replace -Oz.
    assert not sizes.acceptable(kept, oz)
    assert sizes.smallest([("oz", oz), ("kept", kept)]) == 0


# A string table nothing uses: -Oz's globaldce drops it; a pipeline without
# it keeps its bytes in .rodata, which .text alone never sees.
DEAD = """
@names = internal unnamed_addr constant [6 x [40 x i8]] [{rows}]
define i32 @f(i32 %x) #0 {{
  %y = add i32 %x, 1
  ret i32 %y
}}
""".format(rows=", ".join(f'[40 x i8] c"{("name-%d" % i).ljust(39, "x")}\\00"' for i in range(6)))


def test_a_dead_string_table_counts_in_the_image():
    m = module(DEAD)
    oz = m.measure(pipelines.oz_pipeline(), 0)
    kept = m.measure("function(instcombine)", 0)
    assert kept["text"] == oz["text"]
    assert kept["rodata"] - oz["rodata"] == 240
    assert kept["image"] - oz["image"] == 240
    assert sizes.smallest([("oz", oz), ("kept", kept)]) == 0


# Two copies of the same string (no constmerge): the object holds both, the
# linker keeps one.
DUPLICATES = """
@a = private unnamed_addr constant [24 x i8] c"the same text, twice...\\00"
@b = private unnamed_addr constant [24 x i8] c"the same text, twice...\\00"
@c = private unnamed_addr constant [6 x i8] c"other\\00"
declare i32 @puts(ptr)
define void @f() #0 {
  call i32 @puts(ptr @a)
  call i32 @puts(ptr @b)
  call i32 @puts(ptr @c)
  ret void
}
"""


def _section_sizes(obj) -> dict:
    out = run(["llvm-size-22", "-A", obj]).stdout.decode()
    rows = [ln.split() for ln in out.splitlines()[2:]]
    return {r[0]: int(r[1]) for r in rows if len(r) >= 2 and r[1].isdigit()}


def test_duplicate_strings_count_once_as_the_linker_merges_them(tmp_path, lld):
    m = module(DUPLICATES)
    merged = m.measure("function(instcombine)", 0)
    # .rodata.str1.16: one 24-byte string, padding to 16, and the empty string
    # that alignment padding is to the linker; .rodata.str1.1: "other".
    assert merged["rodata"] == 32 + 1 + 6
    # The same object through the linker: ld.lld -r merges as a final link does.
    (tmp_path / "t.ll").write_text(HEAD + DUPLICATES + FN_ATTRS + UWTABLE_FLAG)
    obj, rel = tmp_path / "t.o", tmp_path / "r.o"
    run(["clang-22", "-Oz", "-Xclang", "-disable-llvm-passes", "-c", tmp_path / "t.ll", "-o", obj])
    raw = _section_sizes(obj)
    assert sum(v for k, v in raw.items() if k.startswith(".rodata")) == 24 + 8 + 24 + 6
    run([lld, "-r", obj, "-o", rel])
    linked = _section_sizes(rel)
    assert sum(v for k, v in linked.items() if k.startswith(".rodata")) == merged["rodata"]
    assert _core.object_sizes(obj.read_bytes())["rodata"] == merged["rodata"]


# Functions with the same long body: the machine outliner moves the common
# sequence into a new function, and every function (the outlined one too) has
# an FDE in .eh_frame and an 8-byte entry in .eh_frame_hdr.
SAME = "".join(f"""
define void @f{i}(ptr %p, i32 %x) #0 {{
  %a = mul i32 %x, 7
  store volatile i32 %a, ptr %p
  %b = add i32 %a, 9
  store volatile i32 %b, ptr %p
  %c = xor i32 %b, 1234567
  store volatile i32 %c, ptr %p
  %d = mul i32 %c, 13
  store volatile i32 %d, ptr %p
  %e = add i32 %d, 99999
  store volatile i32 %e, ptr %p
  ret void
}}
""" for i in range(6))


def _fdes(obj: bytes) -> int:
    """FDEs in an object, as llvm-dwarfdump lists them."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".o") as f:
        f.write(obj)
        f.flush()
        out = run(["llvm-dwarfdump-22", "--eh-frame", f.name]).stdout.decode()
    return sum(1 for ln in out.splitlines() if " FDE " in ln)


def test_outlined_functions_pay_for_their_unwind_entries():
    m = module(SAME)
    plain = m.measure(pipelines.oz_pipeline(), 0)
    outlined = m.measure(pipelines.oz_pipeline(), pipelines.MACHINE_OUTLINER)
    assert outlined["text"] < plain["text"], "the outliner found nothing to outline"
    assert outlined["unwind"] > plain["unwind"]
    # Without unwind tables the same outlining has no such cost.
    bare = module(SAME, unwind=False)
    assert bare.measure(pipelines.oz_pipeline(), 0)["unwind"] == 0
    assert bare.measure(pipelines.oz_pipeline(), pipelines.MACHINE_OUTLINER)["unwind"] == 0


def test_unwind_bytes_are_the_fdes_and_their_search_table_entries(tmp_path, lld, clang):
    src = tmp_path / "t.c"
    src.write_text("".join(f"int f{i}(int x) {{ return x * {i + 3} + g(x); }}\n" for i in range(5))
                   .replace("int f0", "int g(int);\nint f0"))
    obj = tmp_path / "t.o"
    run([clang, "-Oz", "-c", src, "-o", obj])
    got = _core.object_sizes(obj.read_bytes())
    n = _fdes(obj.read_bytes())
    assert n == 5
    eh = _section_sizes(obj)[".eh_frame"]
    cie = eh - (got["unwind"] - 8 * n)
    assert 0 < cie < 48  # what is left of .eh_frame is the one CIE the link shares
    # Linked into a program, .eh_frame_hdr holds a 12-byte header and 8 bytes per FDE.
    main = tmp_path / "main.c"
    main.write_text("int f4(int); int g(int x) { return x; } int main(void) { return f4(1); }\n")
    exe = tmp_path / "a.out"
    run([clang, "-Oz", "-fuse-ld=lld", src, main, "-o", exe])
    hdr = _section_sizes(exe)[".eh_frame_hdr"]
    assert (hdr - 12) % 8 == 0 and (hdr - 12) // 8 >= n


def test_dropping_unwind_tables_is_what_the_flag_gives(tmp_path, clang):
    src = tmp_path / "t.c"
    src.write_text("int g(int); int f(int x) { return g(x) + g(x + 1); }\nint h(int x) { return x * 3; }\n")
    mods = {}
    for name, flags in (("on", []), ("off", ["-fno-asynchronous-unwind-tables"])):
        bc = tmp_path / f"{name}.bc"
        run([clang, "-Oz", *flags, "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", src, "-o", bc])
        mods[name] = _core.LoadedModule(bc.read_bytes(), str(bc))
    assert mods["on"].unwind_tables and not mods["off"].unwind_tables
    mods["on"].drop_unwind_tables()
    assert not mods["on"].unwind_tables
    oz = pipelines.oz_pipeline()
    assert mods["on"].measure(oz, 0) == mods["off"].measure(oz, 0)
    assert mods["on"].content_hash() == mods["off"].content_hash()


def test_pointers_in_data_cost_dynamic_relocations_in_a_pie(tmp_path, clang):
    src = tmp_path / "t.c"
    src.write_text('const char *const names[] = {"a", "b", "c", "d"};\n'
                   'const char *name(int i) { return names[i]; }\n')
    obj = tmp_path / "t.o"
    run([clang, "-Oz", "-c", src, "-o", obj])
    pie = _core.object_sizes(obj.read_bytes())
    fixed = _core.object_sizes(obj.read_bytes(), position_independent=False)
    assert pie["dynrelocs"] == 4 * 24 and fixed["dynrelocs"] == 0
    assert pie["image"] - fixed["image"] == 4 * 24
    assert pie["data"] == 32 and pie["ram"] == 32


def test_image_is_the_sum_of_its_parts():
    s = module(TABLE).measure(pipelines.oz_pipeline(), pipelines.MACHINE_OUTLINER)
    assert set(sizes.FIELDS) <= set(s)
    assert s["image"] == s["text"] + s["rodata"] + s["unwind"] + s["data"] + s["dynrelocs"] + s["imports"]
    assert s["ram"] == s["data"] + s["bss"] + s["import_slots"]


def test_a_new_library_call_costs_what_the_link_adds_for_it(tmp_path, clang):
    """A loop that clears memory becomes a call to memset at -O2 (loop idiom
    recognition), with -fno-builtin it stays a loop: the import the pipeline
    added (PLT stub, GOT slot, relocation, dynamic symbol and name) is in the
    module's image and RAM, and the module-level difference is the linked
    program's, as `size` counts it. What the source itself calls (puts) costs
    nothing extra: every pipeline imports it alike."""
    lib = tmp_path / "clear.c"
    lib.write_text("#include <stdio.h>\n"
                   "void clear(char *p, unsigned long n) { for (unsigned long i = 0; i < n; i++) p[i] = 0; }\n"
                   "void hello(void) { puts(\"hi\"); }\n")
    main = tmp_path / "main.c"
    # main calls puts so that the PLT and its header exist either way: the
    # difference is what one more imported function costs.
    main.write_text("#include <stdio.h>\nvoid clear(char *, unsigned long); char buf[64];\n"
                    "int main(int c, char **v) { clear(buf, c); puts(v[0]); return buf[0]; }\n")
    mod, linked = {}, {}
    for name, flags in (("call", []), ("loop", ["-fno-builtin"])):
        bc, obj, exe = (tmp_path / f"{name}{ext}" for ext in (".bc", ".o", ".out"))
        run([clang, "-O2", *flags, "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", lib, "-o", bc])
        run([clang, "-O2", *flags, "-c", lib, "-o", obj])
        run([clang, "-Oz", "-fuse-ld=lld", obj, main, "-o", exe])
        mod[name] = _core.LoadedModule(bc.read_bytes(), str(bc)).measure("default<O2>", 0)
        # The measurement is the object clang wrote, which alone cannot tell
        # the imports its source asked for.
        alone = _core.object_sizes(obj.read_bytes())
        assert alone["imports"] == 0 and {k: mod[name][k] for k in ("text", "rodata", "unwind", "data")} == \
            {k: alone[k] for k in ("text", "rodata", "unwind", "data")}
        linked[name] = _core.object_sizes(exe.read_bytes())
    assert mod["loop"]["imports"] == 0 and mod["loop"]["import_slots"] == 0
    # memset: a 24-byte symbol, 2 bytes of version, "memset\0", a 24-byte
    # relocation, an 8-byte .got.plt slot and a 16-byte PLT stub.
    assert mod["call"]["imports"] == 24 + 2 + 7 + 24 + 8 + 16
    assert mod["call"]["import_slots"] == 8
    assert mod["call"]["text"] < mod["loop"]["text"], "the call is shorter code than the loop"
    for key in ("image", "ram"):
        predicted = mod["call"][key] - mod["loop"][key]
        measured = linked["call"][key] - linked["loop"][key]
        assert predicted == measured, (key, predicted, measured)


def test_the_object_clang_writes_measures_as_the_measurement_said(tmp_path, clang):
    src = tmp_path / "t.c"
    src.write_text('#include <stdio.h>\nstatic int counts[64];\nstatic const char *msg[] = {"x", "y"};\n'
                   'int f(int i) { counts[i & 63]++; puts(msg[i & 1]); puts("x"); return counts[0]; }\n')
    bc, obj = tmp_path / "t.bc", tmp_path / "t.o"
    run([clang, "-Oz", "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", src, "-o", bc])
    run([clang, "-Oz", "-c", src, "-o", obj])
    measured = _core.LoadedModule(bc.read_bytes(), str(bc)).measure(pipelines.oz_pipeline(), 0)
    on_disk = _core.object_sizes(obj.read_bytes())
    assert {k: measured[k] for k in on_disk} == on_disk
    assert on_disk["bss"] == 256


HELLO = """
@.s = private unnamed_addr constant [4 x i8] c"hi\\0A\\00"
declare i32 @printf(ptr, ...)
define void @hello() #0 {
  %r = call i32 (ptr, ...) @printf(ptr @.s)
  ret void
}
"""


@pytest.mark.parametrize("first", ["oz", "other"])
def test_imports_are_charged_against_oz_whichever_is_measured_first(first):
    """-Oz turns printf("hi\\n") into puts("hi"): -Oz is the reference and pays
    nothing for puts; a pipeline that keeps printf pays for it (the rest of the
    program may not import printf), with no credit for avoiding puts."""
    m = module(HELLO)
    plain = "function(sroa)"
    got = {}
    for name in ([first] + [n for n in ("oz", "other") if n != first]):
        got[name] = m.measure(pipelines.oz_pipeline() if name == "oz" else plain, 0)
    assert got["oz"]["imports"] == 0 and got["oz"]["import_slots"] == 0
    assert got["other"]["imports"] == 24 + 2 + len("printf") + 1 + 24 + 8 + 16
    assert got["other"]["import_slots"] == 8
    assert got["oz"]["rodata"] < got["other"]["rodata"], "-Oz should have dropped the newline (puts)"


def test_a_linked_program_measures_as_size_counts_it(tmp_path, clang):
    src = tmp_path / "t.c"
    src.write_text('#include <stdio.h>\nstatic int buf[100];\nint seen = 3;\n'
                   'int main(int argc, char **argv) { buf[argc] = seen; puts(argv[0]); return buf[1]; }\n')
    exe = tmp_path / "a.out"
    run([clang, "-Oz", src, "-o", exe])
    got = _core.object_sizes(exe.read_bytes())
    text, data, bss = (int(x) for x in run(["llvm-size-22", "-B", exe]).stdout.decode().splitlines()[1].split()[:3])
    assert got["image"] == text + data
    assert got["ram"] == data + bss


@pytest.mark.parametrize("flags", [[], ["-fno-asynchronous-unwind-tables"]])
def test_verify_is_never_larger_than_oz_in_image_or_ram(tmp_path, flags):
    """Verify mode's guarantee, per module, on the bundled example: the object
    it writes is the measured choice, and that is no larger than -Oz's in image
    bytes and needs no more RAM. (The objects alone carry no import charges,
    cpp/measure.h: the measurements add them for the calls code generation
    added.)"""
    import json

    from conftest import BIN, ROOT, clean_env

    log = tmp_path / "log.jsonl"
    for src in sorted((ROOT / "examples" / "minicalc").glob("*.c")):
        got, oz = tmp_path / f"{src.stem}.o", tmp_path / f"{src.stem}.oz.o"
        run([BIN / "clang-llm", "-Oz-llm=verify", *flags, "-c", src, "-o", got],
            env=clean_env(CLANG_LLM_STRICT=1, CLANG_LLM_LOG=log, CLANG_LLM_VERIFY_K=8))
        run(["clang-22", "-Oz", *flags, "-c", src, "-o", oz])
        g, o = _core.object_sizes(got.read_bytes()), _core.object_sizes(oz.read_bytes())
        entry = json.loads(log.read_text().splitlines()[-1])
        chosen, measured_oz = entry["measured"][entry["pipeline"]], entry["measured"]["oz"]
        assert chosen["image"] <= measured_oz["image"] and chosen["ram"] <= measured_oz["ram"], src.name
        for m, obj in ((measured_oz, o), (chosen, g)):
            m = sizes.object_view(m)
            assert (m["image"], m["ram"]) == (obj["image"], obj["ram"]), src.name
