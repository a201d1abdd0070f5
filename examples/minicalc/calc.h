/* minicalc: a small self-checking program used as clang-llm's bundled example.
 * It tokenises and evaluates arithmetic expressions with variables, keeps the
 * variables in a hash table, and checks a table of known answers. */
#ifndef MINICALC_H
#define MINICALC_H

#include <stddef.h>
#include <stdint.h>

typedef enum { TOK_NUM, TOK_IDENT, TOK_OP, TOK_LPAREN, TOK_RPAREN, TOK_ASSIGN, TOK_END, TOK_ERROR } tok_kind;

typedef struct {
    tok_kind kind;
    int64_t value;
    char op;
    char name[32];
} token;

typedef struct {
    const char *src;
    size_t pos;
    token cur;
} lexer;

void lexer_init(lexer *lx, const char *src);
void lexer_next(lexer *lx);

typedef struct symtab symtab;
symtab *symtab_new(size_t buckets);
void symtab_free(symtab *t);
int symtab_get(const symtab *t, const char *name, int64_t *out);
void symtab_set(symtab *t, const char *name, int64_t value);
size_t symtab_count(const symtab *t);

typedef struct {
    int ok;
    int64_t value;
    char error[64];
} result;

result eval_line(symtab *vars, const char *line);

uint32_t crc32_bytes(const void *data, size_t len);
void sort_i64(int64_t *v, size_t n);

#endif
