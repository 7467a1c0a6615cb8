/* reconcile.c -- hb-reconcile: the ledger check.
 *
 * Compares three records of the same money and exits non-zero on any
 * difference:
 *   1. the server's grant journal (what was created, won, opened);
 *   2. the server's final counters (--server-stats), which must match the
 *      journal (counting what an earlier run of the server replayed);
 *   3. every client ledger (W and S lines; Q and O lines name what was still
 *      unanswered when a client stopped, to explain a grant it never heard of).
 * Per shake packet: created once, won at most once, for its amount.  Per send
 * packet: distinct recipients, shares >= 1 that sum to the amount, each
 * opened at most once by a recipient for exactly its share.  Clients: the
 * same grants, no more, no fewer, none twice. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conf.h"
#include "jfile.h"
#include "util.h"

#define SEND_BASE 1000000000000ULL
#define MAXSPLIT 8

typedef struct pkt {
    uint64_t id; /* 0 = empty slot */
    uint32_t amount;
    uint8_t kind, created, n;
    uint8_t won;         /* shake: WIN records */
    uint32_t win_uid, win_amount, win_seq;
    uint32_t uid[MAXSPLIT], share[MAXSPLIT];
    uint8_t opened[MAXSPLIT];    /* SHARE records per recipient */
    uint8_t cl_won;              /* client W lines */
    uint32_t cl_win_uid, cl_win_amount;
    uint8_t cl_opened[MAXSPLIT]; /* client S lines per recipient */
    uint32_t cl_share[MAXSPLIT];
    uint8_t cl_unanswered[MAXSPLIT]; /* client O lines: the open was in flight at exit */
} pkt;

static pkt *tab;
static size_t cap, len;

static pkt *get(uint64_t id, int create)
{
    if (create && (len + 1) * 2 > cap) {
        size_t ncap = cap ? cap * 2 : 1 << 16;
        pkt *n = calloc(ncap, sizeof *n);
        if (!n)
            hb_die("out of memory");
        for (size_t i = 0; i < cap; i++)
            if (tab[i].id) {
                size_t j = (size_t)(tab[i].id * 0x9e3779b97f4a7c15ULL >> 20) & (ncap - 1);
                while (n[j].id)
                    j = (j + 1) & (ncap - 1);
                n[j] = tab[i];
            }
        free(tab);
        tab = n;
        cap = ncap;
    }
    if (!cap)
        return NULL;
    size_t j = (size_t)(id * 0x9e3779b97f4a7c15ULL >> 20) & (cap - 1);
    while (tab[j].id && tab[j].id != id)
        j = (j + 1) & (cap - 1);
    if (tab[j].id)
        return &tab[j];
    if (!create)
        return NULL;
    tab[j].id = id;
    len++;
    return &tab[j];
}

