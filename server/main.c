/* main.c -- hb-server: settings, start-up, signals, the once-a-second tick,
 * clean shutdown. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>
#include "conf.h"
#include "server.h"
#include "set.h"
#include "stats.h"
#include "upgrade.h"

static sv_server srv; /* settings from sv_server_defaults(), then the config file and flags */

static const hb_opt opts[] = {
    {"listen", HB_OPT_STR, &srv.cfg.listen, "ADDR", "IPv4 address to listen on (not 127.0.0.0/8: needs --secret or --insecure)", 0, 0},
    {"port", HB_OPT_STR, &srv.cfg.ports, "PORTS", "port, FIRST-LAST range or list; every SET listens on each (SO_REUSEPORT)", 0, 0},
    {"sets", HB_OPT_INT, &srv.cfg.sets, "N", "number of SETs (threads, each with its own loop, queue and fd table)", 1, 1024},
    {"max-conns", HB_OPT_INT, &srv.cfg.max_conns, "N", "connections per SET, 0 = what a descriptor table allows", 0, 10000000},
    {"users", HB_OPT_INT, &srv.cfg.users, "N", "uids are 0..N-1", 1, 4000000000.0},
    {"private-fds", HB_OPT_BOOL, &srv.cfg.private_fds, NULL, "give every SET its own descriptor table (unshare CLONE_FILES)", 0, 0},
    {"backlog", HB_OPT_INT, &srv.cfg.backlog, "N", "listen() backlog per listener", 1, 1000000},
    {"fastopen", HB_OPT_INT, &srv.cfg.fastopen, "N", "TCP Fast Open: take a client's Login from its SYN (a round trip's packet fewer per connect), at most N such connections per listener not yet accepted (0 = off); the kernel must allow it (net.ipv4.tcp_fastopen with bit 2: sysctl/server.conf)", 0, 1000000},
    {"sndbuf", HB_OPT_INT, &srv.cfg.sndbuf, "BYTES", "SO_SNDBUF of each connection (0 = the kernel's autotuning; caps kernel memory per idle connection)", 0, 1 << 26},
    {"io-collect-us", HB_OPT_INT, &srv.cfg.io_collect_us, "US", "after a loop turn that handled 2 or more connection events, a SET waits up to US before it polls again, to take more events per wake-up (libev io collect interval; 0 = always poll at once)", 0, 100000},
    {"pin-sets", HB_OPT_BOOL, &srv.cfg.pin_sets, NULL, "pin SET k to the (k mod n)-th of the n CPUs the server may use (its taskset or cpuset): the SETs' load is equal by hashing, so nothing is lost to balancing and no SET waits behind one CPU's backlog while the other idles (as nginx's worker_cpu_affinity)", 0, 0},
    {"urgent-rt", HB_OPT_INT, &srv.cfg.urgent_rt, "PRIO", "SCHED_FIFO priority of the producer and journal writer threads (1-99; 0 = none: they run at --urgent-nice): a real-time thread preempts the busy SETs the moment it wakes, so packets leave on the second even in overload; they sleep between short bursts. Without CAP_SYS_NICE the server logs it and uses --urgent-nice", 0, 99},
    {"urgent-nice", HB_OPT_INT, &srv.cfg.urgent_nice, "N", "nice value of the producer and journal writer threads, and of the cluster thread (its membership refresh must not miss the TTL) (-20..0; 0 = the process's own): they do little work but must run on time among hundreds of busy threads, or packets leave in bursts and wins wait for their commit", -20, 0},
    {"rate", HB_OPT_DOUBLE, &srv.cfg.rate, "N", "shake-flow packets produced per second", 0, 1e7},
    {"total", HB_OPT_INT, &srv.cfg.total, "N", "shake-flow packets to produce in all", 0, 1e12},
    {"amount-min", HB_OPT_INT, &srv.cfg.amount_min, "CENTS", "smallest shake-flow packet", 1, 1e9},
    {"amount-max", HB_OPT_INT, &srv.cfg.amount_max, "CENTS", "largest shake-flow packet", 1, 1e9},
    {"start-delay", HB_OPT_DOUBLE, &srv.cfg.start_delay, "SEC", "seconds before the event starts (shakes get NOT_YET)", 0, 86400},
    {"deal-every", HB_OPT_INT, &srv.cfg.deal_ms, "MS", "the producer wakes at the start of each MS slot of the wall clock's second and makes the packets due in that slot (at most MS early, never in an earlier second), so they share one journal commit: at 200/s and 50 ms, 20 commits a second instead of 200; MS must divide 1000 (0 = wake for each packet)", 0, 1000},
    {"queue", HB_OPT_INT, &srv.cfg.queue, "N", "packet queue capacity per SET", 1, 1 << 24},
    {"send-rate", HB_OPT_DOUBLE, &srv.cfg.send_rate, "N", "send-flow packets per second", 0, 1e6},
    {"send-total", HB_OPT_INT, &srv.cfg.send_total, "N", "send-flow packets in all (0 = no send flow)", 0, 1e9},
    {"send-split", HB_OPT_INT, &srv.cfg.send_split, "N", "recipients per send-flow packet", 1, 8},
    {"send-amount-min", HB_OPT_INT, &srv.cfg.send_amount_min, "CENTS", "smallest send-flow packet", 1, 1e9},
    {"send-amount-max", HB_OPT_INT, &srv.cfg.send_amount_max, "CENTS", "largest send-flow packet", 1, 1e9},
    {"send-concurrent", HB_OPT_BOOL, &srv.cfg.send_concurrent, NULL, "run the send flow alongside the shake flow, not after it", 0, 0},
    {"inbox", HB_OPT_INT, &srv.cfg.inbox, "N", "routed-message inbox capacity per SET", 2, 1 << 22},
    {"pending-max", HB_OPT_INT, &srv.cfg.pending_max, "N", "messages kept for offline users, all together", 0, 1e9},
    {"pending-per-uid", HB_OPT_INT, &srv.cfg.pending_per_uid, "N", "messages kept for one offline user", 0, 1024},
    {"journal", HB_OPT_STR, &srv.cfg.journal, "FILE", "grant journal (replayed at start)", 0, 0},
    {"fsync", HB_OPT_BOOL, &srv.cfg.fsync, NULL, "fdatasync each journal batch before replying", 0, 0},
    {"renotify", HB_OPT_DOUBLE, &srv.cfg.renotify, "SEC", "tell recipients who have not opened their share again after SEC, then after twice as long, ... up to a minute (0 = never)", 0, 3600},
    {"journal-delay", HB_OPT_INT, &srv.cfg.journal_delay_us, "US", "wait US before each journal write, so one commit takes what came meanwhile: fewer fdatasyncs and wake-ups for up to US more latency on wins and opens (0 = none; tests also use it to play a slow disk)", 0, 10000000},
    {"journal-cut", HB_OPT_BOOL, &srv.cfg.journal_cut, NULL, "start even if the journal is damaged before its end, cutting it there (loses what follows)", 0, 0},
    {"secret", HB_OPT_STR, &srv.cfg.secret_file, "FILE", "login tokens are HMAC-SHA256(secret, uid || expires), see hb-token; unset = no auth", 0, 0},
    {"insecure", HB_OPT_BOOL, &srv.cfg.insecure, NULL, "allow a non-loopback --listen without --secret: anyone who reaches the port logs in as any uid", 0, 0},
    {"login-timeout", HB_OPT_DOUBLE, &srv.cfg.login_timeout, "SEC", "close connections that do not log in within SEC", 0.1, 3600},
    {"frame-timeout", HB_OPT_DOUBLE, &srv.cfg.frame_timeout, "SEC", "close connections that leave a frame or output unfinished for SEC", 0.1, 3600},
    {"linger", HB_OPT_DOUBLE, &srv.cfg.linger, "SEC", "after an error, wait SEC for the peer to close", 0.1, 60},
    {"shake-limit", HB_OPT_INT, &srv.cfg.shake_limit, "N", "shakes per connection per second, 0 = unlimited", 0, 255},
    {"chat-limit", HB_OPT_INT, &srv.cfg.chat_limit, "N", "chat messages per uid per second, 0 = unlimited", 0, 255},
    {"addr-limit", HB_OPT_INT, &srv.cfg.addr_limit, "N", "connections per source address, 0 = unlimited", 0, 1e9},
    {"cluster", HB_OPT_STR, &srv.cfg.cluster, "redis://HOST:PORT", "join the cluster whose membership this Redis keeps (needs --node, --node-index, --nodes)", 0, 0},
    {"node", HB_OPT_STR, &srv.cfg.node, "NAME", "this node's name in the cluster", 0, 0},
    {"node-index", HB_OPT_INT, &srv.cfg.node_index, "I", "this node's number, 0..N-1: its share of --total/--send-total/rates and its packet id band", 0, 98},
    {"nodes", HB_OPT_INT, &srv.cfg.nodes, "N", "nodes the cluster's money is split over (node i gets T/N, +1 if i < T%N)", 0, 99},
    {"advertise", HB_OPT_STR, &srv.cfg.advertise, "HOST:PORT", "where other nodes redirect this node's users (default: --listen, or 127.0.0.1, and the first port)", 0, 0},
    {"weight", HB_OPT_DOUBLE, &srv.cfg.weight, "W", "this node's share of the users relative to the others (rendezvous weight)", 0.001, 1000},
    {"redis-password-file", HB_OPT_STR, &srv.cfg.redis_password_file, "FILE", "the Redis password (first line of FILE)", 0, 0},
    {"cluster-ttl", HB_OPT_INT, &srv.cfg.cluster_ttl_ms, "MS", "a node that has not refreshed its membership for MS has left", 1500, 60000},
    {"live-port", HB_OPT_INT, &srv.cfg.live_port, "PORT", "cluster: the other nodes hold a connection to this port to learn at once when this process is gone, rather than when its registration expires (0 = a free port the kernel picks, in the registration; -1 = none)", -1, 65535},
    {"flap-hold", HB_OPT_INT, &srv.cfg.flap_hold_ms, "MS", "a member that leaves within 60 s of coming back is flapping: the standbys of its users are promoted only once it has stayed away MS (0 = at once); if it is back sooner, nothing moves", 0, 600000},
    {"rehome-rate", HB_OPT_INT, &srv.cfg.rehome_rate, "N", "after a membership change, send any one node at most N redirected sessions per second, cluster-wide (each of the other nodes sends its share)", 1, 1000000},
    {"start-pause", HB_OPT_INT, &srv.cfg.start_pause_ms, "MS", "testing: pause MS between joining the cluster and replaying the journal (plays a slow start-up on a saturated box)", 0, 60000},
    {"cluster-pin", HB_OPT_STR, &srv.cfg.cluster_pin, "NAME", "testing: believe NAME is the only member (plays a node with a stale member list)", 0, 0},
    {"monitor", HB_OPT_STR, &srv.cfg.monitor, "HOST:PORT", "send counters to hb-monitor (UDP) every second", 0, 0},
    {"instance", HB_OPT_STR, &srv.cfg.instance, "NAME", "name in monitor reports", 0, 0},
    {"stats-file", HB_OPT_STR, &srv.cfg.stats_file, "FILE", "write all counters to FILE every second and at exit", 0, 0},
    {"stats-every", HB_OPT_INT, &srv.cfg.stats_every_ms, "MS", "rewrite the stats file this often (reports stay 1/s)", 50, 60000},
    {"progress", HB_OPT_BOOL, &srv.cfg.progress, NULL, "print one line of figures per second", 0, 0},
    {"upgrade-socket", HB_OPT_STR, &srv.cfg.upgrade_socket, "PATH", "listen on this Unix socket (mode 0600) for a new hb-server to take everything over (hot upgrade)", 0, 0},
    {"takeover", HB_OPT_STR, &srv.cfg.takeover, "PATH", "take over the connections, listeners and journal of the hb-server listening on PATH (--upgrade-socket), then serve them", 0, 0},
    {"seed", HB_OPT_INT, &srv.cfg.seed, "N", "random seed (0 = from the clock)", 0, 9e18},
    {NULL, 0, NULL, NULL, NULL, 0, 0},
};

