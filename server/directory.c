/* directory.c -- uid -> (SET, slot), and the parked-message store. */
#include "directory.h"

#include <stdlib.h>
#include "lockstat.h"

int sv_dir_init(sv_dir *d, uint32_t users, uint64_t pending_max, uint64_t per_uid)
{
    d->users = users;
    d->pending_max = pending_max;
    d->per_uid = per_uid;
    atomic_init(&d->pending, 0);
    atomic_init(&d->pending_chat, 0);
    atomic_init(&d->parked, 0);
    atomic_init(&d->delivered, 0);
    atomic_init(&d->dropped, 0);
    atomic_init(&d->online, 0);
    /* calloc of a large block maps fresh zero pages: untouched users cost no
     * resident memory. */
    d->u = calloc(users ? users : 1, sizeof *d->u);
    d->stripes = calloc(SV_DIR_STRIPES, sizeof *d->stripes);
    if (!d->u || !d->stripes)
        return -1;
    for (int i = 0; i < SV_DIR_STRIPES; i++)
        pthread_mutex_init(&d->stripes[i].mu, NULL);
    return 0;
}

void sv_dir_free(sv_dir *d)
{
    if (d->stripes)
        for (int i = 0; i < SV_DIR_STRIPES; i++) {
            sv_dir_free_list(d->stripes[i].head);
            pthread_mutex_destroy(&d->stripes[i].mu);
        }
    free(d->stripes);
    free(d->u);
    d->stripes = NULL;
    d->u = NULL;
}

static sv_pend_stripe *stripe(sv_dir *d, uint32_t uid)
{
    return &d->stripes[(uid * 2654435761u) >> 20]; /* 12 bits of a multiplicative hash */
}

uint64_t sv_dir_login(sv_dir *d, uint32_t uid, uint64_t loc, sv_pend **parked)
{
    sv_pend_stripe *s = stripe(d, uid);
    sv_pend *mine = NULL, **tail = &mine;
    uint64_t n = 0, chats = 0;
    sv_lock(&s->mu, SV_LK_DIRECTORY);
    uint64_t prev = atomic_exchange(&d->u[uid].loc, loc);
    for (sv_pend **pp = &s->head; *pp;) {
        sv_pend *p = *pp;
        if (p->m.uid == uid) {
            *pp = p->next; /* detach, keep arrival order */
            p->next = NULL;
            *tail = p;
            tail = &p->next;
            n++;
            chats += p->m.type == SV_MSG_CHAT;
        } else {
            pp = &p->next;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!prev)
        atomic_fetch_add(&d->online, 1);
    if (n) {
        atomic_fetch_sub(&d->pending, n);
        atomic_fetch_sub(&d->pending_chat, chats);
        atomic_fetch_add(&d->delivered, n);
    }
    *parked = mine;
    return prev;
}

bool sv_dir_busy(sv_dir *d, uint32_t uid)
{
    pthread_mutex_t *mu = &stripe(d, uid)->mu;
    if (pthread_mutex_trylock(mu) != 0)
        return true;
    pthread_mutex_unlock(mu);
    return false;
}

void sv_dir_logout(sv_dir *d, uint32_t uid, uint64_t loc)
{
    uint64_t want = loc;
    /* Under the stripe lock, so a parker that saw us online and a parker that
     * sees us offline are ordered with this change. */
    sv_pend_stripe *s = stripe(d, uid);
    sv_lock(&s->mu, SV_LK_DIRECTORY);
    bool gone = atomic_compare_exchange_strong(&d->u[uid].loc, &want, 0);
    pthread_mutex_unlock(&s->mu);
    if (gone)
        atomic_fetch_sub(&d->online, 1);
}

int sv_dir_park(sv_dir *d, const sv_msg *m, uint64_t *loc)
{
    sv_pend_stripe *s = stripe(d, m->uid);
    sv_lock(&s->mu, SV_LK_DIRECTORY);
    uint64_t l = atomic_load(&d->u[m->uid].loc);
    if (l) {
        pthread_mutex_unlock(&s->mu);
        *loc = l;
        return SV_PARK_ONLINE;
    }
    bool chat = m->type == SV_MSG_CHAT;
    uint64_t mine = 0;
    sv_pend **tail = &s->head;
    for (; *tail; tail = &(*tail)->next) {
        const sv_msg *q = &(*tail)->m;
        if (q->uid == m->uid && m->type == SV_MSG_NOTICE && q->type == SV_MSG_NOTICE && q->packet_id == m->packet_id) {
            /* Notices are sent again until opened (renotify.c): one parked
             * copy per packet is enough. */
            pthread_mutex_unlock(&s->mu);
            return SV_PARK_STORED;
        }
        mine += q->uid == m->uid && (q->type == SV_MSG_CHAT) == chat;
    }
    bool room = atomic_load(&d->pending) < d->pending_max &&
                (!chat || (mine < d->per_uid && atomic_load(&d->pending_chat) < d->pending_max / 4));
    sv_pend *p = room ? malloc(sizeof *p) : NULL; /* parking is the rare path: users are normally online */
    if (!p) {
        pthread_mutex_unlock(&s->mu);
        atomic_fetch_add(&d->dropped, 1);
        return SV_PARK_DROPPED;
    }
    p->m = *m;
    p->next = NULL;
    *tail = p;
    atomic_fetch_add(&d->pending, 1);
    if (chat)
        atomic_fetch_add(&d->pending_chat, 1);
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&d->parked, 1);
    return SV_PARK_STORED;
}

bool sv_dir_lock_if_at(sv_dir *d, uint32_t uid, uint64_t loc)
{
    sv_pend_stripe *s = stripe(d, uid);
    sv_lock(&s->mu, SV_LK_DIRECTORY);
    if (atomic_load(&d->u[uid].loc) == loc)
        return true;
    pthread_mutex_unlock(&s->mu);
    return false;
}

void sv_dir_unlock(sv_dir *d, uint32_t uid)
{
    pthread_mutex_unlock(&stripe(d, uid)->mu);
}

void sv_dir_free_list(sv_pend *p)
{
    while (p) {
        sv_pend *n = p->next;
        free(p);
        p = n;
    }
}
