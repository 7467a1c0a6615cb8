/* reconcile.c -- hb-reconcile: the ledger check, the project's central promise
 * ("nothing lost, nothing paid twice") made into a program.
 *
 * Three records of the same money must agree:
 *   1. the server's grant journal: the settings of every producer cycle
 *      (CYCLE records), every packet made (CREATE), won (WIN), opened (SHARE);
 *   2. the server's final counters (--server-stats), which must match the
 *      journal (counting what an earlier run of the server replayed);
 *   3. every client ledger (proto/ledgerfile.h): W and S lines, and Q and O
 *      lines naming what was still unanswered when a client stopped.
 * The run's parameters come from the journal itself, never from the caller,
 * so every record and every ledger line is checked against what the run was
 * configured to do: packet amounts within the cycle's range, uids within its
 * users, no more packets than its totals, splits of its size.
 *
 * Exit status: 0 everything agrees; 1 money disagrees (a difference is named
 * for each); 2 usage error or unusable input (a missing or damaged journal,
 * an unreadable ledger line, missing counters, a journal with no cycle
 * settings): then nothing can be said about the money.
 *
 * A cluster's run is several journals, one per node (server/cluster.h):
 * given several --journal files, they are checked as one run: each journal
 * by its own cycles and its node's id band (proto/money.h), every packet id
 * in one journal only, the journals' cycles consistent (one node each, the
 * same cluster totals, each node's totals exactly its share of them), the
 * clients' ledgers against all of them together.
 *
 * Structure: read_journal() builds the packet table from the journal and
 * checks each record; check_stats() compares the counters; read_ledger()
 * matches each client line to the packet table; compare() looks at every
 * packet once more from both sides and at the totals. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conf.h"
#include "jfile.h"
#include "ledgerfile.h"
#include "money.h"
#include "statsfile.h"
#include "util.h"

/* ---- differences ------------------------------------------------------------------ */

enum { MONEY, INPUT };
static uint64_t money_problems, input_problems;
static int shown;

