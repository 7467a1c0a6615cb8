/* route.c -- uid -> SET inbox, or parking for users who are offline. */
#include "route.h"

#include "set.h"
#include "xmsg.h"

static void dropped(sv_server *s)
{
    atomic_fetch_add_explicit(&s->route_drops, 1, memory_order_relaxed);
}

/* Into SET t's inbox, and wake it. */
static bool push(sv_server *s, sv_set *t, const sv_msg *m)
{
    /* Chat may fill three quarters of an inbox: notices and kicks always
     * find room. */
    if (m->type == SV_MSG_CHAT && sv_inbox_size(&t->inbox) >= (t->inbox.mask + 1) / 4 * 3) {
        dropped(s);
        return false;
    }
    if (!sv_inbox_push(&t->inbox, m)) {
        dropped(s);
        return false;
    }
    ev_async_send(t->loop, &t->wake);
    return true;
}

bool sv_route(sv_server *s, sv_msg *m)
{
    if (m->uid >= s->dir.users) {
        dropped(s);
        return false;
    }
    /* A uid another node owns: through its stream (xmsg.h), a bounded
     * number of node-to-node hops, after which it stays here. */
    if (s->xmsg && s->cluster && m->xhops < SV_XMSG_HOPS) {
        const sv_member *o = sv_members_other_owner(sv_cluster_members(s->cluster), m->uid);
        if (o && o->index >= 0) {
            if (sv_xmsg_send(s->xmsg, o->index, m))
                return true;
            dropped(s);
            return false;
        }
    }
    /* A few tries: the user may log in or move while we look. */
    for (int tries = 0; tries < 4; tries++) {
        uint64_t loc = sv_dir_get(&s->dir, m->uid);
        if (!loc) {
            int r = sv_dir_park(&s->dir, m, &loc);
            if (r == SV_PARK_STORED)
                return true;
            if (r == SV_PARK_DROPPED)
                return false; /* counted by the directory */
            /* the user logged in meanwhile: route to where it is now */
        }
        int set = SV_LOC_SET(loc);
        if (set < 0 || set >= s->nsets)
            break;
        return push(s, s->sets[set], m);
    }
    dropped(s);
    return false;
}

void sv_route_kick(sv_server *s, uint64_t prev, uint32_t uid)
{
    int set = SV_LOC_SET(prev);
    if (set < 0 || set >= s->nsets)
        return;
    sv_msg k = {.type = SV_MSG_KICK, .uid = uid, .slot = SV_LOC_SLOT(prev)};
    push(s, s->sets[set], &k);
}

uint64_t sv_route_drops(const sv_server *s)
{
    return atomic_load_explicit(&s->route_drops, memory_order_relaxed);
}
