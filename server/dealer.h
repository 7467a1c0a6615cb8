/* dealer.h -- the producer thread: runs the pure schedule of producer.h
 * against the real things: the grant journal (every packet is journaled as
 * created before it can be won), the SETs' packet queues (shake flow, dealt
 * round-robin), the send-packet registry and routing (send flow: the packet
 * is published, then its recipients are notified).
 *
 * The thread sleeps until the next packet is due (absolute schedule, no
 * drift), wakes at least every 100 ms to notice a stop or a new cycle
 * (SIGUSR1), and retries every 1 ms while every queue is full. */
#ifndef SV_DEALER_H
#define SV_DEALER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "producer.h"
#include "registry.h"

struct sv_server;
struct sv_config;

/* Configure s->prod: its effects, the split, the flows' totals for `cycles`
 * cycles and what the journal says was made already.  With first_record,
 * the producer thread journals cycle 1's settings (REC_CYCLE) before its
 * first packet; every later cycle (SIGUSR1) is journaled as it begins.
 * 0 or -1 (memory). */
int sv_dealer_init(struct sv_server *s, int cycles, uint64_t shake_made, uint64_t send_made, bool first_record);
/* The settings cycle `number` runs with, from the server's configuration. */
void sv_cycle_from_config(const struct sv_config *c, uint32_t number, Hb__Cycle *out);
/* Which money setting of a and b differs ("--total 500 vs 400"), or NULL:
 * the rate may change across a restart, the money may not. */
const char *sv_cycle_money_differs(const Hb__Cycle *journal, const Hb__Cycle *flags, char *buf, size_t n);
int sv_dealer_start(struct sv_server *s); /* 0, or -1 if the thread cannot start */
void sv_dealer_stop(struct sv_server *s); /* after s->stopping is set */
/* Hot upgrade: stop the thread between two steps, keeping the schedule;
 * sv_dealer_start continues it (the absolute schedule catches up). */
void sv_dealer_pause(struct sv_server *s);
/* Tell the recipients of send packet `id` who have not opened it (bits of
 * `skip` have). */
void sv_dealer_notify(struct sv_server *s, uint64_t id, const sv_sendpkt *p, uint8_t skip);

#endif
