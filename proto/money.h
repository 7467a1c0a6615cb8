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
#define HB_SHAKE_BAND 10000000000ULL  /* 1e10 */
#define HB_SEND_BAND 1000000000000ULL /* 1e12 */
#define HB_NODES_MAX 99               /* bands 1..99: shake ids stay below HB_SEND_ID_BASE */

/* Id of the k-th send packet (k from 0). */
static inline uint64_t hb_send_id(uint64_t k)
{
    return HB_SEND_ID_BASE + 1 + k;
}

/* The same in band b (0 = not a cluster). */
static inline uint64_t hb_shake_id_in(unsigned band, uint64_t k)
{
    return (uint64_t)band * HB_SHAKE_BAND + k;
}

static inline uint64_t hb_send_id_in(unsigned band, uint64_t k)
{
    return hb_send_id((uint64_t)band * HB_SEND_BAND + k);
}

/* The band of an id (shake or send). */
static inline unsigned hb_id_band(uint64_t id)
{
    return (unsigned)(id > HB_SEND_ID_BASE ? (id - HB_SEND_ID_BASE - 1) / HB_SEND_BAND : id / HB_SHAKE_BAND);
}

static inline bool hb_is_send_id(uint64_t id)
{
    return id > HB_SEND_ID_BASE;
}

#endif
