/* pool.c -- chunk pool: slabs of 64 chunks, free list threaded through them. */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

void hb_pool_init(hb_pool *p, uint32_t max_chunks)
{
    memset(p, 0, sizeof *p);
    p->max_slabs = (max_chunks + HB_SLAB_CHUNKS - 1) / HB_SLAB_CHUNKS;
}

void hb_pool_destroy(hb_pool *p)
{
    for (uint32_t i = 0; i < p->nslabs; i++)
        free(p->slabs[i]);
    free(p->slabs);
    memset(p, 0, sizeof *p);
}

uint32_t hb_pool_get(hb_pool *p)
{
    if (!p->free_head) {
        if (p->nslabs == p->max_slabs)
            return 0;
        uint8_t **s = realloc(p->slabs, (p->nslabs + 1) * sizeof *s);
        if (!s)
            return 0;
        p->slabs = s;
        if (!(s[p->nslabs] = malloc((size_t)HB_SLAB_CHUNKS * HB_CHUNK)))
            return 0;
        p->nslabs++;
        uint32_t first = (p->nslabs - 1) * HB_SLAB_CHUNKS + 1;
        for (uint32_t i = 0; i < HB_SLAB_CHUNKS; i++)
            hb_pool_put(p, first + HB_SLAB_CHUNKS - 1 - i), p->used++; /* put() decrements */
    }
    uint32_t idx = p->free_head;
    memcpy(&p->free_head, hb_pool_ptr(p, idx), sizeof p->free_head);
    p->used++;
    return idx;
}

void hb_pool_put(hb_pool *p, uint32_t idx)
{
    memcpy(hb_pool_ptr(p, idx), &p->free_head, sizeof p->free_head);
    p->free_head = idx;
    p->used--;
}
