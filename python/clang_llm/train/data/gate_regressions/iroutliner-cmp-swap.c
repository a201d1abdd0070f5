/* LLVM 22's IR outliner (iroutliner) miscompiled this: f and g share a region
   whose "greater than" compare has a constant in f and a value in g; the
   outlined function received g's operands swapped, so g computed y > w.
   zlib's trees.c (send_bits) broke the same way under the candidate s19+mo. */
#include <stdlib.h>

#define PRE  p[21] = x * 3; p[22] = x * 4; p[23] = x * 5; p[24] = x * 6; \
             p[25] = x * 7; p[26] = x * 8; p[27] = x * 9; p[28] = x * 10;
#define POST p[1] = x + 3; p[2] = x + 4; p[3] = x + 5; p[4] = x + 6; \
             p[5] = x + 7; p[6] = x + 8; p[7] = x + 9; p[8] = x + 10;

__attribute__((noinline)) void f(volatile int *p, int x, int w) { PRE p[0] = w > 11; POST }
__attribute__((noinline)) void g(volatile int *p, int x, int w, int y) { PRE p[0] = w > y; POST }

volatile int one = 1, three = 3, eleven = 11;

int main(void) {
  int a[32], b[32];
  f(a, one, three);
  g(b, one, three, eleven);
  if (a[0] != 0 || b[0] != 0)
    abort();
  f(a, one, 12);
  g(b, one, eleven, three);
  if (a[0] != 1 || b[0] != 1)
    abort();
  return 0;
}
