/* members.h -- a worker's view of the cluster: the member list the nodes
 * sent it, which members it suspects dead, and whose users it must move.
 *
 * Why: without it every user connects to the entry node (--server), is
 * redirected to its owner and logs in twice, and when a node dies its users
 * learn it only as the kernel closes their sockets, then knock at the dead
 * address again.  With it (Members in proto/hongbao.proto), a user connects
 * straight to its owner, computed with lib/placement.h exactly as the nodes
 * do, and a node that goes away is left at once.
 *
 * State: one table of member slots per worker (at most HB_PLACE_MAX), so a
 * connection names its node in one byte (cl_conn.member); a slot keeps its
 * member across lists (matched by placement key), and is reused for another
 * member only when no connection of this worker is on it.  "Alive" is
 * listed in the last list and not suspected; owners are computed over the
 * alive members only.  The worker thread alone touches it: no lock.
 *
 * Invariants: a list is taken only if it is well-formed within bounds (else
 * ignored and counted); a suspicion ends at its time (CL_SUSPECT_US after
 * the last sign of death) or when the member itself answers a login, never
 * because a list names the member (such a list is not taken, CL_LIST_LAGS): another node's list may lag (it still
 * lists a dead member for up to its TTL, and two survivors drop it up to a
 * second apart), and trusting it would send users back to the dead node. */
#ifndef CL_MEMBERS_H
#define CL_MEMBERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "frame.h"
#include "placement.h"

#define CL_MEMBER_NONE 255      /* cl_conn.member: not a member we know of */
#define CL_SUSPECT_US 5000000LL /* a suspicion: a node's membership TTL (3 s) + its refresh + margin */
#define CL_PROBE_US 200000LL    /* one parked user tries every 200 ms per worker */

typedef struct cl_member {
    uint64_t key;          /* hb_place_key(name) */
    double weight;
    uint32_t ip;           /* network order */
    uint16_t port;         /* host order */
    uint16_t band;         /* LoginOk.node of this member (0: unknown) */
    bool used;             /* the slot holds a member (listed or not) */
    bool listed;           /* in the last list taken */
    int64_t suspect_until; /* monotonic us; 0 = trusted */
    uint32_t conns;        /* this worker's connections on it (connecting or connected) */
    uint64_t seen_tag;     /* the tag of the list it last showed us (0: unknown) */
} cl_member;

typedef struct cl_members {
    uint64_t tag;  /* of the last list taken (Login.members_tag), 0 = none */
    bool known;    /* a node has answered (with or without a list) or the probe time ran out */
    cl_member m[HB_PLACE_MAX];
    size_t nslots; /* slots ever used: m[0..nslots) */
    /* the members believed alive, for hb_place_owner; rebuilt on change */
    hb_place_member alive[HB_PLACE_MAX];
    uint8_t alive_slot[HB_PLACE_MAX];
    size_t nalive;
    int64_t next_expiry; /* earliest suspicion end, INT64_MAX = none */
    /* moving sessions on members a list dropped (worker.c paces it) */
    bool sweeping;
    uint32_t sweep; /* next connection to look at */
    /* users parked while their owner is suspected (conn.c) */
    uint32_t parked;
    int64_t next_probe;
    bool probe_suspect; /* the next probe asks the suspected owner itself */
} cl_members;

/* LAGS: the list names a suspected member that our list has already
 * dropped: the sender has not dropped it yet (it will within a second or
 * two); ours is kept, and so is our tag, so the sender sends its list again
 * next time (a member that really came back is taken once its suspicion
 * ends, or at once if it answered a login itself). */
typedef enum { CL_LIST_BAD = -1, CL_LIST_SAME = 0, CL_LIST_NEW = 1, CL_LIST_LAGS = 2 } cl_list_result;

void cl_members_init(cl_members *ms);
/* Take a list from a LoginOk or Redirect.  NEW: it replaced ours; *dropped
 * tells whether a member listed before is not in it any more (its users
 * must move). */
cl_list_result cl_members_take(cl_members *ms, const Hb__Members *l, bool *dropped);
/* The slot of the member at ip (network order):port, or CL_MEMBER_NONE. */
int cl_members_slot_of(const cl_members *ms, uint32_t ip, uint16_t port);
/* uid's owner among the alive members (a slot), or CL_MEMBER_NONE. */
int cl_members_owner(const cl_members *ms, uint32_t uid);
/* The slot of uid's runner-up among them (its owner once the owner is
 * gone: where --standby holds the uid's standby), CL_MEMBER_NONE if none. */
int cl_members_runner_up(const cl_members *ms, uint32_t uid);
/* Suspect slot until mono + CL_SUSPECT_US; true if it was trusted before. */
bool cl_members_suspect(cl_members *ms, int slot, int64_t mono);
static inline bool cl_members_suspected(const cl_members *ms, int slot)
{
    return slot != CL_MEMBER_NONE && ms->m[slot].suspect_until != 0;
}
/* A suspected member answered: trust it again. */
void cl_members_trust(cl_members *ms, int slot);
/* uid's owner among the listed members, suspected or not. */
int cl_members_listed_owner(const cl_members *ms, uint32_t uid);
/* Whether a suspected member is still in our list (the survivors may still
 * redirect its users to it). */
bool cl_members_suspect_listed(const cl_members *ms);
/* End the suspicions whose time is up; true if any ended. */
bool cl_members_expire(cl_members *ms, int64_t mono);

#endif