static uint64_t problems;
static int shown;

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
    problems++;
    if (shown++ >= 40) {
        if (shown == 41)
            printf("  ... (more differences not shown)\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    printf("  DIFF: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static int recipient(const pkt *p, uint32_t uid)
{
    for (int i = 0; i < p->n; i++)
        if (p->uid[i] == uid)
            return i;
    return -1;
}

/* (uid, seq) of shakes unanswered when their client stopped: Q lines */
static uint64_t *inflight;
static size_t ninflight, capinflight;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t inflight_key(uint32_t uid, uint32_t seq)
{
    return (uint64_t)uid << 32 | seq;
}

static bool shake_in_flight(uint32_t uid, uint32_t seq)
{
    uint64_t k = inflight_key(uid, seq);
    return ninflight && bsearch(&k, inflight, ninflight, sizeof k, cmp_u64);
}

typedef struct sums {
    uint64_t shake_created, shake_amount, won, won_amount;
    uint64_t send_created, send_amount, shares, share_amount, shares_possible;
    uint64_t cl_wins, cl_win_amount, cl_shares, cl_share_amount;
    uint64_t cl_unanswered, unheard_in_flight; /* Q+O lines; grants explained by them */
} sums;

static void read_journal(const char *path, sums *s)
{
    hb_jfile jf;
    char err[512];
    if (hb_jfile_open(&jf, path, err, sizeof err) < 0)
        hb_die("%s", err);
    if (!jf.size)
        printf("  journal %s is empty or missing\n", path);
    Hb__Record *r;
    uint64_t records = 0;
    while (hb_jfile_next(&jf, &r)) {
        records++;
        pkt *p = get(r->packet_id, 1);
        if (r->type == HB__RECORD_TYPE__REC_CREATE) {
            if (p->created) {
                problem("packet %" PRIu64 " created twice in the journal", r->packet_id);
                continue;
            }
            p->created = 1;
            p->kind = (uint8_t)r->kind;
            p->amount = r->amount;
            if (r->kind == HB__PACKET_KIND__KIND_SEND) {
                s->send_created++;
                s->send_amount += r->amount;
                uint64_t sum = 0;
                if (r->n_recipients < 1 || r->n_recipients > MAXSPLIT || r->n_shares != r->n_recipients) {
                    problem("send packet %" PRIu64 ": bad recipient list", r->packet_id);
                    continue;
                }
                p->n = (uint8_t)r->n_recipients;
                for (size_t i = 0; i < r->n_recipients; i++) {
                    p->uid[i] = r->recipients[i];
                    p->share[i] = r->shares[i];
                    sum += r->shares[i];
                    if (r->shares[i] < 1)
                        problem("send packet %" PRIu64 ": a share of 0 cents", r->packet_id);
                    for (size_t k = 0; k < i; k++)
                        if (r->recipients[k] == r->recipients[i])
                            problem("send packet %" PRIu64 ": uid %u listed twice", r->packet_id, r->recipients[i]);
                }
                if (sum != r->amount)
                    problem("send packet %" PRIu64 ": shares sum to %" PRIu64 ", amount is %u", r->packet_id, sum,
                            r->amount);
                s->shares_possible += p->n;
            } else {
                s->shake_created++;
                s->shake_amount += r->amount;
            }
        } else if (r->type == HB__RECORD_TYPE__REC_WIN) {
            if (!p->created || p->kind != HB__PACKET_KIND__KIND_SHAKE)
                problem("win of packet %" PRIu64 " (uid %u) that the journal never created", r->packet_id, r->uid);
            else if (p->won)
                problem("packet %" PRIu64 " won twice: uid %u and uid %u (paid twice!)", r->packet_id, p->win_uid,
                        r->uid);
            else if (r->amount != p->amount)
                problem("packet %" PRIu64 " won for %u cents, created with %u", r->packet_id, r->amount, p->amount);
            else {
                p->won = 1;
                p->win_uid = r->uid;
                p->win_amount = r->amount;
                p->win_seq = r->seq;
                s->won++;
                s->won_amount += r->amount;
            }
        } else if (r->type == HB__RECORD_TYPE__REC_SHARE) {
            int i = p->created ? recipient(p, r->uid) : -1;
            if (i < 0)
                problem("share of packet %" PRIu64 " paid to uid %u, not a recipient", r->packet_id, r->uid);
            else if (p->opened[i])
                problem("packet %" PRIu64 " opened twice by uid %u (paid twice!)", r->packet_id, r->uid);
            else if (r->amount != p->share[i])
                problem("packet %" PRIu64 ": uid %u paid %u, its share is %u", r->packet_id, r->uid, r->amount,
                        p->share[i]);
            else {
                p->opened[i] = 1;
                s->shares++;
                s->share_amount += r->amount;
            }
        }
    }
    printf("  journal %s: %" PRIu64 " records%s%s\n", path, records, jf.stop_reason ? ", then a " : " (clean end)",
           jf.stop_reason ? jf.stop_reason : "");
    size_t after = jf.stop_reason ? hb_jfile_intact_after(&jf) : 0;
    if (after)
        problem("journal damaged at byte %zu (%s) with intact entries after it (from byte %zu): not a torn tail",
                jf.valid, jf.stop_reason, after);
    hb_jfile_close(&jf);
}

static void read_ledger(const char *path, sums *s)
{
    FILE *f = fopen(path, "r");
    if (!f)
        hb_die("ledger %s: %s", path, strerror(errno));
    char line[256];
    int lineno = 0;
    uint64_t w = 0, sh = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char t;
        unsigned long long id;
        unsigned uid, amount;
        if (line[0] == 'Q' || line[0] == 'O') {
            unsigned a;
            unsigned long long b;
            if (sscanf(line, "%c %llu %u", &t, &b, &a) != 3) {
                problem("%s:%d: unreadable line", path, lineno);
                continue;
            }
            s->cl_unanswered++;
            if (t == 'Q') { /* Q uid seq */
                if (b > UINT32_MAX) {
                    problem("%s:%d: unreadable line", path, lineno);
                    continue;
                }
                if (ninflight == capinflight) {
                    capinflight = capinflight ? capinflight * 2 : 1024;
                    inflight = realloc(inflight, capinflight * sizeof *inflight);
                    if (!inflight)
                        hb_die("out of memory");
                }
                inflight[ninflight++] = inflight_key((uint32_t)b, a);
            } else { /* O packet uid */
                pkt *p = get(b, 0);
                int i = p && p->created ? recipient(p, a) : -1;
                if (i >= 0)
                    p->cl_unanswered[i] = 1;
            }
            continue;
        }
        if (sscanf(line, "%c %llu %u %u", &t, &id, &uid, &amount) != 4 || (t != 'W' && t != 'S')) {
            problem("%s:%d: unreadable line", path, lineno);
            continue;
        }
        pkt *p = get(id, 1);
        if (t == 'W') {
            w++;
            s->cl_wins++;
            s->cl_win_amount += amount;
            if (p->cl_won)
                problem("%s: packet %llu recorded twice by clients (uid %u and uid %u)", path, id, p->cl_win_uid, uid);
            p->cl_won++;
            p->cl_win_uid = uid;
            p->cl_win_amount = amount;
        } else {
            sh++;
            s->cl_shares++;
            s->cl_share_amount += amount;
            int i = p->created ? recipient(p, uid) : -1;
            if (i < 0) {
                problem("%s: share of packet %llu recorded by uid %u, who is not a recipient", path, id, uid);
                continue;
            }
            if (p->cl_opened[i])
                problem("%s: share of packet %llu recorded twice by uid %u", path, id, uid);
            p->cl_opened[i]++;
            p->cl_share[i] = amount;
        }
    }
    fclose(f);
    printf("  ledger %s: %" PRIu64 " wins, %" PRIu64 " shares\n", path, w, sh);
}

static uint64_t stat_value(const char *path, const char *name, int *found)
{
    FILE *f = fopen(path, "r");
    if (!f)
        hb_die("server stats %s: %s", path, strerror(errno));
    char line[256], key[128];
    unsigned long long v = 0;
    *found = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%127s %llu", key, &v) == 2 && !strcmp(key, name)) {
            *found = 1;
            break;
        }
    fclose(f);
    return v;
}

