/* replay.c -- journal -> registry, unwon packets, producer positions. */
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jfile.h"
#include "util.h"

typedef struct shake_state {
    uint32_t amount;
    uint8_t created, won;
} shake_state;

int sv_replay(sv_registry *reg, const char *path, sv_replay_t *rp, char *err, size_t errlen)
{
    hb_jfile jf;
    if (hb_jfile_open(&jf, path, err, errlen) < 0)
        return -1;
    return sv_replay_jfile(reg, &jf, rp, err, errlen);
}

int sv_replay_jfile(sv_registry *reg, hb_jfile *jfp, sv_replay_t *rp, char *err, size_t errlen)
{
    memset(rp, 0, sizeof *rp);
    shake_state *sh = NULL;
    size_t shcap = 0;
    Hb__Record *r;
    /* Shake ids of this registry's band are base + 1, base + 2, ... (base 0
     * unless in a cluster): sh[] and the counts below use k = id - base. */
    const uint64_t base = hb_shake_id_in(reg->band, 0);
    while (hb_jfile_next(jfp, &r)) {
        rp->records++;
        if (r->type == HB__RECORD_TYPE__REC_CREATE && r->kind == HB__PACKET_KIND__KIND_SHAKE) {
            if (r->packet_id != base + rp->shake_made + 1) { /* the producer makes ids 1, 2, 3 ... in order */
                hb_log("replay: ANOMALY: shake packet %llu created out of order (expected %llu)",
                       (unsigned long long)r->packet_id, (unsigned long long)(base + rp->shake_made + 1));
                rp->anomalies++;
                continue;
            }
            uint64_t k = r->packet_id - base;
            if (k > shcap) {
                size_t ncap = shcap ? shcap : 4096;
                while (ncap < k)
                    ncap *= 2;
                shake_state *n = realloc(sh, ncap * sizeof *n);
                if (!n) {
                    snprintf(err, errlen, "replay: out of memory");
                    free(sh);
                    hb_jfile_close(jfp);
                    return -1;
                }
                memset(n + shcap, 0, (ncap - shcap) * sizeof *n);
                sh = n;
                shcap = ncap;
            }
            sh[k - 1].amount = r->amount;
            sh[k - 1].created = 1;
            if (k > rp->shake_made)
                rp->shake_made = k;
        } else if (r->type == HB__RECORD_TYPE__REC_CREATE && r->kind == HB__PACKET_KIND__KIND_SEND) {
            sv_sendpkt p = {.amount = r->amount, .n = (uint8_t)r->n_recipients};
            if (r->n_recipients == 0 || r->n_recipients > HB_SPLIT_MAX || r->n_shares != r->n_recipients) {
                rp->anomalies++;
                continue;
            }
            memcpy(p.uid, r->recipients, r->n_recipients * sizeof *p.uid);
            memcpy(p.share, r->shares, r->n_shares * sizeof *p.share);
            uint64_t sum = 0;
            bool zero = false;
            for (size_t i = 0; i < r->n_shares; i++) {
                sum += r->shares[i];
                zero |= r->shares[i] == 0;
            }
            if (zero || sum != r->amount) { /* the producer splits exactly, every share >= 1 */
                hb_log("replay: ANOMALY: send packet %llu of %u cents has shares summing to %llu%s",
                       (unsigned long long)r->packet_id, r->amount, (unsigned long long)sum,
                       zero ? " (a share of 0)" : "");
                rp->anomalies++;
                continue;
            }
            if (sv_registry_put_send(reg, r->packet_id, &p) < 0) { /* must be the next id */
                hb_log("replay: ANOMALY: send packet %llu created out of order (expected %llu)",
                       (unsigned long long)r->packet_id, (unsigned long long)sv_registry_send_id(reg, rp->send_made));
                rp->anomalies++;
                continue;
            }
            uint64_t k = (uint64_t)sv_registry_send_k(reg, r->packet_id) + 1;
            if (k > rp->send_made)
                rp->send_made = k;
        } else if (r->type == HB__RECORD_TYPE__REC_WIN) {
            uint64_t id = r->packet_id >= base ? r->packet_id - base : 0; /* k, as above */
            if (id == 0 || id > shcap || !sh[id - 1].created || sh[id - 1].won || sh[id - 1].amount != r->amount) {
                hb_log("replay: ANOMALY: win of packet %llu by uid %u (%s)", (unsigned long long)r->packet_id, r->uid,
                       id == 0 || id > shcap || !sh[id - 1].created ? "never created"
                       : sh[id - 1].won                              ? "already won"
                                                                     : "amount differs");
                rp->anomalies++;
                continue;
            }
            sh[id - 1].won = 1;
            rp->wins++;
            rp->win_amount += r->amount;
            sv_registry_add_grant(reg, r->uid, r->seq, r->packet_id, r->amount, 0);
        } else if (r->type == HB__RECORD_TYPE__REC_SHARE) {
            if (!sv_registry_mark_opened(reg, r->packet_id, r->uid, r->amount)) {
                hb_log("replay: ANOMALY: share of packet %llu to uid %u is not consistent",
                       (unsigned long long)r->packet_id, r->uid);
                rp->anomalies++;
                continue;
            }
            rp->shares++;
            rp->share_amount += r->amount;
        } else if (r->type == HB__RECORD_TYPE__REC_CYCLE) {
            if (!r->cycle || r->cycle->number != rp->cycles + 1) {
                hb_log("replay: ANOMALY: cycle record %u out of order (expected %u)", r->cycle ? r->cycle->number : 0,
                       rp->cycles + 1);
                rp->anomalies++;
                continue;
            }
            rp->cycles++;
            rp->cycle = *r->cycle; /* no pointers inside: a plain copy outlives the arena */
        } else {
            rp->anomalies++;
        }
    }
    rp->valid = jfp->valid;
    rp->size = jfp->size;
    rp->stop_reason = jfp->stop_reason;
    rp->torn = jfp->torn;
    if (rp->stop_reason)
        rp->intact_after = hb_jfile_intact_after(jfp);
    hb_jfile_close(jfp);

    /* Ids are dense from 1: a gap means a CREATE was lost, which group commit
     * cannot produce; count it, the packet is simply not there. */
    for (uint64_t i = 0; i < rp->shake_made; i++) {
        if (!sh[i].created)
            rp->anomalies++;
        else if (!sh[i].won)
            rp->n_unwon++;
    }
    if (rp->n_unwon) {
        rp->unwon = malloc(rp->n_unwon * sizeof *rp->unwon);
        if (!rp->unwon) {
            free(sh);
            snprintf(err, errlen, "replay: out of memory");
            return -1;
        }
        size_t k = 0;
        for (uint64_t i = 0; i < rp->shake_made; i++)
            if (sh[i].created && !sh[i].won)
                rp->unwon[k++] = (sv_packet){.id = base + i + 1, .amount = sh[i].amount};
    }
    free(sh);
    return 0;
}

void sv_replay_free(sv_replay_t *rp)
{
    free(rp->unwon);
    rp->unwon = NULL;
}
