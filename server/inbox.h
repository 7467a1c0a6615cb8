/* inbox.h -- a SET's inbox: messages that other threads route to users of
 * this SET (send-flow notices, chat, "your session was replaced").
 *
 * A bounded multi-producer queue (D. Vyukov's array queue: each cell carries
 * a sequence number, producers claim a cell with one CAS).  Any thread may
 * push; only the SET thread pops, after its ev_async wake-up.  A full inbox
 * refuses the push and the caller counts a drop: a stuck SET can never make
 * the producer or another SET wait. */
#ifndef HB_INBOX_H
#define HB_INBOX_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "frame.h"

enum hb_msg_type {
    HB_MSG_NOTICE = 1, /* packet_id, amount, split */
    HB_MSG_CHAT = 2,   /* from, text */
    HB_MSG_KICK = 3,   /* close connection `slot` if it still holds uid */
};

typedef struct hb_msg {
    uint8_t type;
    uint8_t hops;    /* re-routes so far; bounded so a message cannot circle */
    uint8_t split;
    uint8_t textlen;
    uint32_t uid;    /* destination */
    uint32_t from;
    uint32_t amount;
    uint32_t slot;
    uint32_t gen;
    uint64_t packet_id;
    char text[HB_CHAT_MAX];
} hb_msg;

typedef struct hb_inbox_cell {
    _Atomic size_t seq;
    hb_msg m;
} hb_inbox_cell;

typedef struct hb_inbox {
    hb_inbox_cell *cells;
    size_t mask;
    alignas(64) _Atomic size_t tail; /* producers */
    alignas(64) _Atomic size_t head; /* the SET */
} hb_inbox;

int hb_inbox_init(hb_inbox *q, size_t cap); /* cap rounded up to a power of two */
void hb_inbox_free(hb_inbox *q);
bool hb_inbox_push(hb_inbox *q, const hb_msg *m);
bool hb_inbox_pop(hb_inbox *q, hb_msg *m);
/* Messages in the inbox now (approximate from other threads). */
static inline size_t hb_inbox_size(hb_inbox *q)
{
    return atomic_load_explicit(&q->tail, memory_order_relaxed) - atomic_load_explicit(&q->head, memory_order_relaxed);
}

#endif
