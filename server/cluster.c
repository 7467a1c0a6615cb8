/* cluster.c -- membership in Redis, on its own thread (see cluster.h). */
#include "cluster.h"

#include "liveness.h"
#include "redis.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libev.h>

#define KEY_ALIVE "hb:cluster:alive" /* sorted set: name -> expiry (ms, Redis clock) */
#define KEY_INFO "hb:cluster:info"   /* hash: name -> "HOST PORT WEIGHT INDEX LIVEPORT[ starting]" */
#define STARTING " starting"          /* a description's tail while the node starts: alive, not listed */

/* Whether description d (n bytes) carries the STARTING tail. */
static bool is_starting(const char *d, size_t n)
{
    return n >= sizeof STARTING - 1 && !memcmp(d + n - (sizeof STARTING - 1), STARTING, sizeof STARTING - 1);
}
#define KEY_LAST "hb:cluster:last"   /* string: when the script last ran (ms, Redis clock) */

/* KEYS: alive, info, last.  ARGV: name, ttl ms, description ("" = leave),
 * mode ("join" at start-up, else ""), then pairs NAME LIVEPORT of members
 * proven gone (liveness.h): each is removed if still registered with that
 * liveness port (a restart since registered another one and stays).
 * Refresh (or remove) this node, forget expired members, return the live
 * ones as name, description, name, description, ...  Redis 7 replicates a
 * script by its effects, so TIME may come before writes.
 * On "join", a live member (expiry still ahead) of this name with another
 * description is another node: nothing is written and the reply is the
 * error "HBTAKEN <ms until its expiry> <its description>" (descriptions
 * compared by HOST PORT WEIGHT INDEX: a new process has a new liveness
 * port, and a starting one carries the mark).  Checked and
 * registered in one script, so two nodes starting with one name at the same
 * moment cannot both pass the check, and the first node's registration is
 * never overwritten.  The same description is a restart of this node
 * (its registration not yet expired): accepted at once.
 * Expiry counts only time in which Redis served refreshes: every node runs
 * the script once a second, so a gap of over STALL_MS since its last run
 * (by any node) means nobody could refresh (Redis stopped, starved or
 * restarted, or every node stalled); every stamp is pushed back by the gap
 * beyond a second before anyone is dropped.  Without that, the first node
 * to get through after a stall of over the TTL saw itself alone, and every
 * node dropped and took back everyone else's users (the 1M cluster runs'
 * flaps: Redis "no reply within a second"). */
#define STALL_MS "1500"

