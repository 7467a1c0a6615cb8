/* server.c -- bringing the server up and down: settings checked, the journal
 * replayed and opened, the SETs created and started, the producer thread
 * started; and the reverse.
 *
 * Start-up order matters: everything another thread will ever write to (each
 * SET's loop and eventfd) is made by main before any SET thread unshares its
 * descriptor table (set.c), and every thread but main starts with all
 * signals blocked, so signals reach main's libev loop only. */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <arpa/inet.h>
#include <unistd.h>
#include "addrlimit.h"
#include "dealer.h"
#include "replay.h"
#include "set.h"
#include "upgrade.h"
#include "redis.h"
#include "xmsg.h"

void sv_server_defaults(sv_config *c)
{
    *c = (sv_config){
        /* Loopback unless told otherwise (issue 13.7): a server reachable
         * from elsewhere is a decision, made with --listen and then
         * --secret (or --insecure). */
        .listen = "127.0.0.1",
        .ports = "7000",
        .sets = 64,
        .max_conns = 0,
        .users = 1000000,
        .private_fds = true,
        .urgent_nice = -10, /* the producer and journal writer: on time among busy threads */
        .urgent_rt = 1,     /* ... as real-time threads where allowed (the lowest RT priority) */
        .backlog = 65535,
        .rate = 200,
        .total = 40000,
        .amount_min = 1,
        .amount_max = 20000,
        .queue = 4096,
        .send_rate = 200,
        .send_split = 3,
        .send_amount_min = 3,
        .send_amount_max = 30000,
        .inbox = 1024,
        .pending_max = 1000000,
        .pending_per_uid = 16,
        .renotify = 5,
        .journal = "hongbao.journal",
        .fsync = true,
        /* A 1 ms commit window: at 1M, wins and opens came one per fdatasync
         * and each commit's wake-ups cost the shakes their p99 (README). */
        .journal_delay_us = 1000,
        .deal_ms = 50,
        .login_timeout = 5,
        .frame_timeout = 5,
        .linger = 2,
        .shake_limit = 1,
        .chat_limit = 5,
        .instance = "server",
        .stats_every_ms = 1000,
        .weight = 1,
        .cluster_ttl_ms = 3000,
        .flap_hold_ms = 5000,
        .rehome_rate = 2500,
    };
}

/* ---- settings ------------------------------------------------------------------ */

/* What one descriptor table can give to connections, as --max-conns. */
static void fit_max_conns(sv_server *s)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) { /* raising the soft limit needs no privilege */
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    /* The limit minus what every table inherits (two descriptors per SET
     * loop, stdio, journal, listeners) and a margin. */
    uint64_t reserve = 3 * (uint64_t)s->nsets + (uint64_t)s->nports + 64;
    uint64_t per_table = rl.rlim_cur > reserve + 16 ? rl.rlim_cur - reserve : 16;
    uint64_t per_set = s->cfg.private_fds ? per_table : per_table / (uint64_t)s->nsets;
    if (per_set < 1)
        per_set = 1;
    if (s->cfg.max_conns == 0)
        s->cfg.max_conns = (int64_t)per_set;
    else if ((uint64_t)s->cfg.max_conns > per_set)
        hb_log("warning: --max-conns %lld is above what a descriptor table allows here (%llu); accept() will hit EMFILE "
               "first",
               (long long)s->cfg.max_conns, (unsigned long long)per_set);
}

