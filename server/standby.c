/* standby.c -- standby sessions, held and promoted (see standby.h). */
#include "standby.h"

#include "set.h"

#define SV_STANDBY_SWEEP 65536 /* slots looked at per tick: bounds the tick's work */

void sv_standby_login(sv_set *set, sv_conn *c, const Hb__Login *l)
{
    c->uid = l->uid;
    c->state = SV_CONN_STANDBY;
    HB_INC(set->st.standby);
    HB_INC(set->st.standby_logins);
    sv_send_login_ok(set, c, l->members_tag, true);
    sv_set_tick_busy(set); /* a new list must be noticed within a busy tick */
}

/* c's uid is this node's now: c becomes its session, unless one is here
 * already.  False: not now (its directory stripe is busy). */
static bool promote(sv_set *set, sv_conn *c)
{
    if (sv_dir_get(&set->srv->dir, c->uid))
        return true; /* logged in here on another connection: that one stays the session */
    if (sv_dir_busy(&set->srv->dir, c->uid))
        return false;
    c->state = SV_CONN_NEW; /* what sv_login_accept takes */
    HB_DEC(set->st.standby);
    HB_INC(set->st.promoted);
    sv_login_accept(set, c, c->uid, 0); /* with the list: it changed since the standby's login */
    return true;
}

void sv_standby_tick(sv_set *set)
{
    sv_server *s = set->srv;
    if (!s->cluster || !HB_GET(set->st.standby))
        return;
    sv_standby *sb = &set->standby;
    const sv_members *ms = sv_cluster_members(s->cluster);
    if (ms->promote_at && hb_mono_us() < ms->promote_at)
        return; /* a flapping member's hold-down (cluster.h): it may be back before it ends */
    if (ms->gen != sb->gen) { /* a new list: look at every standby once */
        sb->gen = ms->gen;
        sb->cursor = ms->self >= 0 ? 1 : 0; /* not a member (yet): own nothing */
        sb->again = false;
    }
    if (!sb->cursor)
        return;
    uint32_t end = sb->cursor + SV_STANDBY_SWEEP;
    for (; sb->cursor <= set->hwm && sb->cursor < end; sb->cursor++) {
        sv_conn *c = &set->conns[sb->cursor];
        if (c->state == SV_CONN_STANDBY && !sv_members_other_owner(ms, c->uid) && !promote(set, c))
            sb->again = true;
    }
    if (sb->cursor > set->hwm) {
        sb->cursor = sb->again ? 1 : 0;
        sb->again = false;
    }
}