static const char CLUSTER_SCRIPT[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local last = tonumber(redis.call('GET', KEYS[3]))\n"
    "if last and now - last > " STALL_MS " then\n"
    "  local gap = now - last - 1000\n"
    "  local all = redis.call('ZRANGE', KEYS[1], 0, -1)\n"
    "  for _, n in ipairs(all) do redis.call('ZINCRBY', KEYS[1], gap, n) end\n"
    "end\n"
    "redis.call('SET', KEYS[3], now)\n"
    "if ARGV[4] == 'join' then\n"
    "  local exp = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))\n"
    "  local had = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "  local function base(d) return string.match(d, '^%S+ %S+ %S+ %S+') or d end\n"
    "  if exp and exp > now and had and base(had) ~= base(ARGV[3]) then\n"
    "    return redis.error_reply(string.format('HBTAKEN %d %s', exp - now, had))\n"
    "  end\n"
    "end\n"
    "for i = 5, #ARGV - 1, 2 do\n"
    "  local had = redis.call('HGET', KEYS[2], ARGV[i])\n"
    "  if had and string.match(had, '^%S+ %S+ %S+ %S+ (%d+)') == ARGV[i + 1] then\n"
    "    redis.call('ZREM', KEYS[1], ARGV[i]); redis.call('HDEL', KEYS[2], ARGV[i])\n"
    "  end\n"
    "end\n"
    "if ARGV[3] == '' then\n"
    "  redis.call('ZREM', KEYS[1], ARGV[1]); redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "else\n"
    "  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])\n"
    "  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n"
    "end\n"
    "for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do redis.call('HDEL', KEYS[2], n) end\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "local out = {}\n"
    "for _, n in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n"
    "  out[#out + 1] = n; out[#out + 1] = redis.call('HGET', KEYS[2], n) or ''\n"
    "end\n"
    "return out\n";

typedef struct retired {
    sv_members *p;
    int64_t at; /* monotonic us when it was replaced */
} retired;

struct sv_cluster {
    sv_cluster_opts o;
    char host[256];
    int port;
    char desc[256]; /* this node's description in KEY_INFO */
    char ttl[16];
    char password[512]; /* o.password points here (the caller's copy may go) */

    _Atomic(sv_members *) cur;
    retired old[64];
    size_t nold;

    pthread_t th;
    bool running;
    bool stay; /* handed over (hot upgrade): the new process keeps our membership */
    struct ev_loop *loop;
    ev_timer tick;
    ev_async stop;
    ev_async ready; /* sv_cluster_ready: run hook_start on this loop */
    bool hooked;    /* hook_start ran (so hook_stop must) */
    redisAsyncContext *ac;
    bool in_flight;  /* a refresh is waiting for its reply */
    bool down;       /* Redis is unreachable (logged once) */
    uint64_t down_attempts;

    _Atomic uint64_t refreshes, reconnects, redis_errors, flaps;

    /* Members proven gone (liveness.h), removed from Redis with the next
     * refresh; the first nevict_sent of them went with the one in flight. */
    _Atomic(sv_live *) live; /* set on this thread at ready when taken over (the stats read it) */
    _Atomic int adopt_fd;     /* a taken-over liveness listener, until ready adopts it; -1 */
    char adv_host[128];       /* the description's parts (desc_set) */
    int adv_port;
    struct evict {
        char name[SV_CLUSTER_NAME_MAX];
        char port[8];
    } evict[SV_CLUSTER_MAX];
    size_t nevict, nevict_sent;
    _Atomic bool up;

    /* Every member seen since start (flap_note): whether it is in the
     * current list, when it last came back after a leave, when it last left
     * and whether that leave was a flap.  Present members are at most
     * SV_CLUSTER_MAX, so an absent entry can always make room. */
    struct seen {
        char name[SV_CLUSTER_NAME_MAX];
        int64_t back_at, left_at; /* monotonic us; back_at 0: never came back (first join only) */
        bool present, flapped;
    } seen[2 * SV_CLUSTER_MAX];
    size_t nseen;

    void (*hook_start)(void *, struct ev_loop *);
    void (*hook_stop)(void *);
    void *hook_arg;
};

void sv_cluster_set_hooks(sv_cluster *c, void (*start)(void *arg, struct ev_loop *loop), void (*stop)(void *arg),
                          void *arg)
{
    c->hook_start = start;
    c->hook_stop = stop;
    c->hook_arg = arg;
}

void sv_cluster_redis_addr(const sv_cluster *c, const char **host, int *port, const char **password)
{
    *host = c->host;
    *port = c->port;
    *password = c->o.password;
}

/* ---- snapshots -------------------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const sv_member *)a)->name, ((const sv_member *)b)->name);
}


/* The list as clients get it (ms->wire, ms->tag): every member's key,
 * weight, IPv4 address, port and band, with a tag hashed from them all.
 * Not sent (tag 0) if a host is not an IPv4 address or the largest frame
 * that carries the list would not fit HB_FRAME_DOWN_MAX (the bound on what a
 * node sends a client; a 64-member list always fits, proto/frame.h): clients
 * then follow Redirects as without a list. */
static void wire_members(sv_members *ms)
{
    Hb__Members *w = &ms->wire;
    hb__members__init(w);
    ms->tag = 0;
    if (!ms->n)
        return;
    uint64_t h = 0x6a09e667f3bcc908ULL;
    bool all_one = true;
    for (size_t i = 0; i < ms->n; i++) {
        struct in_addr a;
        if (inet_pton(AF_INET, ms->m[i].host, &a) != 1)
            return;
        ms->w_key[i] = ms->place[i].key;
        ms->w_weight[i] = ms->place[i].weight;
        ms->w_addr[i] = ntohl(a.s_addr);
        ms->w_port[i] = ms->m[i].port;
        ms->w_band[i] = ms->m[i].index >= 0 ? (uint32_t)ms->m[i].index + 1 : 0;
        all_one = all_one && ms->w_weight[i] == 1.0;
        uint64_t wb;
        memcpy(&wb, &ms->w_weight[i], sizeof wb);
        h = hb_mix64(h ^ ms->w_key[i]);
        h = hb_mix64(h ^ wb);
        h = hb_mix64(h ^ ((uint64_t)ms->w_addr[i] << 32 | ms->w_port[i] << 16 | (ms->w_band[i] & 0xffff)));
    }
    w->n_key = w->n_addr = w->n_port = w->n_band = ms->n;
    w->key = ms->w_key;
    w->addr = ms->w_addr;
    w->port = ms->w_port;
    w->band = ms->w_band;
    w->n_weight = all_one ? 0 : ms->n;
    w->weight = ms->w_weight;
    w->tag = h ? h : 1;
    /* The largest frames that carry it: a Redirect naming a 63-byte host
     * and a LoginOk, every number at its widest. */
    char host[64];
    memset(host, '9', 63);
    host[63] = 0;
    Hb__Redirect r = HB__REDIRECT__INIT;
    r.host = host;
    r.port = 65535;
    r.uid = UINT32_MAX;
    r.members = w;
    Hb__LoginOk ok = HB__LOGIN_OK__INIT;
    ok.uid = ok.set = ok.node = UINT32_MAX;
    ok.server_time_us = INT64_MIN;
    ok.members = w;
    Hb__Frame fr = HB__FRAME__INIT, fo = HB__FRAME__INIT;
    fr.body_case = HB__FRAME__BODY_REDIRECT;
    fr.redirect = &r;
    fo.body_case = HB__FRAME__BODY_LOGIN_OK;
    fo.login_ok = &ok;
    if (protobuf_c_message_get_packed_size(&fr.base) > HB_FRAME_DOWN_MAX ||
        protobuf_c_message_get_packed_size(&fo.base) > HB_FRAME_DOWN_MAX)
        return; /* too many members for one frame */
    ms->tag = w->tag;
}

/* The script's reply -> a new list (not yet published); NULL if malformed. */
static sv_members *parse_members(sv_cluster *c, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return NULL;
    sv_members *ms = calloc(1, sizeof *ms);
    if (!ms)
        return NULL;
    double w[SV_CLUSTER_MAX];
    for (size_t i = 0; i + 1 < r->elements && ms->n < SV_CLUSTER_MAX; i += 2) {
        const redisReply *name = r->element[i], *d = r->element[i + 1];
        if (name->type != REDIS_REPLY_STRING || d->type != REDIS_REPLY_STRING || name->len >= SV_CLUSTER_NAME_MAX)
            continue;
        if (c->o.pin && strcmp(name->str, c->o.pin) != 0)
            continue; /* test hook: the pinned member alone */
        if (is_starting(d->str, d->len))
            continue; /* alive, still starting: nobody's users go there yet */
        sv_member m = {.index = -1};
        memcpy(m.name, name->str, name->len);
        unsigned port = 0, live_port = 0;
        double weight = 0;
        if (sscanf(d->str, "%63s %u %lf %d %u", m.host, &port, &weight, &m.index, &live_port) < 3 || !port ||
            port > 65535 || !(weight > 0))
            continue;
        m.port = (uint16_t)port;
        m.live_port = live_port <= 65535 ? (uint16_t)live_port : 0;
        w[ms->n] = weight;
        ms->m[ms->n++] = m;
    }
    /* Sorted by name (the order does not change placement, but it makes two
     * lists comparable); weights travel with their members. */
    for (size_t i = 1; i < ms->n; i++)
        for (size_t j = i; j > 0 && by_name(&ms->m[j - 1], &ms->m[j]) > 0; j--) {
            sv_member t = ms->m[j];
            ms->m[j] = ms->m[j - 1];
            ms->m[j - 1] = t;
            double tw = w[j];
            w[j] = w[j - 1];
            w[j - 1] = tw;
        }
    ms->self = -1;
    for (size_t i = 0; i < ms->n; i++) {
        ms->place[i] = (hb_place_member){hb_place_key(ms->m[i].name), w[i]};
        if (!strcmp(ms->m[i].name, c->o.name))
            ms->self = (int)i;
    }
    wire_members(ms);
    return ms;
}

static bool same_members(const sv_members *a, const sv_members *b)
{
    if (a->n != b->n || a->self != b->self)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->m[i].name, b->m[i].name) || strcmp(a->m[i].host, b->m[i].host) || a->m[i].port != b->m[i].port ||
            a->m[i].index != b->m[i].index || a->place[i].weight != b->place[i].weight)
            return false;
    return true;
}