/* Settings that cannot work together. */
static int check_config(sv_server *s, char *err, size_t errlen)
{
    const sv_config *c = &s->cfg;
    if ((s->nports = hb_parse_ports(c->ports, s->ports, HB_MAX_PORTS, err, errlen)) < 0)
        return -1;
    if (inet_pton(AF_INET, c->listen, &s->listen_addr) != 1) {
        snprintf(err, errlen, "--listen: '%s' is not an IPv4 address", c->listen);
        return -1;
    }
    /* Without a secret anyone who reaches the port logs in as any uid,
     * takes over sessions and opens other users' shares: only loopback
     * (127.0.0.0/8) is safe for that, or an operator who says so. */
    bool loopback = (ntohl(s->listen_addr.s_addr) >> 24) == 127;
    if (!loopback && !(c->secret_file && *c->secret_file) && !c->insecure) {
        snprintf(err, errlen,
                 "--listen %s is not a loopback address and no --secret is set: anyone who reaches the port could "
                 "log in as any uid. Give --secret FILE (make one with: hb-token --new-secret FILE), or --insecure "
                 "to run without login tokens anyway",
                 c->listen);
        return -1;
    }
    if (!loopback && !(c->secret_file && *c->secret_file))
        hb_log("warning: --insecure: logins on %s are not authenticated; anyone who reaches it can log in as any uid",
               c->listen);
    if (c->amount_min > c->amount_max || c->send_amount_min > c->send_amount_max) {
        snprintf(err, errlen, "amount range: min is above max");
        return -1;
    }
    if (c->send_total > 0 && (uint64_t)c->send_split > (uint64_t)c->users) {
        snprintf(err, errlen, "--send-split %lld needs at least that many --users", (long long)c->send_split);
        return -1;
    }
    if (c->send_total > 0 && c->send_amount_min < c->send_split) {
        snprintf(err, errlen, "--send-amount-min must be at least --send-split (every share is >= 1 cent)");
        return -1;
    }
    if (c->deal_ms > 0 && 1000 % c->deal_ms) {
        /* a slot across a second boundary would move its packets into the
         * earlier second (producer.h) */
        snprintf(err, errlen, "--deal-every %lld must divide 1000 (10, 20, 25, 50, 100, ...)", (long long)c->deal_ms);
        return -1;
    }
    return 0;
}

/* ---- cluster ------------------------------------------------------------------- */

/* Node i of n gets t / n, plus one if i < t % n: the shares sum to t exactly
 * whatever t and n, and each node knows its own without asking the others. */
static int64_t share_of(int64_t t, int64_t i, int64_t n)
{
    return t / n + (i < t % n ? 1 : 0);
}

/* A cluster node makes its share of the cluster's packets (--total and
 * --send-total are the cluster's, as are the rates) in its own id band.  The
 * split is by --node-index of --nodes, not by the live membership: money
 * must not change with who happens to be up (a node that is down makes its
 * share when it comes back, from its journal). */
static int cluster_settings(sv_server *s, char *err, size_t errlen)
{
    sv_config *c = &s->cfg;
    if (!c->cluster || !*c->cluster) {
        c->cluster = NULL;
        return 0;
    }
    if (!c->node || !*c->node || c->nodes < 1 || c->node_index >= c->nodes) {
        snprintf(err, errlen, "--cluster needs --node NAME and --node-index I of --nodes N (0 <= I < N)");
        return -1;
    }
    if (strlen(c->node) >= SV_CLUSTER_NAME_MAX || strchr(c->node, ' ')) {
        snprintf(err, errlen, "--node: a name of at most %d characters, no spaces", SV_CLUSTER_NAME_MAX - 1);
        return -1;
    }
    c->cluster_total = c->total;
    c->cluster_send_total = c->send_total;
    c->total = share_of(c->total, c->node_index, c->nodes);
    c->send_total = share_of(c->send_total, c->node_index, c->nodes);
    c->rate /= (double)c->nodes;
    c->send_rate /= (double)c->nodes;
    s->band = (unsigned)c->node_index + 1;
    return 0;
}

/* Register in Redis and read the members, before anything is served: an
 * unreachable Redis or a wrong password stops the start here. */
