/* pool.h -- per-SET pool of fixed 2 KiB chunks for the rare connection that
 * needs more than its inline bytes: a partial frame too long for hb_conn.in,
 * or output the socket would not take.  Chunks are named by a 32-bit index
 * (0 = none) so a connection spends 4 bytes per buffer it does not have.
 * The pool is bounded: when it is exhausted the connection asking is closed,
 * never the server. */
#ifndef HB_POOL_H
#define HB_POOL_H

#include <stddef.h>
#include <stdint.h>

#define HB_CHUNK 2048
#define HB_SLAB_CHUNKS 64

typedef struct hb_pool {
    uint8_t **slabs;
    uint32_t nslabs, max_slabs;
    uint32_t free_head; /* index of the first free chunk, 0 = none */
    uint32_t used;
} hb_pool;

void hb_pool_init(hb_pool *p, uint32_t max_chunks);
void hb_pool_destroy(hb_pool *p);
/* A chunk index, or 0 when the pool is exhausted. */
uint32_t hb_pool_get(hb_pool *p);
void hb_pool_put(hb_pool *p, uint32_t idx);

static inline uint8_t *hb_pool_ptr(hb_pool *p, uint32_t idx)
{
    idx--;
    return p->slabs[idx / HB_SLAB_CHUNKS] + (size_t)(idx % HB_SLAB_CHUNKS) * HB_CHUNK;
}

#endif