/* Free the snapshots replaced more than a grace period ago (all if `all`). */
static void reclaim(sv_cluster *c, bool all)
{
    int64_t now = hb_mono_us();
    size_t k = 0;
    for (size_t i = 0; i < c->nold; i++) {
        if (all || now - c->old[i].at >= SV_CLUSTER_GRACE_US)
            free(c->old[i].p);
        else
            c->old[k++] = c->old[i];
    }
    c->nold = k;
}

static void log_members(const char *why, const sv_members *ms)
{
    char line[1024];
    size_t off = 0;
    for (size_t i = 0; i < ms->n && off < sizeof line - 1; i++)
        off += (size_t)snprintf(line + off, sizeof line - off, "%s%s=%s:%u", i ? " " : "", ms->m[i].name,
                                ms->m[i].host, ms->m[i].port);
    line[off < sizeof line ? off : sizeof line - 1] = 0;
    hb_log("cluster: %s generation %llu, %zu member%s: %s; %s %016llx", why, (unsigned long long)ms->gen, ms->n,
           ms->n == 1 ? "" : "s", ms->n ? line : "(none)",
           ms->tag ? "clients get it as tag" : "not sent to clients (a host not IPv4, or too long a list)",
           (unsigned long long)ms->tag);
}

static struct seen *seen_find(sv_cluster *c, const char *name)
{
    for (size_t i = 0; i < c->nseen; i++)
        if (!strcmp(c->seen[i].name, name))
            return &c->seen[i];
    return NULL;
}

