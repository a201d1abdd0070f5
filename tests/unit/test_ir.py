"""IR normalisation, chunking, tokenizer and features (clang_llm.ir, clang_llm.features).

data/sample.ll and data/sample_g.ll are one small C file compiled by clang-22 -Oz
-Xclang -disable-llvm-passes -emit-llvm -S, without and with -g.
"""

import re
from pathlib import Path

import pytest

from clang_llm import features, ir

DATA = Path(__file__).with_name("data")
SAMPLE = (DATA / "sample.ll").read_text()
SAMPLE_G = (DATA / "sample_g.ll").read_text()


def _renamed(text: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        text = re.sub(re.escape(old) + r"\b", new, text)
    return text


def test_debug_info_and_metadata_are_gone():
    assert "dbg" in SAMPLE_G and "!tbaa" in SAMPLE_G
    norm = ir.normalise(SAMPLE_G)
    for gone in ("dbg", "!", ";", "source_filename", "target", "noundef", "align", "#0", "hello"):
        assert gone not in norm, gone
    # Debug info changes nothing the model sees.
    assert norm == ir.normalise(SAMPLE)


def test_names_are_canonical():
    # The same code with other names for values, blocks, globals, functions and
    # types normalises to the same text.
    other = _renamed(SAMPLE, {"%struct.point": "%struct.coord", "@sum": "@total_of", "@twice": "@dbl",
                              "@counter": "@n_calls", "@greeting": "@msg"})
    other = other.replace("%3 = alloca ptr", "%p.addr = alloca ptr").replace("ptr %3,", "ptr %p.addr,") \
        .replace("ptr %3\n", "ptr %p.addr\n")
    assert other != SAMPLE and "%p.addr" in other
    assert ir.normalise(other) == ir.normalise(SAMPLE)
    norm = ir.normalise(SAMPLE)
    assert "@strlen" in norm                    # declared externals keep their names
    assert "@llvm.lifetime.start(" in norm      # intrinsics lose their type suffix
    assert "@0(" in norm and "@sum" not in norm and "%T0" in norm


def test_string_contents_shortened_and_lengths_kept():
    names = ir.Names(set())
    out = ir.normalise_function('define void @f() {\n  store [13 x i8] c"hello, world\\00", ptr @g\n  ret void\n}\n',
                                names)
    assert 'c"s"' in out and "hello" not in out and "[13 x i8]" in out


def test_normalisation_is_deterministic_and_repeats_squeezed():
    assert ir.normalise(SAMPLE) == ir.normalise(SAMPLE)
    assert "alloca i32 (x3)" in ir.normalise(SAMPLE)


def test_functions_and_selection_largest_first():
    fns = ir.functions(SAMPLE)
    assert [f.text.split("(")[0] for f in fns] == ["define dso_local i32 @sum", "define internal i32 @twice"]
    assert fns[0].instructions > fns[1].instructions > 0
    assert all(f.text.rstrip().endswith("}") for f in fns)
    many = "".join(f"define void @f{i}() {{\n" + "  call void @g()\n" * i + "  ret void\n}\n\n" for i in range(20))
    picked = ir.select(ir.functions(many))
    assert len(picked) == ir.MAX_CHUNKS
    assert [f.size for f in picked] == sorted((f.size for f in picked), reverse=True)


@pytest.fixture(scope="module")
def tokenizer():
    return ir.train_tokenizer([ir.normalise(SAMPLE)] * 3, vocab_size=300, min_frequency=1)


def test_tokenizer_round_trip_and_hash(tokenizer, tmp_path):
    assert [tokenizer.token_to_id(t) for t in ir.SPECIAL_TOKENS] == [ir.PAD_ID, ir.UNK_ID, ir.EMPTY_ID]
    text = ir.normalise(SAMPLE)
    enc = tokenizer.encode(text)
    # Whitespace and commas carry nothing; everything else comes back.
    assert "".join(enc.tokens) == re.sub(r"[\s,]", "", text)
    path = tmp_path / "tokenizer.json"
    path.write_text(tokenizer.to_str())
    loaded, digest = ir.load_tokenizer(str(path))
    assert loaded.encode(text).ids == enc.ids
    assert digest == ir.tokenizer_hash(path.read_text()) and len(digest) == 16
    other = ir.train_tokenizer([text], vocab_size=200, min_frequency=1)
    assert ir.tokenizer_hash(other.to_str()) != digest


def test_encode_bounds_work_for_any_module(tokenizer):
    enc = ir.encode(SAMPLE, tokenizer)
    assert 1 <= len(enc.chunks) <= ir.MAX_CHUNKS
    assert all(1 <= len(c) <= ir.CHUNK_TOKENS for c in enc.chunks)
    # One huge function: capped at WINDOWS_PER_FUNCTION windows, coverage says so.
    huge = "define void @f(ptr %p) {\n" + "  store i32 1, ptr %p\n  call void @g(ptr %p)\n" * 5000 + "  ret void\n}\n"
    big = ir.encode(huge, tokenizer)
    assert len(big.chunks) == ir.WINDOWS_PER_FUNCTION
    assert 0 < big.covered < 10001 / 10
    assert ir.encode("; ModuleID = 'x'\n@g = global i32 0\n", tokenizer).chunks == [[ir.EMPTY_ID]]
    padded = ir.pad(enc.chunks)
    assert padded.shape == (len(enc.chunks), max(map(len, enc.chunks))) and padded.dtype.name == "int64"


def test_features_count_the_sample():
    c = features.counts(SAMPLE)
    assert c["functions"] == 2 and c["internal_functions"] == 1 and c["external_functions"] == 1
    assert c["op_switch"] == 1 and c["switch_cases"] == 2
    assert c["back_edges"] == 1                       # the for loop
    assert c["calls_direct"] == 2                     # twice, strlen
    assert c["calls_internal"] == 1 and c["internal_called_once"] == 1
    assert c["calls_intrinsic"] == 4                  # lifetime start/end
    assert c["global_strings"] == 1 and c["global_string_bytes"] == 13
    assert c["globals"] == 3 and c["struct_types"] == 1
    assert c["op_ret"] == 2 and c["op_alloca"] == 5
    assert c["instructions"] == sum(c[f"op_{o}"] for o in features.OPCODES)
    assert features.counts(SAMPLE_G) == c             # debug info changes no count


def test_feature_vector_shape_and_coverage():
    v = features.vector(SAMPLE, covered=10.0)
    assert v.shape == (len(features.NAMES),) and v.dtype.name == "float32"
    assert len(set(features.NAMES)) == len(features.NAMES)
    cov = v[features.NAMES.index("coverage")]
    assert 0 < cov < 1
    assert features.vector(SAMPLE, covered=1e9)[features.NAMES.index("coverage")] == 1.0
    assert (v >= 0).all()


def test_features_tell_direct_indirect_asm_and_invoke_calls():
    text = ("define void @f(ptr %fp) personality ptr @p {\n"
            "  call void asm sideeffect \"nop\", \"\"()\n"
            "  call void %fp()\n"
            "  invoke void @g()\n"
            "          to label %ok unwind label %bad\n"
            "ok:\n  ret void\n"
            "bad:\n  %lp = landingpad { ptr, i32 } cleanup\n  resume { ptr, i32 } %lp\n"
            "}\n\ndeclare void @g()\n\ndeclare i32 @p(...)\n")
    c = features.counts(text)
    assert (c["inline_asm"], c["calls_indirect"], c["calls_direct"]) == (1, 1, 1)
    assert c["op_invoke"] == 1 and c["op_call"] == 2 and c["declarations"] == 2
    assert c["functions"] == 1 and c["external_functions"] == 1
