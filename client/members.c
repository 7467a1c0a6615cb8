/* members.c -- a worker's member table (see members.h). */
#include "members.h"

#include <math.h>
#include <string.h>
#include <arpa/inet.h>

void cl_members_init(cl_members *ms)
{
    memset(ms, 0, sizeof *ms);
    ms->next_expiry = INT64_MAX;
}

/* The alive members (listed, not suspected) for hb_place_owner. */
static void rebuild(cl_members *ms)
{
    ms->nalive = 0;
    ms->next_expiry = INT64_MAX;
    for (size_t i = 0; i < ms->nslots; i++) {
        cl_member *m = &ms->m[i];
        if (m->suspect_until && m->suspect_until < ms->next_expiry)
            ms->next_expiry = m->suspect_until;
        if (!m->used || !m->listed || m->suspect_until)
            continue;
        ms->alive[ms->nalive] = (hb_place_member){m->key, m->weight};
        ms->alive_slot[ms->nalive++] = (uint8_t)i;
    }
}

/* Whether l can be trusted: every array as long as the keys, within
 * bounds, every value in range (proto/hongbao.proto, Members). */
static bool well_formed(const Hb__Members *l)
{
    size_t n = l->n_key;
    if (!l->tag || !n || n > HB_PLACE_MAX || l->n_addr != n || l->n_port != n || l->n_band != n ||
        (l->n_weight && l->n_weight != n))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!l->port[i] || l->port[i] > 65535 || !l->addr[i] || l->band[i] > 65535)
            return false;
        if (l->n_weight && !(l->weight[i] > 0 && isfinite(l->weight[i])))
            return false;
        for (size_t j = 0; j < i; j++)
            if (l->key[j] == l->key[i])
                return false; /* one member twice */
    }
    return true;
}

static int slot_of_key(const cl_members *ms, uint64_t key)
{
    for (size_t i = 0; i < ms->nslots; i++)
        if (ms->m[i].used && ms->m[i].key == key)
            return (int)i;
    return CL_MEMBER_NONE;
}

/* A slot for a member new to this worker: a never-used one, else one whose
 * member left the list and holds none of our connections, else (only if
 * 64 members came and went while connections stayed on them) any unlisted
 * one; CL_MEMBER_NONE if every slot is listed. */
static int free_slot(cl_members *ms, const bool *in_new)
{
    if (ms->nslots < HB_PLACE_MAX)
        return (int)ms->nslots++;
    int any = CL_MEMBER_NONE;
    for (size_t i = 0; i < ms->nslots; i++) {
        if (in_new[i])
            continue;
        if (!ms->m[i].conns)
            return (int)i;
        any = (int)i;
    }
    return any;
}

cl_list_result cl_members_take(cl_members *ms, const Hb__Members *l, bool *dropped)
{
    *dropped = false;
    if (!well_formed(l))
        return CL_LIST_BAD;
    ms->known = true;
    if (l->tag == ms->tag)
        return CL_LIST_SAME;
    for (size_t i = 0; i < l->n_key; i++) {
        int k = slot_of_key(ms, l->key[i]);
        if (k != CL_MEMBER_NONE && ms->m[k].suspect_until && !ms->m[k].listed)
            return CL_LIST_LAGS; /* names a suspect our list has dropped: the sender has not yet */
    }
    bool in_new[HB_PLACE_MAX] = {false};
    int slot[HB_PLACE_MAX];
    for (size_t i = 0; i < l->n_key; i++) { /* first the members we know, so no new one takes their slot */
        slot[i] = slot_of_key(ms, l->key[i]);
        if (slot[i] != CL_MEMBER_NONE)
            in_new[slot[i]] = true;
    }
    for (size_t i = 0; i < l->n_key; i++) {
        if (slot[i] == CL_MEMBER_NONE) {
            slot[i] = free_slot(ms, in_new);
            if (slot[i] == CL_MEMBER_NONE)
                continue; /* cannot happen with n <= HB_PLACE_MAX */
            in_new[slot[i]] = true;
            uint32_t conns = ms->m[slot[i]].conns;
            ms->m[slot[i]] = (cl_member){.key = l->key[i], .used = true, .conns = conns};
        }
        cl_member *m = &ms->m[slot[i]];
        /* A suspected member listed again stays suspected until its time is
         * up or it answers a login itself: a node whose list lags (it has
         * not yet dropped a dead member) must not send us back there. */
        m->weight = l->n_weight ? l->weight[i] : 1.0;
        m->ip = htonl(l->addr[i]);
        m->port = (uint16_t)l->port[i];
        m->band = (uint16_t)l->band[i];
    }
    for (size_t i = 0; i < ms->nslots; i++) {
        if (ms->m[i].listed && !in_new[i])
            *dropped = true;
        ms->m[i].listed = in_new[i];
    }
    ms->tag = l->tag;
    rebuild(ms);
    return CL_LIST_NEW;
}

int cl_members_slot_of(const cl_members *ms, uint32_t ip, uint16_t port)
{
    for (size_t i = 0; i < ms->nslots; i++)
        if (ms->m[i].used && ms->m[i].ip == ip && ms->m[i].port == port)
            return (int)i;
    return CL_MEMBER_NONE;
}

int cl_members_owner(const cl_members *ms, uint32_t uid)
{
    int o = hb_place_owner(uid, ms->alive, ms->nalive);
    return o < 0 ? CL_MEMBER_NONE : ms->alive_slot[o];
}

int cl_members_runner_up(const cl_members *ms, uint32_t uid)
{
    int second;
    hb_place_top2(uid, ms->alive, ms->nalive, &second);
    return second < 0 ? CL_MEMBER_NONE : ms->alive_slot[second];
}

bool cl_members_suspect(cl_members *ms, int slot, int64_t mono)
{
    if (slot == CL_MEMBER_NONE)
        return false;
    bool was = ms->m[slot].suspect_until != 0;
    ms->m[slot].suspect_until = mono + CL_SUSPECT_US;
    rebuild(ms);
    return !was;
}

bool cl_members_expire(cl_members *ms, int64_t mono)
{
    if (mono < ms->next_expiry)
        return false;
    for (size_t i = 0; i < ms->nslots; i++)
        if (ms->m[i].suspect_until && ms->m[i].suspect_until <= mono)
            ms->m[i].suspect_until = 0;
    rebuild(ms);
    return true;
}

void cl_members_trust(cl_members *ms, int slot)
{
    if (slot == CL_MEMBER_NONE || !ms->m[slot].suspect_until)
        return;
    ms->m[slot].suspect_until = 0;
    rebuild(ms);
}

int cl_members_listed_owner(const cl_members *ms, uint32_t uid)
{
    hb_place_member p[HB_PLACE_MAX];
    uint8_t slot[HB_PLACE_MAX];
    size_t n = 0;
    for (size_t i = 0; i < ms->nslots; i++)
        if (ms->m[i].used && ms->m[i].listed) {
            p[n] = (hb_place_member){ms->m[i].key, ms->m[i].weight};
            slot[n++] = (uint8_t)i;
        }
    int o = hb_place_owner(uid, p, n);
    return o < 0 ? CL_MEMBER_NONE : slot[o];
}

bool cl_members_suspect_listed(const cl_members *ms)
{
    for (size_t i = 0; i < ms->nslots; i++)
        if (ms->m[i].listed && ms->m[i].suspect_until)
            return true;
    return false;
}