/* A slot for a name not seen before: a free one, else the absent member
 * that left longest ago. */
static struct seen *seen_add(sv_cluster *c, const char *name)
{
    struct seen *e = NULL;
    if (c->nseen < HB_ARRAY_LEN(c->seen))
        e = &c->seen[c->nseen++];
    else
        for (size_t i = 0; i < c->nseen; i++)
            if (!c->seen[i].present && (!e || c->seen[i].left_at < e->left_at))
                e = &c->seen[i];
    *e = (struct seen){0};
    snprintf(e->name, sizeof e->name, "%s", name);
    return e;
}

static bool listed(const sv_members *ms, const char *name)
{
    for (size_t i = 0; i < ms->n; i++)
        if (!strcmp(ms->m[i].name, name))
            return true;
    return false;
}

/* ms is about to replace the current list: note who came back and who
 * left, and hold standby promotions back while a flapping member is away
 * less than --flap-hold (cluster.h, "Flapping"). */
static void flap_note(sv_cluster *c, sv_members *ms)
{
    int64_t now = hb_mono_us();
    for (size_t i = 0; i < ms->n; i++) {
        struct seen *e = seen_find(c, ms->m[i].name);
        if (!e)
            e = seen_add(c, ms->m[i].name); /* a first join: no return */
        else if (!e->present)
            e->back_at = now;
        e->present = true;
    }
    ms->promote_at = 0;
    for (size_t i = 0; i < c->nseen; i++) {
        struct seen *e = &c->seen[i];
        if (e->present && !listed(ms, e->name)) {
            e->present = false;
            e->left_at = now;
            e->flapped = e->back_at && now - e->back_at < SV_FLAP_WINDOW_US;
            if (e->flapped) {
                atomic_fetch_add(&c->flaps, 1);
                hb_log("cluster: %s left %.1f s after it came back: flapping; its users' standbys are promoted "
                       "only if it stays away %d ms (--flap-hold)",
                       e->name, (double)(now - e->back_at) / 1e6, c->o.flap_hold_ms);
            }
        }
        int64_t until = e->left_at + (int64_t)c->o.flap_hold_ms * 1000;
        if (!e->present && e->flapped && c->o.flap_hold_ms > 0 && until > now && until > ms->promote_at)
            ms->promote_at = until;
    }
}

/* Publish ms if it differs from the current list (takes ownership). */
static void publish(sv_cluster *c, sv_members *ms)
{
    sv_members *cur = atomic_load_explicit(&c->cur, memory_order_relaxed);
    if (cur && same_members(cur, ms)) {
        free(ms);
        return;
    }
    ms->gen = cur ? cur->gen + 1 : 1;
    flap_note(c, ms);
    atomic_store_explicit(&c->cur, ms, memory_order_release);
    log_members(cur ? "members changed:" : "joined:", ms);
    if (cur) {
        reclaim(c, false);
        if (c->nold == HB_ARRAY_LEN(c->old)) { /* 64 changes within a grace period: free the oldest */
            free(c->old[0].p);
            memmove(c->old, c->old + 1, (c->nold - 1) * sizeof *c->old);
            c->nold--;
        }
        c->old[c->nold++] = (retired){cur, hb_mono_us()};
    }
}

const sv_members *sv_cluster_members(sv_cluster *c)
{
    return atomic_load_explicit(&c->cur, memory_order_acquire);
}

