#include "calc.h"

#include <stdio.h>
#include <string.h>

/* Known answers: each line is evaluated in order, so later lines may use
 * variables set by earlier ones. */
static const struct {
    const char *line;
    int ok;
    int64_t value;
} cases[] = {
    {"1 + 2 * 3", 1, 7},
    {"(1 + 2) * 3", 1, 9},
    {"x = 0x10", 1, 16},
    {"y = x * x - 6", 1, 250},
    {"y % 7", 1, 5},
    {"x << 4 | 3", 1, 259},
    {"-(x - 20) * 2", 1, 8},
    {"1 / 0", 0, 0},
    {"z + 1", 0, 0},
    {"(1 + 2", 0, 0},
    {"big = 123456789 * 1000", 1, 123456789000},
    {"big >> 10 & 0xffff", 1, 42566},
    {"x ^ 0xff", 1, 239},
};

int main(int argc, char **argv) {
    int failures = 0;
    symtab *vars = symtab_new(17);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        result r = eval_line(vars, cases[i].line);
        if (r.ok != cases[i].ok || (r.ok && r.value != cases[i].value)) {
            fprintf(stderr, "FAIL: %s -> ok=%d value=%lld (%s)\n", cases[i].line, r.ok, (long long)r.value,
                    r.error);
            failures++;
        }
    }
    if (symtab_count(vars) != 3) {
        fprintf(stderr, "FAIL: expected 3 variables, have %zu\n", symtab_count(vars));
        failures++;
    }
    symtab_free(vars);

    int64_t v[1000];
    uint32_t seed = 12345;
    for (int i = 0; i < 1000; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (int64_t)(seed >> 8) - (1 << 22);
    }
    sort_i64(v, 1000);
    for (int i = 1; i < 1000; i++)
        if (v[i - 1] > v[i]) {
            fprintf(stderr, "FAIL: not sorted at %d\n", i);
            failures++;
            break;
        }
    if (crc32_bytes("123456789", 9) != 0xCBF43926u) {
        fprintf(stderr, "FAIL: crc32\n");
        failures++;
    }

    /* Interactive use: evaluate argv lines after the self-test. */
    symtab *user = symtab_new(31);
    for (int i = 1; i < argc; i++) {
        result r = eval_line(user, argv[i]);
        if (r.ok)
            printf("%lld\n", (long long)r.value);
        else
            printf("error: %s\n", r.error);
    }
    symtab_free(user);
    if (failures == 0)
        printf("minicalc: all self-checks passed\n");
    return failures != 0;
}
