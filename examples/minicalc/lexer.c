#include "calc.h"

#include <ctype.h>
#include <string.h>

void lexer_init(lexer *lx, const char *src) {
    lx->src = src;
    lx->pos = 0;
    lexer_next(lx);
}

static void read_number(lexer *lx) {
    int64_t v = 0;
    int base = 10;
    const char *s = lx->src;
    if (s[lx->pos] == '0' && (s[lx->pos + 1] == 'x' || s[lx->pos + 1] == 'X')) {
        base = 16;
        lx->pos += 2;
    }
    for (;;) {
        char c = s[lx->pos];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            break;
        v = v * base + d;
        lx->pos++;
    }
    lx->cur.kind = TOK_NUM;
    lx->cur.value = v;
}

void lexer_next(lexer *lx) {
    const char *s = lx->src;
    while (s[lx->pos] == ' ' || s[lx->pos] == '\t')
        lx->pos++;
    char c = s[lx->pos];
    memset(&lx->cur, 0, sizeof lx->cur);
    if (c == '\0' || c == '\n') {
        lx->cur.kind = TOK_END;
    } else if (isdigit((unsigned char)c)) {
        read_number(lx);
    } else if (isalpha((unsigned char)c) || c == '_') {
        size_t n = 0;
        while ((isalnum((unsigned char)s[lx->pos]) || s[lx->pos] == '_') && n + 1 < sizeof lx->cur.name)
            lx->cur.name[n++] = s[lx->pos++];
        lx->cur.kind = TOK_IDENT;
    } else if (strchr("+-*/%^&|<>", c)) {
        lx->cur.kind = TOK_OP;
        lx->cur.op = c;
        lx->pos++;
        /* two-character shifts: << and >> */
        if ((c == '<' || c == '>') && s[lx->pos] == c)
            lx->pos++;
    } else if (c == '(') {
        lx->cur.kind = TOK_LPAREN;
        lx->pos++;
    } else if (c == ')') {
        lx->cur.kind = TOK_RPAREN;
        lx->pos++;
    } else if (c == '=') {
        lx->cur.kind = TOK_ASSIGN;
        lx->pos++;
    } else {
        lx->cur.kind = TOK_ERROR;
        lx->cur.op = c;
    }
}