const sv_member *sv_members_other_owner(const sv_members *ms, uint32_t uid)
{
    if (!ms || !ms->n)
        return NULL;
    int o = hb_place_owner(uid, ms->place, ms->n);
    return o < 0 || o == ms->self ? NULL : &ms->m[o];
}

/* ---- start-up: synchronous, so every failure is an error before serving ------------------ */

/* EVAL CLUSTER_SCRIPT 3 alive info last NAME TTL DESC MODE (DESC "" = leave;
 * MODE "join" = refuse a name a live member holds with another DESC) */
#define SCRIPT_ARGC 10
#define SCRIPT_ARGV_MAX (SCRIPT_ARGC + 2 * SV_CLUSTER_MAX) /* with every eviction pending */
static int script_argv(sv_cluster *c, const char *argv[SCRIPT_ARGV_MAX], size_t len[SCRIPT_ARGV_MAX], bool leave,
                       bool join)
{
    const char *a[SCRIPT_ARGC] = {"EVAL",    CLUSTER_SCRIPT, "3", KEY_ALIVE, KEY_INFO, KEY_LAST, c->o.name,
                                  c->ttl,    leave ? "" : c->desc, join ? "join" : ""};
    int n = 0;
    for (; n < SCRIPT_ARGC; n++)
        argv[n] = a[n];
    for (size_t i = 0; i < c->nevict; i++) {
        argv[n++] = c->evict[i].name;
        argv[n++] = c->evict[i].port;
    }
    for (int i = 0; i < n; i++)
        len[i] = strlen(argv[i]);
    return n;
}

static redisReply *run_script(redisContext *rc, sv_cluster *c, bool leave, bool join)
{
    const char *argv[SCRIPT_ARGV_MAX];
    size_t len[SCRIPT_ARGV_MAX];
    int n = script_argv(c, argv, len, leave, join);
    return redisCommandArgv(rc, n, argv, len);
}

/* "HOST PORT WEIGHT INDEX" (a description in KEY_INFO) -> "HOST:PORT,
 * weight W, index I" for a message. */
static void say_desc(const char *d, char *out, size_t outlen)
{
    char host[128] = "?";
    unsigned port = 0;
    double weight = 0;
    int index = -1;
    sscanf(d, "%127s %u %lf %d", host, &port, &weight, &index);
    snprintf(out, outlen, "%s:%u, weight %g, --node-index %d", host, port, weight, index);
}

/* The script's "HBTAKEN <ms> <description>" -> a start-up error naming the
 * other node; false if r is not that. */
static bool name_taken(sv_cluster *c, const redisReply *r, char *err, size_t errlen)
{
    long long ms;
    int at = 0;
    if (!r || r->type != REDIS_REPLY_ERROR || sscanf(r->str, "HBTAKEN %lld %n", &ms, &at) != 1 || !at)
        return false;
    char theirs[200], ours[200];
    say_desc(r->str + at, theirs, sizeof theirs);
    say_desc(c->desc, ours, sizeof ours);
    snprintf(err, errlen,
             "cluster: --node '%s' is taken by a live member at %s (this node: %s); its registration expires "
             "in %.1f s unless that node refreshes it (every second): stop it, or choose another --node",
             c->o.name, theirs, ours, (double)ms / 1000);
    return true;
}

static void live_gone(void *arg, const char *name, unsigned live_port);

/* This node's description: "HOST PORT WEIGHT INDEX LIVEPORT[ starting]". */
static void desc_set(sv_cluster *c, unsigned live_port, bool starting)
{
    snprintf(c->desc, sizeof c->desc, "%.127s %d %.17g %d %u%s", c->adv_host, c->adv_port, c->o.weight, c->o.index,
             live_port, starting ? STARTING : "");
}