static void problem(int kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(int kind, const char *fmt, ...)
{
    if (kind == MONEY)
        money_problems++;
    else
        input_problems++;
    if (shown++ >= 40) {
        if (shown == 41)
            printf("  ... (more differences not shown)\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    printf("  %s: ", kind == MONEY ? "DIFF" : "INPUT");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* ---- a u64 -> u64 map (open addressing; key 0 is never used) ------------------------- */

typedef struct map64 {
    uint64_t *k, *v;
    size_t cap, len;
} map64;

static size_t map_slot(const map64 *m, uint64_t key)
{
    size_t i = (size_t)(key * 0x9e3779b97f4a7c15ULL >> 20) & (m->cap - 1);
    while (m->k[i] && m->k[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static uint64_t *map_get(map64 *m, uint64_t key, bool create)
{
    if (create && (m->len + 1) * 2 > m->cap) {
        map64 n = {.cap = m->cap ? m->cap * 2 : 1 << 12};
        n.k = calloc(n.cap, sizeof *n.k);
        n.v = calloc(n.cap, sizeof *n.v);
        if (!n.k || !n.v)
            hb_die("out of memory");
        for (size_t i = 0; i < m->cap; i++)
            if (m->k[i]) {
                size_t j = map_slot(&n, m->k[i]);
                n.k[j] = m->k[i];
                n.v[j] = m->v[i];
            }
        n.len = m->len;
        free(m->k);
        free(m->v);
        *m = n;
    }
    if (!m->cap)
        return NULL;
    size_t i = map_slot(m, key);
    if (m->k[i])
        return &m->v[i];
    if (!create)
        return NULL;
    m->k[i] = key;
    m->len++;
    return &m->v[i];
}

/* ---- what the journal says, per packet --------------------------------------------- */

typedef struct pkt {
    uint64_t id;
    uint32_t amount;
    uint16_t cycle;      /* index into cycles[] */
    uint8_t kind, n;
    uint8_t won;         /* shake: WIN records */
    uint32_t win_uid, win_seq;
    uint32_t uid[HB_SPLIT_MAX], share[HB_SPLIT_MAX];
    uint8_t opened[HB_SPLIT_MAX];        /* SHARE records per recipient */
    uint8_t cl_won;                      /* client W lines */
    uint32_t cl_win_uid, cl_win_amount, cl_win_seq;
    uint8_t cl_opened[HB_SPLIT_MAX];     /* client S lines per recipient */
    uint32_t cl_share[HB_SPLIT_MAX];
    uint8_t cl_unanswered[HB_SPLIT_MAX]; /* client O lines: the open was in flight at exit */
} pkt;

static pkt *pkts;             /* created packets, in journal order */
static size_t npkts, cappkts;
static map64 by_id;           /* packet id -> index + 1 into pkts */
static map64 win_by_shake;    /* (uid + 1) << 32 | seq -> packet id, journal WINs */
static map64 cl_win_by_shake; /* the same for client W lines */
static map64 unanswered;      /* (uid + 1) << 32 | seq of Q lines -> 1 */

static uint64_t shake_key(uint32_t uid, uint32_t seq)
{
    return ((uint64_t)uid + 1) << 32 | seq;
}

static pkt *find(uint64_t id)
{
    uint64_t *ix = id ? map_get(&by_id, id, false) : NULL;
    return ix ? &pkts[*ix - 1] : NULL;
}

static pkt *add(uint64_t id)
{
    if (find(id)) { /* only across journals: within one, ids are checked in order */
        problem(MONEY, "packet id %" PRIu64 " is made by two journals (node id bands overlap)", id);
        return NULL;
    }
    if (npkts == cappkts) {
        cappkts = cappkts ? cappkts * 2 : 1 << 12;
        pkts = realloc(pkts, cappkts * sizeof *pkts);
        if (!pkts)
            hb_die("out of memory");
    }
    pkt *p = &pkts[npkts++];
    memset(p, 0, sizeof *p);
    p->id = id;
    *map_get(&by_id, id, true) = npkts;
    return p;
}

/* ---- the run's settings: one entry per producer cycle -------------------------------- */

#define MAX_CYCLES 65535
typedef struct cycle {
    Hb__Cycle c;
    uint64_t shake_upto, send_upto; /* cumulative totals through this cycle */
} cycle;
static cycle *cycles;
static size_t ncycles;
/* The journal being read: its first cycle, its id band, its packet counts. */
static size_t jc0;
static unsigned jband;
static uint64_t j_shake, j_send;
/* Every journal's last cycle: the run's planned totals and the cluster check. */
static uint64_t planned_shake, planned_send;
static Hb__Cycle *lasts;
static size_t nlasts;

/* The cycle a packet belongs to: its number within the flow (1-based for
 * shake ids, 0-based index for send packets) against the cumulative totals.
 * -1 when it is beyond every cycle begun. */
static int cycle_of(bool send, uint64_t k)
{
    for (size_t i = jc0; i < ncycles; i++)
        if (k <= (send ? cycles[i].send_upto : cycles[i].shake_upto))
            return (int)i;
    return -1;
}

typedef struct sums {
    uint64_t records;
    uint64_t shake_created, shake_amount, won, won_amount;
    uint64_t send_created, send_amount, shares, share_amount, shares_possible;
    uint64_t cl_wins, cl_win_amount, cl_shares, cl_share_amount;
    uint64_t cl_unanswered, unheard_in_flight; /* Q+O lines; grants explained by them */
} sums;

/* ---- the journal ------------------------------------------------------------------ */

static void on_cycle(const Hb__Record *r)
{
    const Hb__Cycle *c = r->cycle;
    if (!c) {
        problem(MONEY, "a cycle record without its settings");
        return;
    }
    if (c->number != ncycles - jc0 + 1 || ncycles == MAX_CYCLES) {
        problem(MONEY, "cycle record %u out of order (expected cycle %zu)", c->number, ncycles - jc0 + 1);
        return;
    }
    unsigned band = c->nodes ? c->node + 1 : 0;
    if (ncycles > jc0 && band != jband)
        problem(MONEY, "cycle %u: node %u of %u, the journal's first cycle was band %u", c->number, c->node, c->nodes,
                jband);
    if (c->nodes && (c->node >= c->nodes || c->nodes > HB_NODES_MAX))
        problem(MONEY, "cycle %u: node %u of %u nodes", c->number, c->node, c->nodes);
    if (c->nodes && (c->total != c->cluster_total / c->nodes + (c->node < c->cluster_total % c->nodes) ||
                     c->send_total != c->cluster_send_total / c->nodes + (c->node < c->cluster_send_total % c->nodes)))
        problem(MONEY, "cycle %u: node %u of %u makes %" PRIu64 "+%" PRIu64 " packets, not its share of the cluster's %" PRIu64 "+%" PRIu64,
                c->number, c->node, c->nodes, c->total, c->send_total, c->cluster_total, c->cluster_send_total);
    if (ncycles == jc0)
        jband = band;
    if (c->users < 1 || c->amount_min < 1 || c->amount_min > c->amount_max || c->send_split < 1 ||
        c->send_split > HB_SPLIT_MAX || (c->send_total && c->send_amount_min < c->send_split) ||
        c->send_amount_min > c->send_amount_max)
        problem(MONEY, "cycle %u: settings that cannot pay correctly (users %u, amounts %u..%u, send %u..%u split %u)",
                c->number, c->users, c->amount_min, c->amount_max, c->send_amount_min, c->send_amount_max,
                c->send_split);
    cycles = realloc(cycles, (ncycles + 1) * sizeof *cycles);
    if (!cycles)
        hb_die("out of memory");
    cycle *cy = &cycles[ncycles];
    cy->c = *c;
    cy->shake_upto = (ncycles > jc0 ? cycles[ncycles - 1].shake_upto : 0) + c->total;
    cy->send_upto = (ncycles > jc0 ? cycles[ncycles - 1].send_upto : 0) + c->send_total;
    ncycles++;
}

static void on_create_shake(const Hb__Record *r, sums *s)
{
    uint64_t id = r->packet_id;
    if (id != hb_shake_id_in(jband, j_shake + 1)) {
        problem(MONEY, "shake packet %" PRIu64 " created out of order (expected %" PRIu64 ")", id,
                hb_shake_id_in(jband, j_shake + 1));
        return;
    }
    int cy = cycle_of(false, j_shake + 1);
    if (cy < 0) {
        problem(MONEY, "shake packet %" PRIu64 " created beyond the totals of the %zu cycle(s) begun (%" PRIu64 ")",
                id, ncycles - jc0, ncycles > jc0 ? cycles[ncycles - 1].shake_upto : 0);
        return;
    }
    const Hb__Cycle *c = &cycles[cy].c;
    if (r->amount < c->amount_min || r->amount > c->amount_max)
        problem(MONEY, "shake packet %" PRIu64 " of %u cents: cycle %u makes %u..%u", id, r->amount, c->number,
                c->amount_min, c->amount_max);
    pkt *p = add(id);
    j_shake++;
    if (!p)
        return;
    p->kind = HB__PACKET_KIND__KIND_SHAKE;
    p->amount = r->amount;
    p->cycle = (uint16_t)cy;
    s->shake_created++;
    s->shake_amount += r->amount;
}

static void on_create_send(const Hb__Record *r, sums *s)
{
    uint64_t id = r->packet_id;
    if (id != hb_send_id_in(jband, j_send)) {
        problem(MONEY, "send packet %" PRIu64 " created out of order (expected %" PRIu64 ")", id,
                hb_send_id_in(jband, j_send));
        return;
    }
    int cy = cycle_of(true, j_send + 1);
    if (cy < 0) {
        problem(MONEY, "send packet %" PRIu64 " created beyond the send totals of the %zu cycle(s) begun", id,
                ncycles - jc0);
        return;
    }
    const Hb__Cycle *c = &cycles[cy].c;
    if (r->n_recipients != c->send_split || r->n_shares != r->n_recipients) {
        problem(MONEY, "send packet %" PRIu64 ": %zu recipients and %zu shares, cycle %u splits in %u", id,
                r->n_recipients, r->n_shares, c->number, c->send_split);
        return;
    }
    if (r->amount < c->send_amount_min || r->amount > c->send_amount_max)
        problem(MONEY, "send packet %" PRIu64 " of %u cents: cycle %u makes %u..%u", id, r->amount, c->number,
                c->send_amount_min, c->send_amount_max);
    pkt *p = add(id);
    j_send++;
    if (!p)
        return;
    p->kind = HB__PACKET_KIND__KIND_SEND;
    p->amount = r->amount;
    p->cycle = (uint16_t)cy;
    p->n = (uint8_t)r->n_recipients;
    uint64_t sum = 0;
    for (size_t i = 0; i < r->n_recipients; i++) {
        p->uid[i] = r->recipients[i];
        p->share[i] = r->shares[i];
        sum += r->shares[i];
        if (r->shares[i] < 1)
            problem(MONEY, "send packet %" PRIu64 ": a share of 0 cents", id);
        if (r->recipients[i] >= c->users)
            problem(MONEY, "send packet %" PRIu64 ": recipient uid %u, the run has %u users", id, r->recipients[i],
                    c->users);
        for (size_t k = 0; k < i; k++)
            if (r->recipients[k] == r->recipients[i])
                problem(MONEY, "send packet %" PRIu64 ": uid %u listed twice", id, r->recipients[i]);
    }
    if (sum != r->amount)
        problem(MONEY, "send packet %" PRIu64 ": shares sum to %" PRIu64 ", amount is %u", id, sum, r->amount);
    s->send_created++;
    s->send_amount += r->amount;
    s->shares_possible += p->n;
}

static void on_win(const Hb__Record *r, sums *s)
{
    pkt *p = find(r->packet_id);
    if (!p || p->kind != HB__PACKET_KIND__KIND_SHAKE) {
        problem(MONEY, "win of packet %" PRIu64 " (uid %u) that the journal never created as a shake packet",
                r->packet_id, r->uid);
        return;
    }
    const Hb__Cycle *c = &cycles[p->cycle].c;
    if (r->uid >= c->users) {
        problem(MONEY, "packet %" PRIu64 " won by uid %u, the run has %u users", r->packet_id, r->uid, c->users);
        return;
    }
    if (p->won) {
        problem(MONEY, "packet %" PRIu64 " won twice: uid %u and uid %u (paid twice!)", r->packet_id, p->win_uid,
                r->uid);
        return;
    }
    if (r->amount != p->amount) {
        problem(MONEY, "packet %" PRIu64 " won for %u cents, created with %u", r->packet_id, r->amount, p->amount);
        return;
    }
    uint64_t *other = map_get(&win_by_shake, shake_key(r->uid, r->seq), true);
    if (*other) {
        problem(MONEY, "uid %u's shake seq %u won twice: packets %" PRIu64 " and %" PRIu64 " (one shake paid twice!)",
                r->uid, r->seq, *other, r->packet_id);
        return;
    }
    *other = r->packet_id;
    p->won = 1;
    p->win_uid = r->uid;
    p->win_seq = r->seq;
    s->won++;
    s->won_amount += r->amount;
}

static void on_share(const Hb__Record *r, sums *s)
{
    pkt *p = find(r->packet_id);
    int i = -1;
    for (int k = 0; p && p->kind == HB__PACKET_KIND__KIND_SEND && k < p->n; k++)
        if (p->uid[k] == r->uid)
            i = k;
    if (i < 0)
        problem(MONEY, "share of packet %" PRIu64 " paid to uid %u, not a recipient", r->packet_id, r->uid);
    else if (p->opened[i])
        problem(MONEY, "packet %" PRIu64 " opened twice by uid %u (paid twice!)", r->packet_id, r->uid);
    else if (r->amount != p->share[i])
        problem(MONEY, "packet %" PRIu64 ": uid %u paid %u, its share is %u", r->packet_id, r->uid, r->amount,
                p->share[i]);
    else {
        p->opened[i] = 1;
        s->shares++;
        s->share_amount += r->amount;
    }
}

static void made_count(const Hb__Record *r); /* --made-per-second, below */

static void read_journal(const char *path, sums *s)
{
    hb_jfile jf;
    char err[512];
    FILE *probe = fopen(path, "r");
    if (!probe) {
        problem(INPUT, "journal %s: %s", path, strerror(errno));
        return;
    }
    fclose(probe);
    if (hb_jfile_open(&jf, path, err, sizeof err) < 0) {
        problem(INPUT, "%s", err);
        return;
    }
    Hb__Record *r;
    jc0 = ncycles;
    jband = 0;
    j_shake = j_send = 0;
    uint64_t records0 = s->records;
    while (hb_jfile_next(&jf, &r)) {
        s->records++;
        if (r->type == HB__RECORD_TYPE__REC_CYCLE)
            on_cycle(r);
        else if (ncycles == jc0)
            problem(INPUT, "journal record %" PRIu64 " comes before any cycle record: no settings to check it by",
                    s->records);
        else if (r->type == HB__RECORD_TYPE__REC_CREATE && r->kind == HB__PACKET_KIND__KIND_SHAKE)
            made_count(r), on_create_shake(r, s);
        else if (r->type == HB__RECORD_TYPE__REC_CREATE && r->kind == HB__PACKET_KIND__KIND_SEND)
            made_count(r), on_create_send(r, s);
        else if (r->type == HB__RECORD_TYPE__REC_WIN)
            on_win(r, s);
        else if (r->type == HB__RECORD_TYPE__REC_SHARE)
            on_share(r, s);
        else
            problem(MONEY, "journal record %" PRIu64 " of unknown type %d", s->records, r->type);
    }
    if (ncycles > jc0) {
        planned_shake += cycles[ncycles - 1].shake_upto;
        planned_send += cycles[ncycles - 1].send_upto;
        if (!(lasts = realloc(lasts, (nlasts + 1) * sizeof *lasts)))
            hb_die("out of memory");
        lasts[nlasts++] = cycles[ncycles - 1].c;
    }
    printf("  journal %s: %" PRIu64 " records, %zu cycle(s)%s%s\n", path, s->records - records0, ncycles - jc0,
           jf.stop_reason ? ", then a " : " (clean end)", jf.stop_reason ? jf.stop_reason : "");
    size_t after = jf.stop_reason ? hb_jfile_intact_after(&jf) : 0;
    if (after)
        problem(INPUT, "journal damaged at byte %zu (%s) with intact entries after it (from byte %zu): not a torn tail",
                jf.valid, jf.stop_reason, after);
    else if (jf.stop_reason && !jf.torn)
        problem(INPUT, "journal damaged at byte %zu (%s): the last entry is whole, so not torn by a crash", jf.valid,
                jf.stop_reason);
    if (s->records == records0)
        problem(INPUT, "journal %s is empty: it holds no run", path);
    hb_jfile_close(&jf);
}

/* Several journals are one run only as the nodes of one cluster: each a
 * different node of the same number of nodes, with the same cluster totals
 * (each journal's cycles were checked to be its node's exact share). */
static void check_cluster(size_t njournals)
{
    if (njournals < 2 && (!nlasts || !lasts[0].nodes))
        return;
    for (size_t i = 0; i < nlasts; i++) {
        const Hb__Cycle *a = &lasts[i], *b = &lasts[0];
        if (!a->nodes) {
            problem(MONEY, "journal %zu is not a cluster node's (its cycles name no node): several journals must be "
                           "one cluster's", i + 1);
            continue;
        }
        if (a->nodes != b->nodes || a->cluster_total != b->cluster_total ||
            a->cluster_send_total != b->cluster_send_total || a->users != b->users || a->number != b->number)
            problem(MONEY,
                    "journals 1 and %zu disagree about the run: %u/%u nodes, cluster totals %" PRIu64 "/%" PRIu64
                    " and %" PRIu64 "/%" PRIu64 ", users %u/%u, cycles %u/%u",
                    i + 1, b->nodes, a->nodes, b->cluster_total, a->cluster_total, b->cluster_send_total,
                    a->cluster_send_total, b->users, a->users, b->number, a->number);
        for (size_t k = 0; k < i; k++)
            if (lasts[k].node == a->node)
                problem(MONEY, "journals %zu and %zu are both node %u's", k + 1, i + 1, a->node);
    }
    if (nlasts && lasts[0].nodes) {
        printf("  cluster: %zu of %u nodes' journals, cluster totals %" PRIu64 " shake + %" PRIu64
               " send packets per cycle%s\n",
               nlasts, lasts[0].nodes, lasts[0].cluster_total, lasts[0].cluster_send_total,
               nlasts == lasts[0].nodes ? "" : " (the missing nodes' shares are not checked)");
    }
}

/* ---- the server's counters -------------------------------------------------------- */

static void check_stats(const char *path, const sums *s)
{
    hb_statsfile f;
    char err[512];
    if (hb_statsfile_load(&f, path, err, sizeof err) < 0) {
        problem(INPUT, "server stats %s", err);
        return;
    }
    static const char *names[] = {"wins",     "replayed_wins",   "amount_won",   "replayed_win_amount",
                                  "opens_ok", "replayed_shares", "share_amount", "replayed_share_amount"};
    uint64_t v[8];
    for (int i = 0; i < 8; i++)
        if (hb_statsfile_u64(&f, names[i], &v[i]) != 1) {
            problem(INPUT, "server stats %s: no counter '%s' (not an hb-server --stats-file?)", path, names[i]);
            hb_statsfile_free(&f);
            return;
        }
    hb_statsfile_free(&f);
    uint64_t wins = v[0] + v[1], wamt = v[2] + v[3], shares = v[4] + v[5], samt = v[6] + v[7];
    printf("  server counters %s: %" PRIu64 " wins (%" PRIu64 " cents), %" PRIu64 " shares (%" PRIu64 " cents)\n",
           path, wins, wamt, shares, samt);
    if (wins != s->won || wamt != s->won_amount)
        problem(MONEY, "server counters say %" PRIu64 " wins / %" PRIu64 " cents, the journal %" PRIu64 " / %" PRIu64,
                wins, wamt, s->won, s->won_amount);
    if (shares != s->shares || samt != s->share_amount)
        problem(MONEY,
                "server counters say %" PRIu64 " shares / %" PRIu64 " cents, the journal %" PRIu64 " / %" PRIu64,
                shares, samt, s->shares, s->share_amount);
}

/* ---- client ledgers ------------------------------------------------------------------ */

static uint32_t users_of_run(void)
{
    uint32_t u = 0;
    for (size_t i = 0; i < ncycles; i++)
        u = cycles[i].c.users > u ? cycles[i].c.users : u;
    return u;
}

static void on_w(const char *where, const hb_lline *l, sums *s)
{
    s->cl_wins++;
    s->cl_win_amount += l->amount;
    uint64_t *other = map_get(&cl_win_by_shake, shake_key(l->uid, l->seq), true);
    if (*other && *other != l->packet_id)
        problem(MONEY, "%s: uid %u's shake seq %u recorded two wins, packets %" PRIu64 " and %" PRIu64, where, l->uid,
                l->seq, *other, l->packet_id);
    *other = l->packet_id;
    pkt *p = find(l->packet_id);
    if (!p || p->kind != HB__PACKET_KIND__KIND_SHAKE) {
        problem(MONEY, "%s: a win of packet %" PRIu64 " (uid %u, %u cents), which the journal never made as a shake "
                       "packet",
                where, l->packet_id, l->uid, l->amount);
        return;
    }
    if (p->cl_won) {
        problem(MONEY, "%s: packet %" PRIu64 " recorded twice by clients (uid %u and uid %u)", where, l->packet_id,
                p->cl_win_uid, l->uid);
        return;
    }
    p->cl_won = 1;
    p->cl_win_uid = l->uid;
    p->cl_win_amount = l->amount;
    p->cl_win_seq = l->seq;
}

static void on_s(const char *where, const hb_lline *l, sums *s)
{
    s->cl_shares++;
    s->cl_share_amount += l->amount;
    pkt *p = find(l->packet_id);
    int i = -1;
    for (int k = 0; p && p->kind == HB__PACKET_KIND__KIND_SEND && k < p->n; k++)
        if (p->uid[k] == l->uid)
            i = k;
    if (i < 0) {
        problem(MONEY, "%s: share of packet %" PRIu64 " recorded by uid %u, who is not a recipient", where,
                l->packet_id, l->uid);
        return;
    }
    if (p->cl_opened[i]) {
        problem(MONEY, "%s: share of packet %" PRIu64 " recorded twice by uid %u", where, l->packet_id, l->uid);
        return;
    }
    p->cl_opened[i] = 1;
    p->cl_share[i] = l->amount;
}

static void read_ledger(const char *path, sums *s)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        problem(INPUT, "ledger %s: %s", path, strerror(errno));
        return;
    }
    char line[256], where[512];
    int lineno = 0;
    uint64_t w = 0, sh = 0;
    uint32_t users = users_of_run();
    while (fgets(line, sizeof line, f)) {
        lineno++;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        hb_lline l;
        int r = hb_lline_parse(line, &l);
        if (r == 0)
            continue;
        if (r < 0) {
            problem(INPUT, "%s: unreadable ledger line", where);
            continue;
        }
        if (users && l.uid >= users) {
            problem(MONEY, "%s: uid %u, the run has %u users", where, l.uid, users);
            continue;
        }
        switch (l.type) {
        case HB_LL_WIN: w++, on_w(where, &l, s); break;
        case HB_LL_SHARE: sh++, on_s(where, &l, s); break;
        case HB_LL_UNANSWERED_SHAKE:
            s->cl_unanswered++;
            *map_get(&unanswered, shake_key(l.uid, l.seq), true) = 1;
            break;
        case HB_LL_UNANSWERED_OPEN: {
            s->cl_unanswered++;
            pkt *p = find(l.packet_id);
            for (int k = 0; p && p->kind == HB__PACKET_KIND__KIND_SEND && k < p->n; k++)
                if (p->uid[k] == l.uid)
                    p->cl_unanswered[k] = 1;
            break;
        }
        }
    }
    fclose(f);
    printf("  ledger %s: %" PRIu64 " wins, %" PRIu64 " shares\n", path, w, sh);
}

/* ---- both sides, packet by packet ------------------------------------------------------ */

static void compare_shake(pkt *p, sums *s)
{
    if (p->won && !p->cl_won) {
        bool fl = map_get(&unanswered, shake_key(p->win_uid, p->win_seq), false) != NULL;
        s->unheard_in_flight += fl;
        problem(MONEY, "packet %" PRIu64 " won by uid %u (%u cents) per the journal; no client recorded it%s", p->id,
                p->win_uid, p->amount,
                fl ? " (its shake was unanswered when the client stopped: paid, reply never read)" : "");
    } else if (!p->won && p->cl_won)
        problem(MONEY, "packet %" PRIu64 " recorded by uid %u; the journal has no win", p->id, p->cl_win_uid);
    else if (p->won && (p->cl_win_uid != p->win_uid || p->cl_win_amount != p->amount || p->cl_win_seq != p->win_seq))
        problem(MONEY, "packet %" PRIu64 ": journal uid %u %u cents seq %u, client uid %u %u cents seq %u", p->id,
                p->win_uid, p->amount, p->win_seq, p->cl_win_uid, p->cl_win_amount, p->cl_win_seq);
}

static void compare_send(pkt *p, sums *s)
{
    for (int k = 0; k < p->n; k++) {
        if (p->opened[k] && !p->cl_opened[k]) {
            s->unheard_in_flight += p->cl_unanswered[k];
            problem(MONEY, "send packet %" PRIu64 ": uid %u was paid %u cents per the journal; its client has no record%s",
                    p->id, p->uid[k], p->share[k],
                    p->cl_unanswered[k] ? " (its open was unanswered when the client stopped: paid, reply never read)"
                                        : "");
        } else if (!p->opened[k] && p->cl_opened[k])
            problem(MONEY, "send packet %" PRIu64 ": uid %u recorded a share the journal does not have", p->id,
                    p->uid[k]);
        else if (p->opened[k] && p->cl_share[k] != p->share[k])
            problem(MONEY, "send packet %" PRIu64 ": uid %u got %u cents per its client, %u per the journal", p->id,
                    p->uid[k], p->cl_share[k], p->share[k]);
    }
}

/* ---- --made-per-second: when packets were made, by the journal's clock -------------- */

/* The producers' regularity as the journal's CREATE time stamps tell it (a
 * per-second count from the servers' once-a-second reports also carries
 * the jitter of when each report was cut).  Counts per unix second, kind
 * and journal (node), summed over the nodes when written. */
static int64_t made_sec0 = -1;
static uint32_t (*made)[2]; /* [second - made_sec0][kind: 0 shake, 1 send] */
static size_t nmade;

static void made_count(const Hb__Record *r)
{
    if (r->time_us <= 0)
        return;
    int64_t sec = r->time_us / 1000000;
    if (made_sec0 < 0)
        made_sec0 = sec;
    if (sec < made_sec0) { /* a later journal began earlier: shift */
        size_t by = (size_t)(made_sec0 - sec);
        if (!(made = realloc(made, (nmade + by) * sizeof *made)))
            hb_die("out of memory");
        memmove(made + by, made, nmade * sizeof *made);
        memset(made, 0, by * sizeof *made);
        nmade += by;
        made_sec0 = sec;
    }
    size_t i = (size_t)(sec - made_sec0);
    if (i > 100u * 86400)
        return; /* a time stamp days away is not a run's: leave it out */
    if (i >= nmade) {
        if (!(made = realloc(made, (i + 1) * sizeof *made)))
            hb_die("out of memory");
        memset(made + nmade, 0, (i + 1 - nmade) * sizeof *made);
        nmade = i + 1;
    }
    made[i][r->kind == HB__PACKET_KIND__KIND_SEND]++;
}

static int made_write(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "hb-reconcile: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "second\tshake\tsend\n");
    for (size_t i = 0; i < nmade; i++)
        fprintf(f, "%" PRId64 "\t%u\t%u\n", made_sec0 + (int64_t)i, made[i][0], made[i][1]);
    if (fclose(f) != 0) {
        fprintf(stderr, "hb-reconcile: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    hb_prog = "hb-reconcile";
    char *journal = NULL, *stats = NULL, *made_path = NULL;
    bool all_won = false, all_opened = false;
    const hb_opt opts[] = {
        {"journal", HB_OPT_STR, &journal, "FILE", "the server's grant journal (required); once per node for a cluster's run", 0, 0},
        {"server-stats", HB_OPT_STR, &stats, "FILE", "the server's final --stats-file, checked against the journal", 0, 0},
        {"expect-all-won", HB_OPT_BOOL, &all_won, NULL, "also fail unless every cycle made all its shake packets and every one was won", 0, 0},
        {"expect-all-opened", HB_OPT_BOOL, &all_opened, NULL, "also fail unless every cycle made all its send packets and every share was opened", 0, 0},
        {"made-per-second", HB_OPT_STR, &made_path, "FILE", "also write, per unix second, the shake and send packets the journals' CREATE records were stamped with (TSV: second, shake, send; all journals summed)", 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const hb_cli cli = {
        .synopsis = "hb-reconcile --journal FILE [--server-stats FILE] [--journal FILE2 [--server-stats FILE2] ...] [LEDGER...]",
        .description = "The ledger check: the server's journal, its counters and every client ledger must agree on\n"
                       "every packet, recipient and cent, and with the settings of the run (the journal's cycle\n"
                       "records).  Prints each difference.",
        .epilog = "Exit status: 0 they agree; 1 the money disagrees; 2 usage error or unusable input (missing or\n"
                  "damaged journal, unreadable ledger line, missing counters).",
        .opts = opts,
    };
    /* --journal and --server-stats may be given once per cluster node: the
     * i-th stats file goes with the i-th journal. */
    const char *journals[HB_NODES_MAX], *statss[HB_NODES_MAX];
    size_t nj = 0, ns = 0;
    static char **av; /* static: still reachable at exit (leak checkers) */
    av = calloc((size_t)argc + 1, sizeof *av);
    int ac = 0;
    if (!av)
        hb_die("out of memory");
    for (int i = 0; i < argc; i++) {
        bool j = !strcmp(argv[i], "--journal"), st = !strcmp(argv[i], "--server-stats");
        bool jeq = !strncmp(argv[i], "--journal=", 10), steq = !strncmp(argv[i], "--server-stats=", 15);
        if ((j || st) && i + 1 < argc) {
            if ((j ? nj : ns) == HB_NODES_MAX)
                hb_die("at most %d journals", HB_NODES_MAX);
            if (j)
                journals[nj++] = argv[++i];
            else
                statss[ns++] = argv[++i];
        } else if (jeq || steq) {
            if ((jeq ? nj : ns) == HB_NODES_MAX)
                hb_die("at most %d journals", HB_NODES_MAX);
            if (jeq)
                journals[nj++] = argv[i] + 10;
            else
                statss[ns++] = argv[i] + 15;
        } else {
            av[ac++] = argv[i];
        }
    }
    int first = hb_cli_parse(&cli, ac, av);
    argc = ac;
    argv = av;
    if (nj)
        journal = (char *)journals[0];
    if (ns)
        stats = (char *)statss[0];
    if (ns && ns != nj) {
        fprintf(stderr, "hb-reconcile: %zu --server-stats for %zu --journal: give one per journal, in the same order\n",
                ns, nj);
        return 2;
    }
    if (!journal) {
        fprintf(stderr, "hb-reconcile: --journal is required\nhb-reconcile: see 'hb-reconcile --help'\n");
        return 2;
    }
    sums s = {0};
    printf("hb-reconcile:\n");
    for (size_t i = 0; i < nj; i++) {
        sums before = s;
        read_journal(journals[i], &s);
        if (ns) { /* this journal's part of the sums against its server's counters */
            sums d = {.won = s.won - before.won,
                      .won_amount = s.won_amount - before.won_amount,
                      .shares = s.shares - before.shares,
                      .share_amount = s.share_amount - before.share_amount};
            check_stats(statss[i], &d);
        }
    }
    check_cluster(nj);
    for (int i = first; i < argc; i++)
        read_ledger(argv[i], &s);

    uint64_t unwon = 0, unopened = 0;
    for (size_t i = 0; i < npkts; i++) {
        pkt *p = &pkts[i];
        if (p->kind == HB__PACKET_KIND__KIND_SHAKE) {
            compare_shake(p, &s);
            unwon += !p->won;
        } else {
            compare_send(p, &s);
            for (int k = 0; k < p->n; k++)
                unopened += !p->opened[k];
        }
    }
    uint64_t shake_planned = planned_shake, send_planned = planned_send;
    printf("  shake flow: %" PRIu64 " of %" PRIu64 " packets created (%" PRIu64 " cents), %" PRIu64 " won (%" PRIu64
           " cents), %" PRIu64 " not won yet\n",
           s.shake_created, shake_planned, s.shake_amount, s.won, s.won_amount, unwon);
    printf("  send flow:  %" PRIu64 " of %" PRIu64 " packets created (%" PRIu64 " cents), %" PRIu64 " of %" PRIu64
           " shares opened (%" PRIu64 " cents)\n",
           s.send_created, send_planned, s.send_amount, s.shares, s.shares_possible, s.share_amount);
    printf("  clients:    %" PRIu64 " wins (%" PRIu64 " cents), %" PRIu64 " shares (%" PRIu64 " cents)\n", s.cl_wins,
           s.cl_win_amount, s.cl_shares, s.cl_share_amount);
    if (s.cl_wins != s.won || s.cl_win_amount != s.won_amount)
        problem(MONEY, "clients recorded %" PRIu64 " wins / %" PRIu64 " cents, the journal has %" PRIu64 " / %" PRIu64,
                s.cl_wins, s.cl_win_amount, s.won, s.won_amount);
    if (s.cl_shares != s.shares || s.cl_share_amount != s.share_amount)
        problem(MONEY,
                "clients recorded %" PRIu64 " shares / %" PRIu64 " cents, the journal has %" PRIu64 " / %" PRIu64,
                s.cl_shares, s.cl_share_amount, s.shares, s.share_amount);
    if (all_won && (unwon || s.shake_created != shake_planned))
        problem(MONEY, "expected every shake packet made and won: %" PRIu64 " of %" PRIu64 " made, %" PRIu64
                       " never won",
                s.shake_created, shake_planned, unwon);
    if (all_opened && (unopened || s.send_created != send_planned))
        problem(MONEY, "expected every send packet made and opened: %" PRIu64 " of %" PRIu64 " made, %" PRIu64
                       " shares never opened",
                s.send_created, send_planned, unopened);
    if (s.cl_unanswered)
        printf("  in flight:  %" PRIu64 " requests were unanswered when their clients stopped; %" PRIu64
               " grants the clients never heard of are among them\n",
               s.cl_unanswered, s.unheard_in_flight);
    if (made_path && made_write(made_path) < 0)
        return 2;
    if (input_problems) {
        printf("LEDGER UNCHECKED: %" PRIu64 " input problem%s (and %" PRIu64 " money difference%s)\n", input_problems,
               input_problems == 1 ? "" : "s", money_problems, money_problems == 1 ? "" : "s");
        return 2;
    }
    if (money_problems) {
        if (s.unheard_in_flight)
            printf("  (a grant whose reply a client never read is not lost: the journal pays it, and the user learns\n"
                   "   it by asking again, as a reconnecting client does; but the client's ledger is incomplete)\n");
        printf("LEDGER MISMATCH: %" PRIu64 " difference%s\n", money_problems, money_problems == 1 ? "" : "s");
        return 1;
    }
    printf("LEDGER OK: journal%s and %d client ledger%s agree with each other and with the run's %zu cycle(s): %" PRIu64
           " packets won, %" PRIu64 " shares opened, %" PRIu64 " cents paid, nothing paid twice\n",
           stats ? ", server counters" : "", argc - first, argc - first == 1 ? "" : "s", ncycles, s.won, s.shares,
           s.won_amount + s.share_amount);
    return 0;
}