static void check_stats(const char *path, const sums *s)
{
    int f1, f2, f3, f4, f5, f6, f7, f8;
    uint64_t wins = stat_value(path, "wins", &f1) + stat_value(path, "replayed_wins", &f2);
    uint64_t wamt = stat_value(path, "amount_won", &f3) + stat_value(path, "replayed_win_amount", &f4);
    uint64_t shares = stat_value(path, "opens_ok", &f5) + stat_value(path, "replayed_shares", &f6);
    uint64_t samt = stat_value(path, "share_amount", &f7) + stat_value(path, "replayed_share_amount", &f8);
    if (!(f1 && f2 && f3 && f4 && f5 && f6 && f7 && f8)) {
        problem("server stats %s: counters missing (not an hb-server --stats-file?)", path);
        return;
    }
    printf("  server counters %s: %" PRIu64 " wins (%" PRIu64 " cents), %" PRIu64 " shares (%" PRIu64 " cents)\n",
           path, wins, wamt, shares, samt);
    if (wins != s->won || wamt != s->won_amount)
        problem("server counters say %" PRIu64 " wins / %" PRIu64 " cents, the journal %" PRIu64 " / %" PRIu64, wins,
                wamt, s->won, s->won_amount);
    if (shares != s->shares || samt != s->share_amount)
        problem("server counters say %" PRIu64 " shares / %" PRIu64 " cents, the journal %" PRIu64 " / %" PRIu64,
                shares, samt, s->shares, s->share_amount);
}