sv_cluster *sv_cluster_new(const sv_cluster_opts *o, char *err, size_t errlen)
{
    sv_cluster *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->o = *o;
    c->adopt_fd = -1;
    if (o->password) {
        snprintf(c->password, sizeof c->password, "%s", o->password);
        c->o.password = c->password;
    }
    c->o.url = c->o.advertise = NULL; /* used here only */
    hb_redis_addr ra, adv; /* lib/redis.c: the URL convention the fleet shares */
    if (hb_redis_parse_url(o->url, &ra) < 0) {
        snprintf(err, errlen, "--cluster '%s': expected redis://HOST:PORT", o->url);
        free(c);
        return NULL;
    }
    snprintf(c->host, sizeof c->host, "%s", ra.host);
    c->port = ra.port;
    if (hb_redis_parse_url(o->advertise, &adv) < 0) {
        snprintf(err, errlen, "--advertise '%s': expected HOST:PORT", o->advertise);
        free(c);
        return NULL;
    }
    char lerr[256];
    const char *lbind = o->live_bind && strcmp(o->live_bind, "0.0.0.0") ? o->live_bind : NULL;
    sv_live *live = o->live_port >= 0 ? sv_live_new(lbind, o->live_port, live_gone, c, lerr, sizeof lerr) : NULL;
    atomic_store(&c->live, live);
    if (!live && o->live_port >= 0)
        hb_log("cluster: no liveness port (%s): the other nodes will drop this one only when its registration "
               "expires", lerr);
    snprintf(c->adv_host, sizeof c->adv_host, "%.127s", adv.host);
    c->adv_port = adv.port;
    desc_set(c, sv_live_port(live), o->starting);
    snprintf(c->ttl, sizeof c->ttl, "%d", o->ttl_ms);

    struct timeval tv = {2, 0};
    redisContext *rc = redisConnectWithTimeout(c->host, c->port, tv);
    if (!rc || rc->err) {
        snprintf(err, errlen, "cluster: cannot reach Redis at %s:%d: %s", c->host, c->port,
                 rc ? rc->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(rc, tv);
    redisReply *r;
    if (o->password) {
        r = redisCommand(rc, "AUTH %s", o->password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "cluster: Redis at %s:%d refused the password (--redis-password-file): %s", c->host,
                     c->port, r ? r->str : rc->errstr);
            if (r)
                freeReplyObject(r);
            goto fail;
        }
        freeReplyObject(r);
    }
    r = run_script(rc, c, false, true);
    if (name_taken(c, r, err, errlen)) {
        freeReplyObject(r);
        goto fail;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        bool noauth = r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOAUTH", 6);
        snprintf(err, errlen, "cluster: Redis at %s:%d: %s%s", c->host, c->port,
                 r && r->type == REDIS_REPLY_ERROR ? r->str : rc->errstr,
                 noauth ? " (it needs a password: --redis-password-file)" : "");
        if (r)
            freeReplyObject(r);
        goto fail;
    }
    sv_members *ms = parse_members(c, r);
    freeReplyObject(r);
    redisFree(rc);
    rc = NULL;
    if (!ms) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    publish(c, ms);
    atomic_store(&c->up, true);
    return c;
fail:
    if (rc)
        redisFree(rc);
    sv_live_free(c->live);
    free(c);
    return NULL;
}

/* ---- the Redis thread ------------------------------------------------------------ */

static void connect_async(sv_cluster *c);

static void went_down(sv_cluster *c, const char *why)
{
    atomic_store(&c->up, false);
    if (!c->down) {
        const sv_members *ms = sv_cluster_members(c);
        hb_log("cluster: Redis at %s:%d unreachable (%s): serving on with the member list of generation %llu, no "
               "membership change until it is back",
               c->host, c->port, why, (unsigned long long)ms->gen);
        c->down = true;
        c->down_attempts = 0;
    }
}

static void refresh(sv_cluster *c);

static void on_refresh(redisAsyncContext *ac, void *reply, void *priv)
{
    sv_cluster *c = ac->data;
    redisReply *r = reply;
    size_t sent = c->nevict_sent;
    c->in_flight = false;
    c->nevict_sent = 0;
    if (!r)
        return; /* disconnected: on_disconnect says so */
    if (r->type != REDIS_REPLY_ARRAY) {
        atomic_fetch_add(&c->redis_errors, 1);
        if (!c->down)
            hb_log("cluster: refresh refused by Redis: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        went_down(c, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return;
    }
    atomic_fetch_add(&c->refreshes, 1);
    if (c->down) {
        hb_log("cluster: Redis at %s:%d is back after %llu reconnect attempts", c->host, c->port,
               (unsigned long long)c->down_attempts);
        c->down = false;
    }
    atomic_store(&c->up, true);
    c->nevict -= sent; /* done: removed, or registered anew since */
    memmove(c->evict, c->evict + sent, c->nevict * sizeof *c->evict);
    sv_members *ms = parse_members(c, r);
    if (ms) {
        if (sv_live_started(c->live))
            sv_live_members(c->live, ms);
        publish(c, ms);
    }
    if (c->nevict)
        refresh(c); /* proven gone while this one was on its way */
}

/* liveness.c proved member `name` (registered with live_port) gone: drop
 * it from Redis, and so from every node's list, with a refresh now. */
static void live_gone(void *arg, const char *name, unsigned live_port)
{
    sv_cluster *c = arg;
    hb_log("cluster: %s is gone (its liveness connection closed and its port refuses connections): dropping it now, "
           "not when its registration expires",
           name);
    struct evict *e = NULL;
    for (size_t i = 0; i < c->nevict && !e; i++)
        if (!strcmp(c->evict[i].name, name))
            e = &c->evict[i];
    if (!e && c->nevict == HB_ARRAY_LEN(c->evict))
        return; /* cannot be: one per member; the TTL would still drop it */
    if (!e)
        e = &c->evict[c->nevict++];
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->port, sizeof e->port, "%u", live_port);
    if (!c->in_flight)
        refresh(c);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
    sv_cluster *c = ac->data;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR) {
        atomic_fetch_add(&c->redis_errors, 1);
        went_down(c, r->str);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    sv_cluster *c = ac->data;
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it */
        c->in_flight = false;
        went_down(c, ac->errstr);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    sv_cluster *c = ac->data;
    c->ac = NULL; /* hiredis frees it */
    c->in_flight = false;
    if (status != REDIS_OK)
        went_down(c, ac->errstr);
}

static void connect_async(sv_cluster *c)
{
    redisAsyncContext *ac = redisAsyncConnect(c->host, c->port);
    if (!ac)
        return;
    if (ac->err) {
        went_down(c, ac->errstr);
        redisAsyncFree(ac);
        return;
    }
    ac->data = c;
    redisLibevAttach(c->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    if (c->o.password) { /* queued until the connection is up */
        const char *argv[2] = {"AUTH", c->o.password};
        redisAsyncCommandArgv(ac, on_auth, NULL, 2, argv, NULL);
    }
}

static void refresh(sv_cluster *c)
{
    if (!c->ac) {
        atomic_fetch_add(&c->reconnects, 1);
        c->down_attempts++;
        connect_async(c);
        if (!c->ac)
            return;
    }
    if (c->in_flight) {
        /* No reply within a second: a Redis that accepts but does not
         * answer counts as down; drop the connection and dial again. */
        went_down(c, "no reply within a second");
        redisAsyncDisconnect(c->ac); /* calls on_disconnect, which forgets it */
        return;
    }
    const char *argv[SCRIPT_ARGV_MAX];
    size_t len[SCRIPT_ARGV_MAX];
    int n = script_argv(c, argv, len, false, false);
    if (redisAsyncCommandArgv(c->ac, on_refresh, NULL, n, argv, len) == REDIS_OK) {
        c->in_flight = true;
        c->nevict_sent = c->nevict;
    }
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    sv_cluster *c = ev_userdata(loop);
    refresh(c);
    reclaim(c, false);
}

static void stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void ready_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    sv_cluster *c = ev_userdata(loop);
    int afd = atomic_exchange(&c->adopt_fd, -1);
    if (afd >= 0 && !atomic_load(&c->live)) { /* a takeover: the old process's liveness port becomes ours */
        char lerr[256];
        sv_live *l = sv_live_adopt(afd, live_gone, c, lerr, sizeof lerr);
        if (!l)
            hb_log("cluster: the liveness port taken over is unusable (%s): the other nodes will drop this one "
                   "only when its registration expires", lerr);
        c->live = l;
        desc_set(c, sv_live_port(l), false);
    }
    size_t n = strlen(c->desc);
    if (is_starting(c->desc, n))
        c->desc[n - (sizeof STARTING - 1)] = '\0'; /* listed from this refresh on */
    if (!c->in_flight)
        refresh(c); /* at once: listed, or with the liveness port taken over */
    sv_live *live = atomic_load(&c->live);
    if (live && !sv_live_started(live))
        sv_live_start(live, loop); /* the SETs have their own tables by now (liveness.h) */
    if (c->hook_start && !c->hooked)
        c->hook_start(c->hook_arg, loop);
    c->hooked = true;
}

static void *cluster_main(void *arg)
{
    sv_cluster *c = arg;
    pthread_setname_np(pthread_self(), "hb-cluster");
    /* Its one refresh a second must not miss the TTL behind hundreds of busy
     * threads: a node starved of it drops out of the list while alive, its
     * users move (with standbys: all at once) and come back when it returns.
     * Not real-time: the cross-node messages (xmsg.c) run here too, and
     * their work grows with the traffic. */
    hb_thread_urgent(0, c->o.nice, "hb-cluster");
    ev_run(c->loop, 0);
    if (c->hook_stop && c->hooked)
        c->hook_stop(c->hook_arg);
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        ac->onDisconnect = NULL;
        redisAsyncFree(ac);
    }
    return NULL;
}

