"""clang's command-line options that the driver and `clang-llm explain` both parse.

Kept apart from driver.py so that explain (which the driver dispatches to) need
not import the driver back. cpp/launcher.cpp mirrors this table;
tests/integration/test_launcher.py holds the two to the same behaviour.
"""

# Options whose value may be the next argument: that argument is neither an
# input nor an option of its own.
SEPARATE_VALUE = frozenset("""
-o -x -I -D -U -L -l -B -F -T -u -e -z -include -imacros -isystem -idirafter
-iquote -iprefix -iwithprefix -iwithprefixbefore -isysroot --sysroot -MF -MT -MQ
-MJ -Xclang -Xlinker -Xassembler -Xpreprocessor -Xanalyzer -mllvm -target -arch
--param -aux-triple -serialize-diagnostics -dependency-file -dependency-dot
-working-directory -resource-dir -include-pch -rpath -Xopenmp-target
-Xcuda-fatbinary -Xcuda-ptxas --serialize-diagnostics -G -ivfsoverlay
-iframework -iframeworkwithsysroot -imultilib --gcc-toolchain --target
""".split())
