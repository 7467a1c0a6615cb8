/* route.c -- uid -> SET inbox, or parking for users who are offline. */
#include "route.h"

#include "set.h"

static void dropped(hb_server *s)
{
    atomic_fetch_add_explicit(&s->route_drops, 1, memory_order_relaxed);
}

/* Into SET t's inbox, and wake it. */
static bool push(hb_server *s, hb_set *t, const hb_msg *m)
{
    /* Chat may fill three quarters of an inbox: notices and kicks always
     * find room. */
    if (m->type == HB_MSG_CHAT && hb_inbox_size(&t->inbox) >= (t->inbox.mask + 1) / 4 * 3) {
        dropped(s);
        return false;
    }
    if (!hb_inbox_push(&t->inbox, m)) {
        dropped(s);
        return false;
    }
    ev_async_send(t->loop, &t->wake);
    return true;
}

bool hb_route(hb_server *s, hb_msg *m)
{
    if (m->uid >= s->dir.users) {
        dropped(s);
        return false;
    }
    /* A few tries: the user may log in or move while we look. */
    for (int tries = 0; tries < 4; tries++) {
        uint64_t loc = hb_dir_get(&s->dir, m->uid);
        if (!loc) {
            int r = hb_dir_park(&s->dir, m, &loc);
            if (r == HB_PARK_STORED)
                return true;
            if (r == HB_PARK_DROPPED)
                return false; /* counted by the directory */
            /* the user logged in meanwhile: route to where it is now */
        }
        int set = HB_LOC_SET(loc);
        if (set < 0 || set >= s->nsets)
            break;
        return push(s, s->sets[set], m);
    }
    dropped(s);
    return false;
}

void hb_route_kick(hb_server *s, uint64_t prev, uint32_t uid)
{
    int set = HB_LOC_SET(prev);
    if (set < 0 || set >= s->nsets)
        return;
    hb_msg k = {.type = HB_MSG_KICK, .uid = uid, .slot = HB_LOC_SLOT(prev)};
    push(s, s->sets[set], &k);
}

uint64_t hb_route_drops(const hb_server *s)
{
    return atomic_load_explicit(&s->route_drops, memory_order_relaxed);
}