int sv_cluster_start(sv_cluster *c, char *err, size_t errlen)
{
    /* poll(2), not epoll: the liveness listener and the connections it
     * holds (liveness.h) must be in no epoll instance, whose files the
     * kernel releases only under one global mutex, for which a dying
     * process's SETs queue as they close their quarter of a million
     * sockets (1M run 20: the held connections closed 1.48 s after a
     * SIGKILL, the listener not within the TTL).  The loop watches a few
     * hundred descriptors at most, a few hundred times a second. */
    c->loop = ev_loop_new(EVBACKEND_POLL | EVFLAG_NOENV);
    if (!c->loop) {
        snprintf(err, errlen, "cluster: cannot create a loop");
        return -1;
    }
    ev_set_userdata(c->loop, c);
    ev_timer_init(&c->tick, tick_cb, 0, 1.0);
    ev_timer_start(c->loop, &c->tick);
    ev_async_init(&c->stop, stop_cb);
    ev_async_start(c->loop, &c->stop);
    ev_async_init(&c->ready, ready_cb);
    ev_async_start(c->loop, &c->ready);
    if (pthread_create(&c->th, NULL, cluster_main, c) != 0) {
        snprintf(err, errlen, "cluster: cannot start its thread");
        return -1;
    }
    c->running = true;
    return 0;
}

