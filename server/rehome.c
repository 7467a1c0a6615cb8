/* rehome.c -- redirect sessions to the node that owns their uid (see rehome.h). */
#include "rehome.h"

#include "set.h"

#define SWEEP_SLOTS 65536 /* slots looked at per tick: bounds the tick's work */

/* members: the list for a client whose copy is stale (NULL: none). */
static void redirect(sv_set *set, sv_conn *c, const sv_member *to, uint32_t uid, Hb__Members *members)
{
    Hb__Redirect r = HB__REDIRECT__INIT;
    r.host = (char *)to->host;
    r.port = to->port;
    r.uid = uid;
    r.members = members;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_REDIRECT;
    f.redirect = &r;
    sv_conn_send_frame(set, c, &f);
    sv_conn_shut(set, c);
}

bool sv_rehome_login(sv_set *set, sv_conn *c, uint32_t uid, uint64_t members_tag)
{
    sv_server *s = set->srv;
    if (!s->cluster)
        return false;
    const sv_members *ms = sv_cluster_members(s->cluster);
    const sv_member *owner = sv_members_other_owner(ms, uid);
    if (!owner)
        return false;
    HB_INC(set->st.redirected);
    redirect(set, c, owner, uid, sv_members_for(ms, members_tag));
    return true;
}

/* This SET's part of --rehome-rate, per second.  The rate is what one node
 * is sent at most, by the whole cluster, each second: every other member
 * may be sending it users at once (a node joining or back after a restart
 * takes a share from each), so each node sends 1/(n-1) of it, spread evenly
 * over its SETs.  A per-SET rate added up over 129 SETs of 3 nodes to
 * 129,000 redirects a second into a node that absorbed about 5,800 logins
 * a second: 1M run 19, README; the redirected users waited in the kernel's
 * accept queues and in SYN retries instead of on their old node, serving. */
static double share_per_second(const sv_server *s, const sv_members *ms)
{
    size_t senders = ms->n > 1 ? ms->n - 1 : 1;
    return (double)s->cfg.rehome_rate / (double)senders / (double)s->nsets;
}

void sv_rehome_tick(sv_set *set)
{
    sv_server *s = set->srv;
    if (!s->cluster)
        return;
    sv_rehome *rh = &set->rehome;
    const sv_members *ms = sv_cluster_members(s->cluster);
    double now = ev_now(set->loop);
    if (ms->gen != rh->gen) { /* a new list: sweep every session from the start */
        rh->gen = ms->gen;
        rh->cursor = 1;
        rh->again = false;
        rh->tokens = 0; /* nothing saved up from before: no burst at the start */
        rh->at = now;
    }
    /* By the clock, not by ticks: a SET whose ticks come late under load
     * (1M run 20: 2,058 a second into the restarted node of 5,000 allowed,
     * with stage 3 overloading the box) still moves its share; at most half
     * a second's share is saved up. */
    double rate = share_per_second(s, ms), cap = rate / 2 > 1 ? rate / 2 : 1;
    double dt = now - rh->at;
    rh->at = now;
    rh->tokens += rate * (dt > 0 ? dt : 0);
    if (rh->tokens > cap)
        rh->tokens = cap;
    if (!rh->cursor)
        return;
    uint32_t end = rh->cursor + SWEEP_SLOTS;
    for (; rh->cursor <= set->hwm && rh->cursor < end && rh->tokens >= 1; rh->cursor++) {
        sv_conn *c = &set->conns[rh->cursor];
        if (c->state != SV_CONN_ACTIVE)
            continue;
        const sv_member *owner = sv_members_other_owner(ms, c->uid);
        if (!owner)
            continue;
        if (c->nwaiting || c->out) {
            /* a grant's reply first (a client asks a shake unanswered at a
             * Redirect again on its next node: one this node won must have
             * been answered); or output backed up: a Redirect with
             * the list (up to HB_FRAME_DOWN_MAX) may not fit behind it
             * (conn.c would close the connection without a word) */
            rh->again = true;
            continue;
        }
        HB_INC(set->st.rehomed);
        rh->tokens -= 1;
        redirect(set, c, owner, c->uid, sv_members_for(ms, 0)); /* the list changed since its login */
    }
    if (rh->cursor > set->hwm) {
        rh->cursor = rh->again ? 1 : 0;
        rh->again = false;
    }
}
