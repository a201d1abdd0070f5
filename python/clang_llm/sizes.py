"""The size clang-llm minimises: the bytes a module adds to the linked program.

The metric itself is computed in one place, cpp/measure.h (``Sizes``), for the
plugin, verify mode and the data engine alike; every measurement reaches Python
as a dict with these keys (``_core.LoadedModule.measure``, the plugin's
``module.measure``, ``_core.object_sizes``):

  image      what ``size`` (text + data) counts after the link: code, read-only
             data with mergeable strings and constants counted once, .eh_frame
             FDEs and their .eh_frame_hdr entries, writable data, and in a
             position-independent program the dynamic relocations that
             absolute addresses in data need, and what the dynamic link adds for
             each symbol the compiled module imports beyond clang -Oz's object
             for it (dynamic symbol, relocation, GOT slot, PLT stub for a call).
             The objective.
  ram        writable data + bss + the imports' GOT slots: what the module costs
             in RAM on a device.
  text, rodata, unwind, data, bss, dynrelocs, imports, import_slots: the parts,
             for reports.

Imports are charged against -Oz: a candidate that makes a module import a
symbol -Oz's object does not (memset for a loop, exp2 for a pow, a strncmp
-Oz's code replaced) must save more than the link adds for it if the symbol
came from a shared library and no other module used it (about 80 bytes and 8
of RAM). -Oz pays none, and avoiding one of -Oz's imports earns no credit: the
rest of the program may well import it. Calls into the rest of the program
that -Oz makes too cost nothing. An object file alone (``_core.object_sizes``)
has no reference and charges no imports.

A choice is only allowed to trade bytes for bytes of the same kind: a candidate
that makes RAM grow is never taken in place of -Oz (``acceptable``), so a
smaller image never comes from moving a table into .data.

The user's flags change the best choice: unwind tables (on by default on
x86-64; ``-fno-asynchronous-unwind-tables`` in most firmware) cost an FDE and a
search-table entry per function, machine-outlined ones included. A module
carries the flag (the ``uwtable`` attribute and module flag), so the data engine
measures both flag sets from the same capture (``FLAG_SETS``).
"""

from __future__ import annotations

OBJECTIVE = "image"
RAM = "ram"
FIELDS = ("image", "ram", "text", "rodata", "unwind", "data", "bss", "dynrelocs", "imports", "import_slots")

# Flag set -> what it means for a measured module. "default" measures the module
# as clang wrote it (x86-64: asynchronous unwind tables on); "no-unwind" drops
# its unwind-table requests first, as -fno-asynchronous-unwind-tables would.
FLAG_SETS = {
    "default": "clang's defaults (x86-64: asynchronous unwind tables)",
    "no-unwind": "-fno-asynchronous-unwind-tables",
}


# Flag set -> the compiler flags that give it (what a benchmark adds to a build).
FLAG_SET_CFLAGS = {"default": (), "no-unwind": ("-fno-asynchronous-unwind-tables",)}


def object_view(sizes: dict) -> dict:
    """A measurement as the object file it wrote measures alone
    (``_core.object_sizes``, which cannot tell new imports from the source's):
    image and RAM without the import charges."""
    return {**sizes, "image": sizes["image"] - sizes["imports"], "ram": sizes["ram"] - sizes["import_slots"],
            "imports": 0, "import_slots": 0}


def flag_set(unwind_tables: bool) -> str:
    """The flag set a module with (or without) unwind tables belongs to."""
    return "default" if unwind_tables else "no-unwind"


def acceptable(sizes: dict, oz: dict) -> bool:
    """Whether a candidate's measured sizes may replace -Oz's: no larger image
    and no more RAM."""
    return sizes[OBJECTIVE] <= oz[OBJECTIVE] and sizes[RAM] <= oz[RAM]


def smallest(measured: list[tuple[str, dict | None]]) -> int:
    """Index of the choice among measured (name, sizes or None for a failure),
    -Oz first: the smallest image among those ``acceptable`` against -Oz; ties
    keep the earlier one, so -Oz wins a tie and nothing is chosen that is larger
    than -Oz in image bytes or in RAM."""
    oz = measured[0][1]
    if oz is None:
        raise ValueError("-Oz was not measured")
    best = 0
    for i, (_, sizes) in enumerate(measured[1:], 1):
        if sizes is not None and acceptable(sizes, oz) and sizes[OBJECTIVE] < measured[best][1][OBJECTIVE]:
            best = i
    return best
