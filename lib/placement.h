/* placement.h -- which node owns a uid: weighted rendezvous
 * (highest-random-weight) hashing over the live members.  In lib/ because
 * both sides compute it: a server node to redirect a Login it does not own
 * (server/rehome.c), and hb-client to connect each user straight to its
 * owner from the member list the nodes send it (client/members.c); one
 * copy of the code is what makes them agree on every uid.
 *
 * Every node computes the owner of a uid from the member list alone, with no
 * table and no coordination: each member m scores the uid as
 * -w_m / ln(h(uid, m)) with h uniform in (0, 1), and the highest score wins.
 * A member owns a fraction w_m / sum(w) of the uids, and when a member joins
 * or leaves only the uids it wins or held move (about 1/N of them); every
 * other uid keeps its owner, because the other members' scores for it do not
 * change.  Pure functions: unit-tested (tests/unit/test_placement.c).
 *
 * Invariants: the result depends only on (uid, the members' keys and
 * weights), not on their order; a member of weight <= 0 owns nothing; ties
 * (practically impossible with 53-bit hashes) go to the larger key. */
#ifndef HB_PLACEMENT_H
#define HB_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

/* The most members a list holds (server: SV_CLUSTER_MAX; client: one
 * worker's table). */
#define HB_PLACE_MAX 64

typedef struct hb_place_member {
    uint64_t key;  /* hb_place_key(name): the member's identity in the hash */
    double weight; /* > 0 */
} hb_place_member;

/* A member's key from its name (64-bit FNV-1a, then mixed). */
uint64_t hb_place_key(const char *name);
/* The member's score for uid (larger wins). */
double hb_place_score(uint32_t uid, uint64_t key, double weight);
/* Index of uid's owner in m[0..n-1], or -1 if there is no member of positive weight. */
int hb_place_owner(uint32_t uid, const hb_place_member *m, size_t n);
/* The owner, as hb_place_owner, and in *second the runner-up (-1 if none):
 * the member that owns uid once the owner has left, since every other
 * member's score stays what it was (a standby connection goes there:
 * server/standby.h). */
int hb_place_top2(uint32_t uid, const hb_place_member *m, size_t n, int *second);

#endif
