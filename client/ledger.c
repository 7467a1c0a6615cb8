/* ledger.c -- the client's grant file and its duplicate filter. */
#include "ledger.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cl_ledger_open(cl_ledger *l, const char *path, const char *header, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    if (!path || !*path)
        return 0; /* no ledger file: counts only */
    l->f = fopen(path, "w");
    if (!l->f) {
        snprintf(err, errlen, "ledger %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(l->f, "%s\n# %s\n", HB_LEDGER_HEADER, header);
    return 0;
}

/* One line in the format of proto/ledgerfile.h. */
static void put(cl_ledger *l, const hb_lline *line)
{
    char buf[128];
    size_t n = hb_lline_format(buf, sizeof buf, line);
    pthread_mutex_lock(&l->mu);
    l->wins += line->type == HB_LL_WIN;
    l->shares += line->type == HB_LL_SHARE;
    if (l->f && n)
        fwrite(buf, 1, n, l->f);
    pthread_mutex_unlock(&l->mu);
}

void cl_ledger_win(cl_ledger *l, uint64_t packet_id, uint32_t uid, uint32_t amount, uint32_t seq)
{
    put(l, &(hb_lline){.type = HB_LL_WIN, .packet_id = packet_id, .uid = uid, .amount = amount, .seq = seq});
}

void cl_ledger_share(cl_ledger *l, uint64_t packet_id, uint32_t uid, uint32_t share)
{
    put(l, &(hb_lline){.type = HB_LL_SHARE, .packet_id = packet_id, .uid = uid, .amount = share});
}

void cl_ledger_unanswered_shake(cl_ledger *l, uint32_t uid, uint32_t seq)
{
    put(l, &(hb_lline){.type = HB_LL_UNANSWERED_SHAKE, .uid = uid, .seq = seq});
}

void cl_ledger_unanswered_open(cl_ledger *l, uint64_t packet_id, uint32_t uid)
{
    put(l, &(hb_lline){.type = HB_LL_UNANSWERED_OPEN, .packet_id = packet_id, .uid = uid});
}

void cl_ledger_flush(cl_ledger *l)
{
    pthread_mutex_lock(&l->mu);
    if (l->f)
        fflush(l->f);
    pthread_mutex_unlock(&l->mu);
}

void cl_ledger_close(cl_ledger *l)
{
    pthread_mutex_lock(&l->mu);
    if (l->f)
        fclose(l->f);
    l->f = NULL;
    pthread_mutex_unlock(&l->mu);
}

static size_t slot(const struct cl_key *k, size_t cap, uint64_t packet, uint32_t uid)
{
    uint64_t h = (packet * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)uid * 0xc2b2ae3d27d4eb4fULL);
    size_t i = (size_t)(h >> 17) & (cap - 1);
    while (k[i].used && !(k[i].packet == packet && k[i].uid == uid))
        i = (i + 1) & (cap - 1);
    return i;
}

bool cl_keyset_has(const cl_keyset *s, uint64_t packet, uint32_t uid)
{
    return s->cap && s->k[slot(s->k, s->cap, packet, uid)].used;
}

bool cl_keyset_add(cl_keyset *s, uint64_t packet, uint32_t uid)
{
    if ((s->len + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 256;
        struct cl_key *nk = calloc(ncap, sizeof *nk);
        if (!nk)
            return true; /* cannot remember: record anyway, the reconcile will show a duplicate */
        for (size_t i = 0; i < s->cap; i++)
            if (s->k[i].used)
                nk[slot(nk, ncap, s->k[i].packet, s->k[i].uid)] = s->k[i];
        free(s->k);
        s->k = nk;
        s->cap = ncap;
    }
    size_t i = slot(s->k, s->cap, packet, uid);
    if (s->k[i].used)
        return false;
    s->k[i] = (struct cl_key){packet, uid, 1};
    s->len++;
    return true;
}

void cl_keyset_free(cl_keyset *s)
{
    free(s->k);
    memset(s, 0, sizeof *s);
}
