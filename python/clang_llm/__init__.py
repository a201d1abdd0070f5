"""clang-llm: a drop-in clang -Oz whose middle-end pipeline is chosen per module.

Kept import-light on purpose: the compiler driver imports this package on every
compiler invocation.
"""

__version__ = "0.1.0"
LLVM_MAJOR = 22