static int join_cluster(sv_server *s, bool starting, char *err, size_t errlen)
{
    const sv_config *c = &s->cfg;
    if (!c->cluster)
        return 0;
    char adv[128];
    hb_redis_addr pw; /* lib/redis.c: the password-file convention the fleet shares */
    if (c->redis_password_file && hb_redis_read_password(c->redis_password_file, &pw, err, errlen) < 0)
        return -1;
    if (c->advertise)
        snprintf(adv, sizeof adv, "%s", c->advertise);
    else
        snprintf(adv, sizeof adv, "%s:%d", strcmp(c->listen, "0.0.0.0") ? c->listen : "127.0.0.1", s->ports[0]);
    sv_cluster_opts o = {.url = c->cluster,
                         .password = c->redis_password_file ? pw.password : NULL,
                         .name = c->node,
                         .advertise = adv,
                         .weight = c->weight,
                         .index = (int)c->node_index,
                         .ttl_ms = (int)c->cluster_ttl_ms,
                         .flap_hold_ms = (int)c->flap_hold_ms,
                         .nice = (int)c->urgent_nice,
                         .pin = c->cluster_pin,
                         .live_bind = c->listen,
                         .live_port = c->takeover ? -1 : (int)c->live_port,
                         .starting = starting};
    s->cluster = sv_cluster_new(&o, err, errlen);
    if (!s->cluster || !(s->xmsg = sv_xmsg_new(s, err, errlen)))
        return -1;
    /* Refreshing from now on (see sv_cluster_start), every signal blocked
     * as for the other threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = sv_cluster_start(s->cluster, err, errlen);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int sv_server_init(sv_server *s, char *err, size_t errlen)
{
    sv_config *c = &s->cfg;
    s->nsets = (int)c->sets;
    s->rng_seed = c->seed ? (uint64_t)c->seed : hb_seed();
    s->start_us = hb_now_us();
    s->up_lfd = -1;
    if (check_config(s, err, errlen) < 0 || cluster_settings(s, err, errlen) < 0)
        return -1;
    if (c->secret_file && *c->secret_file &&
        hb_secret_load(c->secret_file, s->secret, &s->secret_len, err, errlen) < 0)
        return -1;
    fit_max_conns(s);
    if (sv_dir_init(&s->dir, (uint32_t)c->users, (uint64_t)c->pending_max, (uint64_t)c->pending_per_uid) < 0 ||
        sv_registry_init(&s->reg) < 0) {
        snprintf(err, errlen, "out of memory for %lld users", (long long)c->users);
        return -1;
    }
    s->reg.band = s->band;
    if (c->addr_limit > 0 && !(s->addrs = sv_addr_new())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (hb_reporter_init(&s->reporter, c->monitor, HB__ROLE__ROLE_SERVER, c->instance, err, errlen) < 0)
        return -1;
    s->sets = calloc((size_t)s->nsets, sizeof *s->sets);
    if (!s->sets) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- start-up ------------------------------------------------------------------ */

/* Every port we are to listen on must be free: our listeners use
 * SO_REUSEPORT, so a second server would otherwise share the port with a
 * running one and take part of its users, unnoticed. */
static int check_ports_free(sv_server *s, char *err, size_t errlen)
{
    for (int i = 0; i < s->nports; i++)
        if (hb_port_taken(&s->listen_addr, s->ports[i])) {
            snprintf(err, errlen,
                     "port %d on %s is in use by another process (another hb-server?): refusing to share it",
                     s->ports[i], s->cfg.listen);
            return -1;
        }
    return 0;
}

/* Whether replay stopped at damage rather than at a torn tail: intact
 * entries after the bad one, or a bad last entry that is whole (a crash
 * tears an entry short; a full-length entry whose CRC fails was written
 * whole, acknowledged perhaps, and damaged since). */
static bool damaged(const sv_replay_t *rp)
{
    return rp->intact_after || (rp->stop_reason && !rp->torn);
}

/* Lock the journal (one server per journal), replay it into the registry
 * and *rp, refuse a damaged journal (unless --journal-cut), then keep it
 * open for appending. */
static int load_journal(sv_server *s, int fd, sv_replay_t *rp, char *err, size_t errlen)
{
    const sv_config *c = &s->cfg;
    if (fd < 0 && ((fd = sv_journal_lock(c->journal, err, errlen)) < 0 || check_ports_free(s, err, errlen) < 0)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (sv_replay(&s->reg, c->journal, rp, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    if (rp->records)
        hb_log("journal %s: %llu records replayed: %llu+%llu packets made, %llu wins (%llu cents), %llu shares (%llu "
               "cents), %zu unwon packets dealt again%s%s",
               c->journal, (unsigned long long)rp->records, (unsigned long long)rp->shake_made,
               (unsigned long long)rp->send_made, (unsigned long long)rp->wins, (unsigned long long)rp->win_amount,
               (unsigned long long)rp->shares, (unsigned long long)rp->share_amount, rp->n_unwon,
               rp->stop_reason ? "; cut a " : "", rp->stop_reason ? rp->stop_reason : "");
    if (rp->anomalies)
        hb_log("journal %s: %llu inconsistent records ignored (see above)", c->journal,
               (unsigned long long)rp->anomalies);
    if (damaged(rp)) {
        /* Cutting here would drop durable grants, and their packets could
         * be paid again: not without being told. */
        if (!c->journal_cut) {
            if (rp->intact_after)
                snprintf(err, errlen,
                         "journal %s: the entry at byte %zu is damaged (%s) but intact entries follow (from byte "
                         "%zu): this is not a torn tail from a crash. Refusing to start; inspect it (hb-reconcile "
                         "--journal reads it), or start with --journal-cut to cut it at byte %zu and lose what follows",
                         c->journal, rp->valid, rp->stop_reason, rp->intact_after, rp->valid);
            else
                snprintf(err, errlen,
                         "journal %s: the last entry (byte %zu) is whole but damaged (%s): a crash tears an entry "
                         "short, it does not change a whole one, and that grant may have been answered. Refusing "
                         "to start; inspect it (hb-reconcile --journal reads it), or start with --journal-cut to "
                         "cut it at byte %zu",
                         c->journal, rp->valid, rp->stop_reason, rp->valid);
            close(fd);
            return -1;
        }
        hb_log("warning: --journal-cut: cutting %s at byte %zu; %zu bytes after the damage are dropped", c->journal,
               rp->valid, rp->size - rp->valid);
    }
    s->replayed_wins = rp->wins;
    s->replayed_win_amount = rp->win_amount;
    s->replayed_shares = rp->shares;
    s->replayed_share_amount = rp->share_amount;
    if (sv_journal_open(&s->journal, fd, c->journal, c->fsync, rp->valid, err, errlen) < 0)
        return -1;
    s->journal.batch_delay_us = c->journal_delay_us;
    s->journal.nice = (int)c->urgent_nice;
    s->journal.rt = (int)c->urgent_rt;
    return 0;
}

/* Cycles of `per` packets it takes to have made `made` (0 if per is 0). */
static int cycles_for(uint64_t made, int64_t per)
{
    return per > 0 ? (int)((made + (uint64_t)per - 1) / (uint64_t)per) : 0;
}

/* The producer continues where the journal ends: the cycles it began (from
 * their CYCLE records), the packets already made.  Money settings must be
 * those the journal's last cycle runs with: a restart with another --total
 * or amount range would make the rest of that cycle something the ledger
 * check rejects, so it is refused here, before anything is paid. */
static int resume_producer(sv_server *s, const sv_replay_t *rp, char *err, size_t errlen)
{
    int cycles = 1;
    bool first_record = false;
    if (rp->cycles) {
        Hb__Cycle flags;
        char why[160];
        sv_cycle_from_config(&s->cfg, rp->cycle.number, &flags);
        if (sv_cycle_money_differs(&rp->cycle, &flags, why, sizeof why)) {
            snprintf(err, errlen,
                     "journal %s: money settings differ from the run it holds: %s; restart with the journal's "
                     "settings or use a new journal",
                     s->cfg.journal, why);
            return -1;
        }
        cycles = (int)rp->cycles;
    } else if (rp->shake_made || rp->send_made) {
        /* A journal from before cycle records: count the cycles its packets need. */
        int a = cycles_for(rp->shake_made, s->cfg.total), b = cycles_for(rp->send_made, s->cfg.send_total);
        cycles = a > cycles ? a : cycles;
        cycles = b > cycles ? b : cycles;
        hb_log("warning: journal %s has no cycle records (an older server wrote it): the ledger check cannot check "
               "it against the run's settings",
               s->cfg.journal);
    } else {
        first_record = true;
    }
    if (sv_dealer_init(s, cycles, rp->shake_made, rp->send_made, first_record) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Packets created before a crash and never won go back into the queues;
 * what does not fit (a small --queue) is held by the producer and dealt
 * before anything new, as queues make room. */
static int deal_unwon(sv_server *s, const sv_replay_t *rp, char *err, size_t errlen)
{
    size_t i = 0;
    for (int k = 0, full = 0; i < rp->n_unwon && full < s->nsets; k = (k + 1) % s->nsets) {
        if (sv_pqueue_push(&s->sets[k]->q, &rp->unwon[i])) {
            i++;
            full = 0;
        } else {
            full++; /* the same packet tries the next SET */
        }
    }
    if (i < rp->n_unwon) {
        if (sv_producer_hold(&s->prod, rp->unwon + i, rp->n_unwon - i) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        hb_log("%zu unwon packets from the journal wait for room in the SET queues (--queue %lld)", rp->n_unwon - i,
               (long long)s->cfg.queue);
    }
    if (rp->n_unwon)
        atomic_store(&s->event_started, true);
    return 0;
}

/* Send-flow packets whose recipients had not all opened: tell them again;
 * they are offline now, so the notices wait for their login. */
static void renotify_unopened(sv_server *s)
{
    uint64_t n = 0;
    for (uint64_t k = 0; k < atomic_load(&s->reg.send_count); k++) {
        sv_sendpkt p;
        if (sv_registry_get_send(&s->reg, sv_registry_send_id(&s->reg, k), &p) && p.opened != (uint8_t)((1u << p.n) - 1)) {
            sv_dealer_notify(s, sv_registry_send_id(&s->reg, k), &p, p.opened);
            n++;
        }
    }
    if (n)
        hb_log("%llu send packets not fully opened: recipients notified again", (unsigned long long)n);
}

static void journal_notify(void *ctx, int set)
{
    sv_server *s = ctx;
    ev_async_send(s->sets[set]->loop, &s->sets[set]->wake);
}

/* The journal writer, the SETs and the producer, with every signal blocked
 * (they inherit the mask; main takes signals through libev). */
static int start_threads(sv_server *s, char *err, size_t errlen)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = -1;
    if (sv_journal_start(&s->journal, s->nsets, journal_notify, s) < 0) {
        snprintf(err, errlen, "cannot start the journal thread");
        goto out;
    }
    for (int i = 0; i < s->nsets; i++)
        if (sv_set_start(s->sets[i], err, errlen) < 0)
            goto out;
    renotify_unopened(s);
    if (sv_dealer_start(s) < 0) {
        snprintf(err, errlen, "cannot start the producer thread");
        goto out;
    }
    rc = 0;
out:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int sv_server_start(sv_server *s, char *err, size_t errlen)
{
    sv_replay_t rp = {0};
    int rc = -1;
    if (join_cluster(s, true, err, errlen) < 0)
        goto out;
    if (s->cfg.start_pause_ms)
        usleep((useconds_t)s->cfg.start_pause_ms * 1000);
    if (load_journal(s, -1, &rp, err, errlen) < 0)
        goto out;
    for (int i = 0; i < s->nsets; i++)
        if (sv_set_create(s, i, err, errlen) < 0)
            goto out;
    if (resume_producer(s, &rp, err, errlen) < 0)
        goto out;
    if (deal_unwon(s, &rp, err, errlen) < 0)
        goto out;
    rc = start_threads(s, err, errlen);
    if (rc == 0)
        sv_cluster_ready(s->cluster);
out:
    sv_replay_free(&rp);
    return rc;
}

/* ---- taking over from a running server (hot upgrade) ------------------------------ */

static Hb__Upgrade *takeover_expect(int fd, Hb__Upgrade__BodyCase kind, int ms, int *fds, int *nfds, const char *what,
                                    char *err, size_t errlen)
{
    char why[160];
    Hb__Upgrade *m = sv_up_recv(fd, ms, fds, nfds, why, sizeof why);
    if (m && m->body_case == HB__UPGRADE__BODY_REFUSED) {
        snprintf(err, errlen, "takeover refused by the running server: %s", m->refused->reason);
    } else if (m && m->body_case == kind) {
        return m;
    } else {
        snprintf(err, errlen, "takeover: waiting for %s: %s", what, m ? "another message" : why);
    }
    for (int i = 0; i < *nfds; i++)
        close(fds[i]);
    sv_up_free(m);
    return NULL;
}

/* The journal as the running server left it, and the producer's schedule
 * where it stopped; unwon packets dealt into our queues. */
static int takeover_state(sv_server *s, const Hb__UpgradeFrozen *f, int jfd, sv_replay_t *rp, char *err,
                          size_t errlen)
{
    s->up_peer = (pid_t)f->pid;
    s->cfg.journal = strdup(f->journal ? f->journal : "");
    if (!s->cfg.journal || load_journal(s, jfd, rp, err, errlen) < 0)
        return -1;
    for (int i = 0; i < s->nsets; i++)
        if (sv_set_create(s, i, err, errlen) < 0)
            return -1;
    if (resume_producer(s, rp, err, errlen) < 0)
        return -1;
    if (!f->shake || f->shake->made != rp->shake_made || !f->send || f->send->made != rp->send_made) {
        snprintf(err, errlen, "takeover: the running producer made other packets than its journal holds");
        return -1;
    }
    sv_up_restore_producer(s, f);
    return deal_unwon(s, rp, err, errlen);
}

/* SET threads that adopt the connections; they read once told to start. */
static int takeover_sets(sv_server *s, char *err, size_t errlen)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (int i = 0; i < s->nsets && rc == 0; i++)
        rc = sv_set_start(s->sets[i], err, errlen);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static int takeover_send(int fd, Hb__Upgrade__BodyCase kind, uint64_t conns)
{
    Hb__UpgradeDone d = HB__UPGRADE_DONE__INIT;
    d.conns = conns;
    Hb__Upgrade m = HB__UPGRADE__INIT;
    m.body_case = kind;
    if (kind == HB__UPGRADE__BODY_GO)
        m.go = &d;
    else
        m.ready = &d;
    return sv_up_send(fd, &m, NULL, 0);
}

/* Everything adopted and the old process let go: run. */
static int takeover_run(sv_server *s, char *err, size_t errlen)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = -1;
    if (sv_journal_start(&s->journal, s->nsets, journal_notify, s) < 0)
        snprintf(err, errlen, "cannot start the journal thread");
    else if (!sv_set_ctl_all(s, SV_CTL_START, 10000))
        snprintf(err, errlen, "a SET did not start");
    else if (renotify_unopened(s), sv_dealer_start(s) < 0)
        snprintf(err, errlen, "cannot start the producer thread");
    else
        rc = 0;
    if (rc == 0)
        sv_cluster_ready(s->cluster);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int sv_server_takeover(sv_server *s, char *err, size_t errlen)
{
    sv_replay_t rp = {0};
    int rc = -1, fds[SV_UP_MAX_FDS], nfds = 0;
    Hb__Upgrade *m = NULL;
    int fd = join_cluster(s, false, err, errlen) < 0 ? -1 : sv_up_connect(s, s->cfg.takeover, err, errlen);
    sv_cluster_stay(s->cluster, true); /* the old process is the node until we run */
    if (fd < 0)
        return -1;
    sv_up_die_at("hello");
    if (!(m = takeover_expect(fd, HB__UPGRADE__BODY_FROZEN, 30000, fds, &nfds, "the running server to freeze", err,
                              errlen)))
        goto out;
    if (nfds < 1 || nfds > 2) {
        snprintf(err, errlen, "takeover: the journal's descriptor did not come");
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        goto out;
    }
    if (nfds == 2)
        sv_cluster_live_adopt(s->cluster, fds[1]); /* the liveness listener (cluster.h) */
    int64_t frozen_at = m->frozen->frozen_mono_us;
    sv_up_die_at("frozen");
    if (takeover_state(s, m->frozen, fds[0], &rp, err, errlen) < 0 || takeover_sets(s, err, errlen) < 0)
        goto out;
    if (takeover_send(fd, HB__UPGRADE__BODY_GO, 0) < 0) {
        snprintf(err, errlen, "takeover: sending Go: %s", strerror(errno));
        goto out;
    }
    if (!sv_set_ctl_all(s, 0, 130000)) {
        snprintf(err, errlen, "takeover: a SET could not adopt its connections");
        goto out;
    }
    sv_up_free(m);
    if (!(m = takeover_expect(fd, HB__UPGRADE__BODY_ALL_SENT, 130000, fds, &nfds, "AllSent", err, errlen)))
        goto out;
    uint64_t n = sv_up_conns(s);
    sv_up_die_at("ready");
    if (n != m->all_sent->conns || takeover_send(fd, HB__UPGRADE__BODY_READY, n) < 0) {
        snprintf(err, errlen, "takeover: adopted %llu of %llu connections", (unsigned long long)n,
                 (unsigned long long)m->all_sent->conns);
        goto out;
    }
    sv_up_free(m);
    if (!(m = takeover_expect(fd, HB__UPGRADE__BODY_COMMIT, 30000, fds, &nfds, "Commit", err, errlen)))
        goto out;
    if ((rc = takeover_run(s, err, errlen)) == 0)
        sv_cluster_stay(s->cluster, false);
    if (rc == 0)
        hb_log("takeover: %llu connections, the listeners and the journal taken over from pid %d; reading again "
               "after a pause of %.1f ms",
               (unsigned long long)n, (int)s->up_peer, (double)(hb_mono_us() - frozen_at) / 1000.0);
out:
    sv_up_free(m);
    sv_replay_free(&rp);
    close(fd);
    return rc;
}

/* ---- shutdown ------------------------------------------------------------------ */

void sv_server_stop(sv_server *s)
{
    atomic_store(&s->stopping, true);
    sv_dealer_stop(s);
    for (int i = 0; i < s->nsets; i++)
        if (s->sets[i])
            sv_set_stop(s->sets[i]);
    sv_journal_close(&s->journal);
    sv_cluster_free(s->cluster); /* after the SETs: they read its member list */
    s->cluster = NULL; /* s->xmsg stays until sv_server_free: the final counters read it */
}

void sv_server_free(sv_server *s)
{
    for (int i = 0; s->sets && i < s->nsets; i++)
        sv_set_destroy(s->sets[i]);
    free(s->sets);
    s->sets = NULL;
    sv_producer_free(&s->prod);
    sv_dir_free(&s->dir);
    sv_registry_free(&s->reg);
    sv_addr_free(s->addrs);
    sv_cluster_free(s->cluster);
    s->cluster = NULL;
    sv_xmsg_free(s->xmsg);
    s->xmsg = NULL;
    hb_reporter_close(&s->reporter);
}