void sv_cluster_ready(sv_cluster *c)
{
    if (c && c->running)
        ev_async_send(c->loop, &c->ready);
}

void sv_cluster_free(sv_cluster *c)
{
    if (!c)
        return;
    if (c->running) {
        ev_async_send(c->loop, &c->stop);
        pthread_join(c->th, NULL);
        c->running = false;
    }
    sv_live_free(c->live); /* here, not on the thread: the stats read it until now */
    c->live = NULL;
    if (c->adopt_fd >= 0) /* a takeover that never served */
        close(c->adopt_fd);
    if (c->loop)
        ev_loop_destroy(c->loop);
    /* Leave at once rather than after the TTL (best effort, bounded);
     * unless a new process took over: it goes on being this node. */
    struct timeval tv = {0, 500000};
    redisContext *rc = c->stay ? NULL : redisConnectWithTimeout(c->host, c->port, tv);
    if (rc && !rc->err) {
        redisSetTimeout(rc, tv);
        redisReply *r = NULL;
        if (c->o.password)
            r = redisCommand(rc, "AUTH %s", c->o.password);
        if (r)
            freeReplyObject(r);
        r = run_script(rc, c, true, false);
        if (r)
            freeReplyObject(r);
    }
    if (rc)
        redisFree(rc);
    reclaim(c, true);
    free(atomic_load(&c->cur));
    free(c);
}

int sv_cluster_live_fd(const sv_cluster *c)
{
    if (!c)
        return -1;
    int afd = atomic_load(&c->adopt_fd);
    return afd >= 0 ? afd : sv_live_fd(c->live);
}

void sv_cluster_live_adopt(sv_cluster *c, int fd)
{
    if (!c || atomic_load(&c->live)) {
        close(fd); /* not a cluster node, or it made its own (not a takeover) */
        return;
    }
    int old = atomic_exchange(&c->adopt_fd, fd);
    if (old >= 0)
        close(old);
}

void sv_cluster_stay(sv_cluster *c, bool stay)
{
    if (c)
        c->stay = stay;
}

void sv_cluster_get_stats(sv_cluster *c, sv_cluster_stats *st)
{
    const sv_members *ms = sv_cluster_members(c);
    st->gen = ms->gen;
    st->members = ms->n;
    st->refreshes = atomic_load(&c->refreshes);
    st->reconnects = atomic_load(&c->reconnects);
    st->redis_errors = atomic_load(&c->redis_errors);
    st->flaps = atomic_load(&c->flaps);
    sv_live_stats ls;
    sv_live_get_stats(c->live, &ls);
    st->gone = ls.gone;
    st->live_closed = ls.closed;
    st->live_dials = ls.dials;
    st->live_closed_us = ls.closed_us;
    st->gone_us = ls.gone_us;
    st->redis_up = atomic_load(&c->up);
}
