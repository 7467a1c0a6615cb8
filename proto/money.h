/* money.h -- the money constants every side of the ledger check must agree
 * on: the server that grants, the client that records, hb-reconcile that
 * compares.  Kept here, with the formats, so they are defined once.
 *
 * Packet ids: the shake flow numbers its packets 1, 2, 3 ...; the send flow
 * numbers its packets from HB_SEND_ID_BASE + 1, so the two flows never share
 * an id and a ledger line tells its flow at a glance.  A send packet has 1 to
 * HB_SPLIT_MAX recipients, each share at least one cent. */
#ifndef HB_MONEY_H
#define HB_MONEY_H

#include <stdbool.h>
#include <stdint.h>

#define HB_SPLIT_MAX 8
#define HB_SEND_ID_BASE 1000000000000ULL

/* Id of the k-th send packet (k from 0). */
static inline uint64_t hb_send_id(uint64_t k)
{
    return HB_SEND_ID_BASE + 1 + k;
}

static inline bool hb_is_send_id(uint64_t id)
{
    return id > HB_SEND_ID_BASE;
}

#endif
