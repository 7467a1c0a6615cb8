/* placement.c -- weighted rendezvous hashing (see placement.h). */
#include "placement.h"

#include <math.h>
#include "util.h"


uint64_t hb_place_key(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return hb_mix64(h);
}

double hb_place_score(uint32_t uid, uint64_t key, double weight)
{
    if (!(weight > 0))
        return -INFINITY;
    uint64_t h = hb_mix64(key ^ hb_mix64((uint64_t)uid + 0x9e3779b97f4a7c15ULL));
    double u = ((double)(h >> 11) + 0.5) / 9007199254740992.0; /* (0, 1): never 0 or 1 */
    return -weight / log(u);
}

int hb_place_owner(uint32_t uid, const hb_place_member *m, size_t n)
{
    int second;
    return hb_place_top2(uid, m, n, &second);
}

int hb_place_top2(uint32_t uid, const hb_place_member *m, size_t n, int *second)
{
    int best = -1, next = -1;
    double bs = -INFINITY, ns = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double sc = hb_place_score(uid, m[i].key, m[i].weight);
        if (sc == -INFINITY)
            continue;
        /* one order for both places: the higher score, on a tie the larger key */
        if (best < 0 || sc > bs || (sc == bs && m[i].key > m[best].key)) {
            next = best;
            ns = bs;
            best = (int)i;
            bs = sc;
        } else if (next < 0 || sc > ns || (sc == ns && m[i].key > m[next].key)) {
            next = (int)i;
            ns = sc;
        }
    }
    *second = next;
    return best;
}
