/* renotify.c -- a notice of money is at least once.
 *
 * A notice can be lost: dropped when the recipient's SET inbox or the
 * parking is full, or written to a connection that drops before the client
 * reads it.  Its share would then stay unopened until the next restart.  So
 * the producer thread sweeps, once a second, the send packets that are not
 * fully opened and tells their unopened recipients again -- unless a
 * recipient is still on the very session its notice was written to (it is
 * slow, not lost; a lost connection means a new session): --renotify
 * seconds after the packet was made, then after twice that, and so on up to
 * a minute (a user offline for hours is told a few dozen times, and the
 * parking keeps one copy per packet, directory.c).  An online recipient gets
 * it at once; an offline one at its next login, from the parking.
 * Duplicates are harmless: an open is idempotent (OPEN_ALREADY repeats the
 * share, and the client counts a share once).
 *
 * Cost: the sweep starts at the first packet not fully opened
 * (renotify_from) and takes a snapshot of each later one, so it is
 * proportional to the packets of the last seconds plus the stragglers.  A
 * snapshot takes no lock (registry.h): a preempted SET cannot stall the
 * producer.  A share being opened just then counts as opened (its record
 * follows at once). */
#include "renotify.h"

#include "dealer.h"

#define RENOTIFY_CAP_S 60

static uint32_t delay_s(const sv_server *s, unsigned times)
{
    double d = s->cfg.renotify * (double)(1u << (times < 7 ? times : 7));
    d = d < 1 ? 1 : d;
    return d > RENOTIFY_CAP_S ? RENOTIFY_CAP_S : (uint32_t)d;
}

static unsigned unopened(const sv_sendpkt *p)
{
    unsigned n = 0;
    for (unsigned i = 0; i < p->n; i++)
        n += !(p->opened & (1u << i));
    return n;
}

void sv_renotify_sweep(sv_server *s, int64_t now_us)
{
    if (s->cfg.renotify <= 0 || now_us < s->renotify_next_us)
        return;
    s->renotify_next_us = now_us + 1000000;
    uint32_t now = (uint32_t)(now_us / 1000000) + 1; /* > 0: 0 means "not scheduled" */
    uint64_t count = atomic_load(&s->reg.send_count);
    bool all_opened_so_far = true;
    for (uint64_t k = s->renotify_from; k < count; k++) {
        uint64_t id = sv_registry_send_id(&s->reg, k);
        sv_sendpkt p;
        if (!sv_registry_get_send(&s->reg, id, &p))
            continue;
        unsigned left = unopened(&p);
        if (!left) {
            if (all_opened_so_far)
                s->renotify_from = k + 1;
            continue;
        }
        all_opened_so_far = false;
        if (!p.renotify_at) { /* first seen: its first notice has just gone */
            sv_registry_set_renotify(&s->reg, id, now + delay_s(s, 0), 0);
            continue;
        }
        if (now < p.renotify_at)
            continue;
        /* A recipient still on the session it was told on is slow, not
         * lost: telling it again would only add load when the server is
         * already behind (seen at 1M: 274,511 re-notices for opens that
         * were 40 s late).  A new session, a failed route or an offline
         * recipient is told again. */
        uint8_t skip = p.opened;
        for (unsigned i = 0; i < p.n && i < HB_SPLIT_MAX; i++) {
            uint64_t cur = p.uid[i] < s->dir.users ? sv_dir_get(&s->dir, p.uid[i]) : 0;
            if (!(skip & (1u << i)) && !(p.unrouted & (1u << i)) && cur && cur == p.told_loc[i]) {
                skip |= (uint8_t)(1u << i);
                left--;
            }
        }
        if (left) {
            sv_dealer_notify(s, id, &p, skip);
            HB_ADD(s->renotices, left);
        }
        unsigned times = p.renotified < 255 ? p.renotified + 1u : 255u;
        sv_registry_set_renotify(&s->reg, id, now + delay_s(s, times), (uint8_t)times);
    }
}