static const hb_cli cli = {
    .synopsis = "hb-server [OPTIONS]",
    .description =
        "The hongbao red-packet server: holds many long-lived TCP connections in SETs (one thread, libev loop,\n"
        "packet queue and descriptor table each), hands out shake-flow packets at a fixed rate, runs the\n"
        "send-packet flow, and journals every grant before replying.  SIGINT/SIGTERM stop it cleanly;\n"
        "SIGUSR1 starts another producer cycle (--total more shake-flow packets, then --send-total more\n"
        "send-flow packets), as the seed's stages do.",
    .epilog = "Example:\n  hb-server --port 7000-7003 --sets 8 --users 20000 --rate 200 --total 4000 \\\n"
              "            --send-total 1000 --journal run.journal --stats-file run.stats --progress",
    .opts = opts,
};

static void on_cycle(struct ev_loop *loop, ev_signal *w, int revents)
{
    int n = atomic_fetch_add(&srv.cycles_requested, 1) + 1;
    hb_log("SIGUSR1: producer cycle %d requested", n);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    hb_log("signal %d: stopping", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

static ev_timer tick, stats_timer;
static ev_io upgrade_io;

/* A new process asks to take over: the whole handover runs here. */
static void on_upgrade(struct ev_loop *loop, ev_io *w, int revents)
{
    if (sv_upgrade_serve(&srv))
        ev_break(loop, EVBREAK_ALL); /* it has everything: exit */
}

static void on_stats(struct ev_loop *loop, ev_timer *w, int revents)
{
    sv_totals t;
    sv_stats_sum(&srv, &t);
    sv_stats_write(&srv, &t, srv.cfg.stats_file, false);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    int64_t now = hb_now_us();
    sv_stats_tick(&srv, now / 1000000);
    /* Next tick just after the next second boundary, so reports line up
     * with the clients' seconds. */
    w->repeat = (double)(1000000 - now % 1000000) / 1e6 + 0.001;
    ev_timer_again(loop, w);
}

int main(int argc, char **argv)
{
    hb_prog = "hb-server";
    sv_server_defaults(&srv.cfg);
    int first = hb_cli_parse(&cli, argc, argv);
    if (first < argc) {
        fprintf(stderr, "hb-server: unexpected argument '%s'\nhb-server: see 'hb-server --help'\n", argv[first]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    if (sv_server_init(&srv, err, sizeof err) < 0 ||
        (srv.cfg.takeover ? sv_server_takeover(&srv, err, sizeof err) : sv_server_start(&srv, err, sizeof err)) < 0 ||
        (srv.cfg.upgrade_socket && sv_upgrade_listen(&srv, err, sizeof err) < 0)) {
        hb_log("%s", err);
        return 1;
    }
    hb_log("listening on %s port %s with %d SETs (%s descriptor tables, %lld connections each), %lld users; "
           "shake flow %g/s x %lld, send flow %g/s x %lld split %lld; journal %s%s",
           srv.cfg.listen, srv.cfg.ports, srv.nsets, srv.sets[0]->unshared ? "private" : "one shared",
           (long long)srv.cfg.max_conns, (long long)srv.cfg.users, srv.cfg.rate, (long long)srv.cfg.total,
           srv.cfg.send_rate, (long long)srv.cfg.send_total, (long long)srv.cfg.send_split, srv.cfg.journal,
           srv.cfg.fsync ? "" : " (no fsync)");

    struct ev_loop *loop = EV_DEFAULT;
    ev_signal sint, sterm, susr1;
    ev_signal_init(&sint, on_signal, SIGINT);
    ev_signal_init(&sterm, on_signal, SIGTERM);
    ev_signal_init(&susr1, on_cycle, SIGUSR1);
    ev_signal_start(loop, &sint);
    ev_signal_start(loop, &sterm);
    ev_signal_start(loop, &susr1);
    if (srv.up_lfd >= 0) {
        ev_io_init(&upgrade_io, on_upgrade, srv.up_lfd, EV_READ);
        ev_io_start(loop, &upgrade_io);
    }
    ev_init(&tick, on_tick);
    tick.repeat = 1.0;
    ev_timer_again(loop, &tick);
    if (srv.cfg.stats_file && srv.cfg.stats_every_ms != 1000) {
        double every = (double)srv.cfg.stats_every_ms / 1000.0;
        ev_timer_init(&stats_timer, on_stats, every, every);
        ev_timer_start(loop, &stats_timer);
    }
    ev_run(loop, 0);

    sv_upgrade_unlisten(&srv);
    sv_server_stop(&srv);
    sv_stats_final_report(&srv);
    sv_stats_summary(&srv);
    sv_server_free(&srv);
    return 0;
}
