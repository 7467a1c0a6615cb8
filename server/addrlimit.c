/* addrlimit.c -- per-address connection counts: striped locks over small
 * chained hash tables; an address with no connections takes no memory. */
#include "addrlimit.h"

#include <pthread.h>
#include <stdlib.h>
#include "lockstat.h"

#define STRIPES 256
#define BUCKETS 64 /* per stripe */

typedef struct node {
    struct node *next;
    uint32_t addr, n;
} node;

struct sv_addr_limit {
    struct {
        pthread_mutex_t mu;
        node *b[BUCKETS];
    } s[STRIPES];
};

struct sv_addr_limit *sv_addr_new(void)
{
    struct sv_addr_limit *a = calloc(1, sizeof *a);
    if (a)
        for (int i = 0; i < STRIPES; i++)
            pthread_mutex_init(&a->s[i].mu, NULL);
    return a;
}

void sv_addr_free(struct sv_addr_limit *a)
{
    if (!a)
        return;
    for (int i = 0; i < STRIPES; i++)
        for (int j = 0; j < BUCKETS; j++)
            for (node *n = a->s[i].b[j], *nx; n; n = nx) {
                nx = n->next;
                free(n);
            }
    free(a);
}

static uint32_t hash(uint32_t addr)
{
    return (addr * 2654435761u) >> 18; /* 14 bits: stripe (8) + bucket (6) */
}

static node **slot(struct sv_addr_limit *a, uint32_t addr, pthread_mutex_t **mu)
{
    uint32_t h = hash(addr);
    *mu = &a->s[h >> 6].mu;
    node **pp = &a->s[h >> 6].b[h & 63];
    while (*pp && (*pp)->addr != addr)
        pp = &(*pp)->next;
    return pp;
}

bool sv_addr_acquire(struct sv_addr_limit *a, uint32_t addr, uint32_t limit)
{
    pthread_mutex_t *mu;
    uint32_t h = hash(addr);
    sv_lock(&a->s[h >> 6].mu, SV_LK_ADDR);
    node **pp = slot(a, addr, &mu);
    bool ok = true;
    if (*pp) {
        if ((*pp)->n >= limit)
            ok = false;
        else
            (*pp)->n++;
    } else if ((*pp = malloc(sizeof(node)))) {
        (*pp)->next = NULL;
        (*pp)->addr = addr;
        (*pp)->n = 1;
    } else {
        ok = false;
    }
    pthread_mutex_unlock(mu);
    return ok;
}

void sv_addr_release(struct sv_addr_limit *a, uint32_t addr)
{
    pthread_mutex_t *mu;
    uint32_t h = hash(addr);
    sv_lock(&a->s[h >> 6].mu, SV_LK_ADDR);
    node **pp = slot(a, addr, &mu);
    if (*pp && --(*pp)->n == 0) {
        node *n = *pp;
        *pp = n->next;
        free(n);
    }
    pthread_mutex_unlock(mu);
}
