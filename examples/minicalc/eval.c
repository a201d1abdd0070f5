#include "calc.h"

#include <stdio.h>
#include <string.h>

/* Precedence climbing over the lexer; errors stop evaluation and are reported
 * in the result rather than printed, so the caller decides what to do. */
typedef struct {
    lexer lx;
    symtab *vars;
    result *res;
} parser;

static void fail(parser *p, const char *msg) {
    if (p->res->ok) {
        p->res->ok = 0;
        snprintf(p->res->error, sizeof p->res->error, "%s", msg);
    }
}

static int precedence(char op) {
    switch (op) {
    case '|': return 1;
    case '^': return 2;
    case '&': return 3;
    case '<': case '>': return 4;
    case '+': case '-': return 5;
    case '*': case '/': case '%': return 6;
    default: return -1;
    }
}

static int64_t apply(parser *p, char op, int64_t a, int64_t b) {
    switch (op) {
    case '+': return a + b;
    case '-': return a - b;
    case '*': return a * b;
    case '/':
        if (b == 0) { fail(p, "division by zero"); return 0; }
        return a / b;
    case '%':
        if (b == 0) { fail(p, "division by zero"); return 0; }
        return a % b;
    case '&': return a & b;
    case '|': return a | b;
    case '^': return a ^ b;
    case '<': return (b < 0 || b > 62) ? (fail(p, "bad shift"), 0) : a << b;
    case '>': return (b < 0 || b > 62) ? (fail(p, "bad shift"), 0) : a >> b;
    }
    fail(p, "unknown operator");
    return 0;
}

static int64_t parse_expr(parser *p, int min_prec);

static int64_t parse_primary(parser *p) {
    token t = p->lx.cur;
    switch (t.kind) {
    case TOK_NUM:
        lexer_next(&p->lx);
        return t.value;
    case TOK_IDENT: {
        int64_t v = 0;
        lexer_next(&p->lx);
        if (!symtab_get(p->vars, t.name, &v))
            fail(p, "unknown variable");
        return v;
    }
    case TOK_LPAREN: {
        lexer_next(&p->lx);
        int64_t v = parse_expr(p, 0);
        if (p->lx.cur.kind != TOK_RPAREN)
            fail(p, "missing )");
        else
            lexer_next(&p->lx);
        return v;
    }
    case TOK_OP:
        if (t.op == '-') {
            lexer_next(&p->lx);
            return -parse_primary(p);
        }
        /* fall through */
    default:
        fail(p, "unexpected token");
        return 0;
    }
}

static int64_t parse_expr(parser *p, int min_prec) {
    int64_t lhs = parse_primary(p);
    while (p->res->ok && p->lx.cur.kind == TOK_OP) {
        char op = p->lx.cur.op;
        int prec = precedence(op);
        if (prec < min_prec)
            break;
        lexer_next(&p->lx);
        int64_t rhs = parse_expr(p, prec + 1);
        lhs = apply(p, op, lhs, rhs);
    }
    return lhs;
}

result eval_line(symtab *vars, const char *line) {
    result res = {1, 0, ""};
    parser p = {.vars = vars, .res = &res};
    lexer_init(&p.lx, line);
    /* "name = expr" assigns; anything else is an expression. */
    if (p.lx.cur.kind == TOK_IDENT) {
        lexer saved = p.lx;
        token name = p.lx.cur;
        lexer_next(&p.lx);
        if (p.lx.cur.kind == TOK_ASSIGN) {
            lexer_next(&p.lx);
            res.value = parse_expr(&p, 0);
            if (res.ok)
                symtab_set(vars, name.name, res.value);
        } else {
            p.lx = saved;
            res.value = parse_expr(&p, 0);
        }
    } else {
        res.value = parse_expr(&p, 0);
    }
    if (res.ok && p.lx.cur.kind != TOK_END)
        fail(&p, "trailing input");
    return res;
}
