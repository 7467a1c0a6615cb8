/* inbox.h -- a SET's inbox: messages that other threads route to users of
 * this SET (send-flow notices, chat, "your session was replaced").
 *
 * A bounded multi-producer queue (D. Vyukov's array queue: each cell carries
 * a sequence number, producers claim a cell with one CAS).  Any thread may
 * push; only the SET thread pops, after its ev_async wake-up.  A full inbox
 * refuses the push and the caller counts a drop: a stuck SET can never make
 * the producer or another SET wait. */
#ifndef SV_INBOX_H
#define SV_INBOX_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "frame.h"

enum sv_msg_type {
    SV_MSG_NOTICE = 1, /* packet_id, amount, split */
    SV_MSG_CHAT = 2,   /* from, text */
    SV_MSG_KICK = 3,   /* close connection `slot` if it still holds uid */
    /* Between nodes only (xmsg.c): */
    SV_MSG_OPEN = 4,       /* uid (at set/slot/gen on node `from`) opens packet_id, owned by the receiver */
    SV_MSG_OPEN_REPLY = 5, /* the answer: status, amount = share; to set/slot/gen on the receiver */
};

typedef struct sv_msg {
    uint8_t type;
    uint8_t hops;    /* re-routes so far; bounded so a message cannot circle */
    uint8_t split;
    uint8_t textlen;
    uint32_t uid;    /* destination */
    uint32_t from;
    uint32_t amount;
    uint32_t slot;
    uint32_t gen;
    uint8_t xhops;   /* node-to-node forwards so far (xmsg.c); bounded like hops */
    uint8_t status;  /* SV_MSG_OPEN_REPLY: Hb__OpenStatus */
    uint16_t set;    /* SV_MSG_OPEN(_REPLY): the asking connection's SET */
    uint64_t packet_id;
    char text[HB_CHAT_MAX];
    uint8_t dest;    /* xmsg out-queue: the node index it goes to */
} sv_msg;

typedef struct sv_inbox_cell {
    _Atomic size_t seq;
    sv_msg m;
} sv_inbox_cell;

typedef struct sv_inbox {
    sv_inbox_cell *cells;
    size_t mask;
    alignas(64) _Atomic size_t tail; /* producers */
    alignas(64) _Atomic size_t head; /* the SET */
} sv_inbox;

int sv_inbox_init(sv_inbox *q, size_t cap); /* cap rounded up to a power of two */
void sv_inbox_free(sv_inbox *q);
bool sv_inbox_push(sv_inbox *q, const sv_msg *m);
bool sv_inbox_pop(sv_inbox *q, sv_msg *m);
/* Messages in the inbox now (approximate from other threads). */
static inline size_t sv_inbox_size(sv_inbox *q)
{
    return atomic_load_explicit(&q->tail, memory_order_relaxed) - atomic_load_explicit(&q->head, memory_order_relaxed);
}

#endif