int main(int argc, char **argv)
{
    hb_prog = "hb-reconcile";
    char *journal = NULL, *stats = NULL;
    bool all_won = false, all_opened = false;
    const hb_opt opts[] = {
        {"journal", HB_OPT_STR, &journal, "FILE", "the server's grant journal (required)", 0, 0},
        {"server-stats", HB_OPT_STR, &stats, "FILE", "the server's final --stats-file, checked against the journal", 0, 0},
        {"expect-all-won", HB_OPT_BOOL, &all_won, NULL, "also fail if a created shake packet was never won", 0, 0},
        {"expect-all-opened", HB_OPT_BOOL, &all_opened, NULL, "also fail if a send-flow share was never opened", 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const hb_cli cli = {
        .synopsis = "hb-reconcile --journal FILE [--server-stats FILE] LEDGER...",
        .description = "The ledger check: the server's journal, its counters and every client ledger must agree on\n"
                       "every packet, recipient and cent.  Prints each difference; exits 0 only when they agree.",
        .epilog = "Exit status: 0 the ledgers agree, 1 they differ, 2 usage error.",
        .opts = opts,
    };
    int first = hb_cli_parse(&cli, argc, argv);
    if (!journal) {
        fprintf(stderr, "hb-reconcile: --journal is required\nhb-reconcile: see 'hb-reconcile --help'\n");
        return 2;
    }
    sums s = {0};
    printf("hb-reconcile:\n");
    read_journal(journal, &s);
    if (stats)
        check_stats(stats, &s);
    for (int i = first; i < argc; i++)
        read_ledger(argv[i], &s);
    if (ninflight)
        qsort(inflight, ninflight, sizeof *inflight, cmp_u64);

    uint64_t unwon = 0, unopened = 0;
    for (size_t i = 0; i < cap; i++) {
        pkt *p = &tab[i];
        if (!p->id)
            continue;
        if (!p->created) {
            if (p->cl_won || p->cl_opened[0])
                problem("clients recorded packet %" PRIu64 ", which the journal never created", p->id);
            continue;
        }
        if (p->kind == HB__PACKET_KIND__KIND_SHAKE) {
            if (p->won && !p->cl_won) {
                bool fl = shake_in_flight(p->win_uid, p->win_seq);
                s.unheard_in_flight += fl;
                problem("packet %" PRIu64 " won by uid %u (%u cents) per the journal; no client recorded it%s", p->id,
                        p->win_uid, p->win_amount,
                        fl ? " (its shake was unanswered when the client stopped: paid, reply never read)" : "");
            }
            else if (!p->won && p->cl_won)
                problem("packet %" PRIu64 " recorded by uid %u; the journal has no win", p->id, p->cl_win_uid);
            else if (p->won && (p->cl_win_uid != p->win_uid || p->cl_win_amount != p->win_amount))
                problem("packet %" PRIu64 ": journal uid %u %u cents, client uid %u %u cents", p->id, p->win_uid,
                        p->win_amount, p->cl_win_uid, p->cl_win_amount);
            unwon += !p->won;
        } else {
            for (int k = 0; k < p->n; k++) {
                if (p->opened[k] && !p->cl_opened[k]) {
                    s.unheard_in_flight += p->cl_unanswered[k];
                    problem("send packet %" PRIu64 ": uid %u was paid %u cents per the journal; its client has no "
                            "record%s",
                            p->id, p->uid[k], p->share[k],
                            p->cl_unanswered[k] ? " (its open was unanswered when the client stopped: paid, reply "
                                                  "never read)"
                                                : "");
                }
                else if (!p->opened[k] && p->cl_opened[k])
                    problem("send packet %" PRIu64 ": uid %u recorded a share the journal does not have", p->id, p->uid[k]);
                else if (p->opened[k] && p->cl_share[k] != p->share[k])
                    problem("send packet %" PRIu64 ": uid %u got %u cents per its client, %u per the journal", p->id,
                            p->uid[k], p->cl_share[k], p->share[k]);
                unopened += !p->opened[k];
            }
        }
    }
    printf("  shake flow: %" PRIu64 " packets created (%" PRIu64 " cents), %" PRIu64 " won (%" PRIu64
           " cents), %" PRIu64 " not won yet\n",
           s.shake_created, s.shake_amount, s.won, s.won_amount, unwon);
    printf("  send flow:  %" PRIu64 " packets created (%" PRIu64 " cents), %" PRIu64 " of %" PRIu64
           " shares opened (%" PRIu64 " cents)\n",
           s.send_created, s.send_amount, s.shares, s.shares_possible, s.share_amount);
    printf("  clients:    %" PRIu64 " wins (%" PRIu64 " cents), %" PRIu64 " shares (%" PRIu64 " cents)\n", s.cl_wins,
           s.cl_win_amount, s.cl_shares, s.cl_share_amount);
    if (all_won && unwon)
        problem("%" PRIu64 " shake packets were created but never won", unwon);
    if (all_opened && unopened)
        problem("%" PRIu64 " send-flow shares were never opened", unopened);
    if (s.cl_unanswered)
        printf("  in flight:  %" PRIu64 " requests were unanswered when their clients stopped; %" PRIu64
               " grants the clients never heard of are among them\n",
               s.cl_unanswered, s.unheard_in_flight);
    if (problems) {
        if (s.unheard_in_flight)
            printf("  (a grant whose reply a client never read is not lost: the journal pays it, and the user learns\n"
                   "   it by asking again, as a reconnecting client does; but the client's ledger is incomplete)\n");
        printf("LEDGER MISMATCH: %" PRIu64 " difference%s\n", problems, problems == 1 ? "" : "s");
        return 1;
    }
    printf("LEDGER OK: journal%s and %d client ledger%s agree: %" PRIu64 " packets won, %" PRIu64
           " shares opened, %" PRIu64 " cents paid, nothing paid twice\n",
           stats ? ", server counters" : "", argc - first, argc - first == 1 ? "" : "s", s.won, s.shares,
           s.won_amount + s.share_amount);
    return 0;
}
