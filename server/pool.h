/* pool.h -- per-SET pool of fixed 2 KiB chunks for the rare connection that
 * needs more than its inline bytes: a partial frame too long for sv_conn.in,
 * or output the socket would not take.  Chunks are named by a 32-bit index
 * (0 = none) so a connection spends 4 bytes per buffer it does not have.
 * The pool is bounded: when it is exhausted the connection asking is closed,
 * never the server. */
#ifndef SV_POOL_H
#define SV_POOL_H

#include <stddef.h>
#include <stdint.h>

#define SV_CHUNK 2048
#define SV_SLAB_CHUNKS 64

typedef struct sv_pool {
    uint8_t **slabs;
    uint32_t nslabs, max_slabs;
    uint32_t free_head; /* index of the first free chunk, 0 = none */
    uint32_t used;
} sv_pool;

void sv_pool_init(sv_pool *p, uint32_t max_chunks);
void sv_pool_destroy(sv_pool *p);
/* A chunk index, or 0 when the pool is exhausted. */
uint32_t sv_pool_get(sv_pool *p);
void sv_pool_put(sv_pool *p, uint32_t idx);

static inline uint8_t *sv_pool_ptr(sv_pool *p, uint32_t idx)
{
    idx--;
    return p->slabs[idx / SV_SLAB_CHUNKS] + (size_t)(idx % SV_SLAB_CHUNKS) * SV_CHUNK;
}

#endif
