/* pool.c -- chunk pool: slabs of 64 chunks, free list threaded through them. */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

void sv_pool_init(sv_pool *p, uint32_t max_chunks)
{
    memset(p, 0, sizeof *p);
    p->max_slabs = (max_chunks + SV_SLAB_CHUNKS - 1) / SV_SLAB_CHUNKS;
}

void sv_pool_destroy(sv_pool *p)
{
    for (uint32_t i = 0; i < p->nslabs; i++)
        free(p->slabs[i]);
    free(p->slabs);
    memset(p, 0, sizeof *p);
}

uint32_t sv_pool_get(sv_pool *p)
{
    if (!p->free_head) {
        if (p->nslabs == p->max_slabs)
            return 0;
        uint8_t **s = realloc(p->slabs, (p->nslabs + 1) * sizeof *s);
        if (!s)
            return 0;
        p->slabs = s;
        if (!(s[p->nslabs] = malloc((size_t)SV_SLAB_CHUNKS * SV_CHUNK)))
            return 0;
        p->nslabs++;
        uint32_t first = (p->nslabs - 1) * SV_SLAB_CHUNKS + 1;
        for (uint32_t i = 0; i < SV_SLAB_CHUNKS; i++)
            sv_pool_put(p, first + SV_SLAB_CHUNKS - 1 - i), p->used++; /* put() decrements */
    }
    uint32_t idx = p->free_head;
    memcpy(&p->free_head, sv_pool_ptr(p, idx), sizeof p->free_head);
    p->used++;
    return idx;
}

void sv_pool_put(sv_pool *p, uint32_t idx)
{
    memcpy(sv_pool_ptr(p, idx), &p->free_head, sizeof p->free_head);
    p->free_head = idx;
    p->used--;
}
