/* standby.h -- standby sessions: a dead node's users logged in again
 * without a connect (cluster only; hb-client --standby).
 *
 * Why: when a node dies, moving its quarter of a million users costs a
 * connect and a Login each (about 50 us of the box apiece beside a busy
 * stage 2), which is what kept a dead node's users away for 20 s and more.
 * A client with --standby pays that before anything fails: beside each
 * user's session on its owner it holds a second, logged-in connection to
 * the uid's runner-up (the member that owns it once the owner is gone:
 * rendezvous hashing moves a dead member's uids to exactly that member).
 * The runner-up holds it as SV_CONN_STANDBY: counted in no directory, told
 * nothing, allowed nothing but to close.  When its member list makes it the
 * uid's owner, each SET promotes its standbys by itself on its next tick:
 * the uid's session moves here (sv_login_accept, as for a Login) and a plain
 * LoginOk with the new list goes out on the connection, one write per user.
 *
 * Invariants: a standby is promoted only while this node owns its uid in
 * the current list and no session of the uid is on this node (a user that
 * logged in here meanwhile keeps that session; its standby stays one); the
 * sweep runs on the SET's thread, reads the member snapshot only, is
 * bounded per tick (SV_STANDBY_SWEEP slots), and is not paced: a promotion
 * costs the node one write and the client one read, no reconnect.  It waits
 * while the list holds promotions back (sv_members.promote_at: a member that
 * left soon after coming back is flapping, cluster.h); then it runs in full.  It never
 * blocks: a uid whose directory stripe is locked at that moment waits for
 * the next tick (at 1M, with ~300 runnable threads on 2 cores, a preempted
 * holder kept each SET that blocked behind it for 0.6-1 s). */
#ifndef SV_STANDBY_H
#define SV_STANDBY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sv_standby {
    uint64_t gen;    /* member list generation the sweep is for */
    uint32_t cursor; /* next slot to look at, 0 = no sweep running */
    bool again;      /* a standby was passed over (its directory stripe busy): sweep once more */
} sv_standby;

struct sv_set;
struct sv_conn;
struct Hb__Login;
/* A Login with standby set (already checked: uid in range, token): hold c
 * as uid's standby and answer LoginOk{standby}. */
void sv_standby_login(struct sv_set *set, struct sv_conn *c, const struct Hb__Login *l);
/* Every SET tick: on a new member list, promote the standbys this node now owns. */
void sv_standby_tick(struct sv_set *set);

#endif
