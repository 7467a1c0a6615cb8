/* producer.h -- packets at a fixed rate, dealt round-robin into the SETs.
 *
 * Pure scheduling logic: the clock is passed in and every effect goes through
 * sv_producer_ops, so tests drive it with a simulated clock and fake queues.
 * Packet k of a flow is due at t0 + k/rate (an absolute schedule: no drift,
 * and a late step catches up exactly).  The shake flow runs first; the send
 * flow follows it (or runs alongside with send_concurrent). */
#ifndef SV_PRODUCER_H
#define SV_PRODUCER_H

#include <stdbool.h>
#include <stdint.h>
#include "hongbao.pb-c.h"
#include "pqueue.h"
#include "registry.h"
#include "util.h"

typedef struct sv_producer_ops {
    void *ctx;
    /* Journal the creation of a packet (before it can be won). */
    void (*created)(void *ctx, const Hb__Record *rec);
    /* Put a shake packet into SET `set`'s queue; false if it is full. */
    bool (*deal)(void *ctx, int set, const sv_packet *p);
    /* A send-flow packet exists: publish it and notify its recipients. */
    void (*sent)(void *ctx, uint64_t id, const sv_sendpkt *p);
    /* A random recipient uid (preferably one that is online). */
    uint32_t (*pick)(void *ctx, uint64_t *rng);
} sv_producer_ops;

typedef struct sv_flow {
    double rate;     /* packets per second */
    uint64_t total;  /* to make in all, counting those made before a restart */
    uint64_t made;
    uint64_t base;   /* `made` when this schedule began */
    int64_t t0;      /* when packet `base` is due (monotonic us) */
    uint32_t amin, amax;
    bool running;
} sv_flow;

typedef struct sv_producer {
    sv_producer_ops ops;
    int nsets;
    int next_set;
    sv_flow shake, send;
    unsigned split;
    unsigned band; /* packet id band (proto/money.h): 0 unless in a cluster */
    bool send_concurrent;
    /* Made (or replayed) packets no queue would take yet, dealt first and in
     * order; nothing new is made while any is held.  A ring sized at start
     * (by sv_producer_hold) so the step allocates nothing. */
    sv_packet *held;
    size_t held_head, held_len, held_cap;
    uint64_t rng;
    hb_counter *dealt; /* per SET */
    hb_counter stalls; /* steps that found every queue full */
    /* How late packets were made: the step's clock minus the packet's due
     * time.  A packet made late is stamped late, so a late producer is what
     * makes a second of the journal's clock hold 168 packets and the next
     * 232; these say whether it was (and by how much), where the journal's
     * counts only show the result. */
    hb_counter late_us;     /* summed over all packets made */
    hb_counter late_5ms;    /* packets made more than 5 ms after due */
    hb_counter late_max_us; /* the latest one so far */
    hb_counter made_shake, made_send; /* mirrors of the flows' `made`, for readers on other threads */
    _Atomic bool started;
} sv_producer;

int sv_producer_init(sv_producer *p, const sv_producer_ops *ops, int nsets, uint64_t seed);
void sv_producer_free(sv_producer *p);
/* Packets to deal before anything new (the journal's unwon packets that did
 * not fit the SET queues at start).  0, or -1 out of memory. */
int sv_producer_hold(sv_producer *p, const sv_packet *pk, size_t n);
static inline size_t sv_producer_held(const sv_producer *p)
{
    return p->held_len;
}
/* Configure a flow; `made` is what an earlier run already created. */
void sv_flow_set(sv_flow *f, double rate, uint64_t total, uint64_t made, uint32_t amin, uint32_t amax);
/* Publish the flows' counts after sv_flow_set (for readers on other threads). */
void sv_producer_sync_counters(sv_producer *p);
/* Begin the schedule at `now` (monotonic us). */
void sv_producer_start(sv_producer *p, int64_t now);
/* Make and deal every packet due by `now`; returns how many were made. */
uint64_t sv_producer_step(sv_producer *p, int64_t now);
/* Another cycle: add_shake more shake-flow packets, then add_send more
 * send-flow packets (after them, or alongside with send_concurrent),
 * starting at `now`.  Flows still running simply get the larger totals. */
void sv_producer_add_cycle(sv_producer *p, uint64_t add_shake, uint64_t add_send, int64_t now);
/* When the next packet is due; INT64_MAX when every flow is finished. */
int64_t sv_producer_next_due(const sv_producer *p);
/* The producer thread's step on a grid of slots, each `tick` us long and
 * starting at times = phase (mod tick): at `now` it makes every packet due
 * before the end of now's slot (at most a tick early, never in an earlier
 * slot than it is due) and returns when to wake next: the start of the
 * slot where the next packet is due, 1 ms on while holding a packet (every
 * queue full), at most 100 ms on (to see new cycles and being stopped).
 * With the slots on whole fractions of the wall clock's second (the caller
 * sets phase so), a slot never straddles a second: the packets due in a
 * second are all made within it, so every second gets exactly its rate
 * unless the thread wakes a whole slot late.  tick 0: no grid (each packet
 * at its own due time). */
int64_t sv_producer_tick(sv_producer *p, int64_t now, int64_t tick, int64_t phase);
bool sv_producer_done(const sv_producer *p);

#endif
