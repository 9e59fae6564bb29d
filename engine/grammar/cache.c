/* cache: a small LRU list of (key, grammar) under a mutex; newest first. */
#include "engine/grammar/cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"

struct entry {
    char *key;
    size_t n;
    uint64_t hash;
    struct gram *g;
};

struct gcache {
    pthread_mutex_t mu;
    struct entry *e; /* [n] most recently used first */
    int n, cap;
};

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}

struct gcache *gcache_create(int capacity)
{
    struct gcache *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->cap = capacity > 0 ? capacity : 1;
    c->e = xcalloc((size_t)c->cap, sizeof *c->e);
    return c;
}

void gcache_destroy(struct gcache *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) free(c->e[i].key), gram_unref(c->e[i].g);
    free(c->e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Moves entry i to the front. */
static void touch(struct gcache *c, int i)
{
    struct entry t = c->e[i];
    memmove(c->e + 1, c->e, (size_t)i * sizeof *c->e);
    c->e[0] = t;
}

struct gram *gcache_get(struct gcache *c, const char *key, size_t n)
{
    uint64_t h = hash(key, n);
    struct gram *g = NULL;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++)
        if (c->e[i].hash == h && c->e[i].n == n && !memcmp(c->e[i].key, key, n)) {
            g = gram_ref(c->e[i].g);
            touch(c, i);
            break;
        }
    pthread_mutex_unlock(&c->mu);
    return g;
}

void gcache_put(struct gcache *c, const char *key, size_t n, struct gram *g)
{
    struct entry e = {.key = xmalloc(n + 1), .n = n, .hash = hash(key, n), .g = gram_ref(g)};
    memcpy(e.key, key, n);
    pthread_mutex_lock(&c->mu);
    if (c->n == c->cap) { /* drop the least recently used */
        c->n--;
        free(c->e[c->n].key);
        gram_unref(c->e[c->n].g);
    }
    c->e[c->n++] = e;
    touch(c, c->n - 1);
    pthread_mutex_unlock(&c->mu);
}
