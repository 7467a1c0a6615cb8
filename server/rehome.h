/* rehome.h -- every session on the node that owns its uid (cluster only).
 *
 * A Login for a uid that the current member list places on another node is
 * answered with Redirect{host, port} and the connection is shut; the
 * Redirect carries the member list when the client's copy is stale, and
 * always when it moves a session (clients then connect straight to owners).  When the
 * member list changes, each SET sweeps its logged-in sessions and redirects
 * those whose uid moved, paced so that no node is sent more than
 * --rehome-rate users a second by the whole cluster: the quarter of a
 * million users a join or a restart moves do not all reconnect in the same
 * second, nor faster than the node taking them can log them in.  A session
 * with replies still waiting for the journal is skipped and looked at again
 * in the next sweep, so a Redirect never overtakes a grant's reply.  Runs on the SET's own thread; reads the member list
 * snapshot only (never Redis); the shake path never gets here. */
#ifndef SV_REHOME_H
#define SV_REHOME_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sv_rehome {
    uint64_t gen;    /* member list generation the sweep is for */
    uint32_t cursor; /* next slot to look at, 0 = no sweep running */
    bool again;      /* a session was skipped: sweep once more */
    double tokens;   /* redirects allowed now */
    double at;       /* ev_now of the last tick: tokens accrue by the time gone by, not by ticks */
} sv_rehome;

struct sv_set;
struct sv_conn;
/* On Login: true if uid belongs elsewhere (c was redirected and shut); the
 * Redirect carries the member list unless members_tag (the Login's) is
 * current. */
bool sv_rehome_login(struct sv_set *set, struct sv_conn *c, uint32_t uid, uint64_t members_tag);
/* Every SET tick (100 ms): continue the sweep. */
void sv_rehome_tick(struct sv_set *set);

#endif
