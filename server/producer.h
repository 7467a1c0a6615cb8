/* producer.h -- packets at a fixed rate, dealt round-robin into the SETs.
 *
 * Pure scheduling logic: the clock is passed in and every effect goes through
 * hb_producer_ops, so tests drive it with a simulated clock and fake queues.
 * Packet k of a flow is due at t0 + k/rate (an absolute schedule: no drift,
 * and a late step catches up exactly).  The shake flow runs first; the send
 * flow follows it (or runs alongside with send_concurrent). */
#ifndef HB_PRODUCER_H
#define HB_PRODUCER_H

#include <stdbool.h>
#include <stdint.h>
#include "hongbao.pb-c.h"
#include "pqueue.h"
#include "registry.h"
#include "util.h"

typedef struct hb_producer_ops {
    void *ctx;
    /* Journal the creation of a packet (before it can be won). */
    void (*created)(void *ctx, const Hb__Record *rec);
    /* Put a shake packet into SET `set`'s queue; false if it is full. */
    bool (*deal)(void *ctx, int set, const hb_packet *p);
    /* A send-flow packet exists: publish it and notify its recipients. */
    void (*sent)(void *ctx, uint64_t id, const hb_sendpkt *p);
    /* A random recipient uid (preferably one that is online). */
    uint32_t (*pick)(void *ctx, uint64_t *rng);
} hb_producer_ops;

typedef struct hb_flow {
    double rate;     /* packets per second */
    uint64_t total;  /* to make in all, counting those made before a restart */
    uint64_t made;
    uint64_t base;   /* `made` when this schedule began */
    int64_t t0;      /* when packet `base` is due (monotonic us) */
    uint32_t amin, amax;
    bool running;
} hb_flow;

typedef struct hb_producer {
    hb_producer_ops ops;
    int nsets;
    int next_set;
    hb_flow shake, send;
    unsigned split;
    bool send_concurrent;
    bool holding;     /* a made packet no queue would take yet */
    hb_packet held;
    uint64_t rng;
    hb_counter *dealt; /* per SET */
    hb_counter stalls; /* steps that found every queue full */
    hb_counter made_shake, made_send; /* mirrors of the flows' `made`, for readers on other threads */
    _Atomic bool started;
} hb_producer;

int hb_producer_init(hb_producer *p, const hb_producer_ops *ops, int nsets, uint64_t seed);
void hb_producer_free(hb_producer *p);
/* Configure a flow; `made` is what an earlier run already created. */
void hb_flow_set(hb_flow *f, double rate, uint64_t total, uint64_t made, uint32_t amin, uint32_t amax);
/* Publish the flows' counts after hb_flow_set (for readers on other threads). */
void hb_producer_sync_counters(hb_producer *p);
/* Begin the schedule at `now` (monotonic us). */
void hb_producer_start(hb_producer *p, int64_t now);
/* Make and deal every packet due by `now`; returns how many were made. */
uint64_t hb_producer_step(hb_producer *p, int64_t now);
/* Another cycle: add_shake more shake-flow packets, then add_send more
 * send-flow packets (after them, or alongside with send_concurrent),
 * starting at `now`.  Flows still running simply get the larger totals. */
void hb_producer_add_cycle(hb_producer *p, uint64_t add_shake, uint64_t add_send, int64_t now);
/* When the next packet is due; INT64_MAX when every flow is finished. */
int64_t hb_producer_next_due(const hb_producer *p);
bool hb_producer_done(const hb_producer *p);

#endif
