#include "calc.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    int64_t value;
    char name[32];
} entry;

struct symtab {
    entry **buckets;
    size_t nbuckets;
    size_t count;
};

/* FNV-1a: cheap and good enough for short identifiers. */
static uint32_t hash_name(const char *s) {
    uint32_t h = 2166136261u;
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 16777619u;
    }
    return h;
}

symtab *symtab_new(size_t buckets) {
    symtab *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->buckets = calloc(buckets, sizeof *t->buckets);
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    t->nbuckets = buckets;
    return t;
}

void symtab_free(symtab *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        entry *e = t->buckets[i];
        while (e) {
            entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(t->buckets);
    free(t);
}

static entry *find(const symtab *t, const char *name) {
    for (entry *e = t->buckets[hash_name(name) % t->nbuckets]; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

int symtab_get(const symtab *t, const char *name, int64_t *out) {
    entry *e = find(t, name);
    if (!e)
        return 0;
    *out = e->value;
    return 1;
}

void symtab_set(symtab *t, const char *name, int64_t value) {
    entry *e = find(t, name);
    if (e) {
        e->value = value;
        return;
    }
    e = calloc(1, sizeof *e);
    if (!e)
        abort();
    strncpy(e->name, name, sizeof e->name - 1);
    e->value = value;
    size_t b = hash_name(name) % t->nbuckets;
    e->next = t->buckets[b];
    t->buckets[b] = e;
    t->count++;
}

size_t symtab_count(const symtab *t) { return t->count; }
