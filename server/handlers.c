/* handlers.c -- what the server does with each message: login, shake, open,
 * chat from users; notices, chat and kicks routed from other threads; and
 * the replies that wait for the journal. */
#include "set.h"

#include <stdlib.h>
#include <string.h>
#include "xmsg.h"

/* ---- replies ------------------------------------------------------------------ */

static size_t pack_shake_reply(uint8_t *buf, size_t cap, uint32_t seq, Hb__Result res, uint64_t packet_id,
                               uint32_t amount)
{
    Hb__ShakeReply r = HB__SHAKE_REPLY__INIT;
    r.seq = seq;
    r.result = res;
    r.packet_id = packet_id;
    r.amount = amount;
    r.server_time_us = hb_now_us();
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_SHAKE_REPLY;
    f.shake_reply = &r;
    return hb_frame_pack(&f, buf, cap);
}

static size_t pack_open_reply(uint8_t *buf, size_t cap, uint64_t packet_id, Hb__OpenStatus st, uint32_t share)
{
    Hb__OpenReply r = HB__OPEN_REPLY__INIT;
    r.packet_id = packet_id;
    r.status = st;
    r.share = share;
    r.server_time_us = hb_now_us();
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_OPEN_REPLY;
    f.open_reply = &r;
    return hb_frame_pack(&f, buf, cap);
}

/* A reply about money leaves only once the journal has the grant on disk:
 * queue it unless that is already so.  The queue is flushed from its head
 * while records are durable; a reply waiting for an older record than the
 * one before it (a retry) at worst waits for that later one too. */
static void defer(sv_set *set, sv_conn *c, uint64_t jseq, const uint8_t *frame, size_t len, bool shake, bool repeat)
{
    if (jseq <= sv_journal_committed(&set->srv->journal)) {
        sv_conn_send(set, c, frame, len);
        if (shake)
            HB_INC(set->st.replies);
        return;
    }
    if (repeat && c->ndeferred >= SV_DEFER_PER_CONN) {
        /* Its grants are durable or will be: a retry after reconnecting is
         * answered from them. */
        sv_conn_fail(set, c, HB__ERROR_CODE__ERR_TOO_MANY_PENDING, "too many replies waiting for the journal");
        return;
    }
    if (c->nwaiting == UINT8_MAX) {
        /* 255 replies held for the disk: no honest client (one shake at a
         * time) gets here, only a flood that does not wait for answers, as
         * one that never reads: its output is over the bound.  Its grants
         * are durable or will be: a retry is answered from them. */
        HB_INC(set->st.err[HB__ERROR_CODE__ERR_OUTPUT_OVERFLOW]);
        sv_conn_close(set, c);
        return;
    }
    if (len > SV_DEFERRED_FRAME) { /* a bug: such a reply cannot be kept */
        hb_log("bug: a deferred reply of %zu bytes (at most %d)", len, SV_DEFERRED_FRAME);
        sv_conn_close(set, c); /* the client retries and is answered from the grant */
        return;
    }
    if (set->dq_len == set->dq_cap) {
        size_t ncap = set->dq_cap ? set->dq_cap * 2 : 64;
        sv_deferred *n = malloc(ncap * sizeof *n);
        if (!n) {
            sv_conn_close(set, c); /* cannot keep the reply: the client will retry */
            return;
        }
        for (size_t i = 0; i < set->dq_len; i++)
            n[i] = set->dq[(set->dq_head + i) % set->dq_cap];
        free(set->dq);
        set->dq = n;
        set->dq_cap = ncap;
        set->dq_head = 0;
    }
    sv_deferred *d = &set->dq[(set->dq_head + set->dq_len) % set->dq_cap];
    d->jseq = jseq;
    d->slot = sv_conn_slot(set, c);
    d->gen = c->gen;
    d->len = (uint8_t)len;
    d->shake = shake;
    d->repeat = repeat;
    memcpy(d->frame, frame, len);
    set->dq_len++;
    c->ndeferred += repeat;
    c->nwaiting++;
    sv_set_tick_busy(set); /* the tick is the safety net for this reply */
    /* The record may have been appended by another thread (a retry or a
     * repeated open answered here): ask to be woken for it all the same. */
    if (sv_journal_watch(&set->srv->journal, jseq, set->id))
        sv_flush_deferred(set);
}

void sv_flush_deferred(sv_set *set)
{
    uint64_t done = sv_journal_committed(&set->srv->journal);
    while (set->dq_len) {
        sv_deferred *d = &set->dq[set->dq_head];
        if (d->jseq > done)
            break;
        sv_conn *c = &set->conns[d->slot];
        /* The connection may have gone meanwhile: the grant is on disk and
         * the client's retry will be answered from the grant record. */
        if (d->repeat && c->gen == d->gen && c->ndeferred)
            c->ndeferred--; /* a reused slot (new gen) starts at 0 */
        if (c->gen == d->gen && c->nwaiting)
            c->nwaiting--;
        if (c->gen == d->gen && c->state == SV_CONN_ACTIVE) {
            sv_conn_send(set, c, d->frame, d->len);
            if (d->shake)
                HB_INC(set->st.replies);
        }
        set->dq_head = (set->dq_head + 1) % set->dq_cap;
        set->dq_len--;
    }
}

/* ---- state checks ------------------------------------------------------------- */

/* A logged-in connection may act only while it is still uid's session: a
 * newer login elsewhere replaces it even before the kick arrives. */
static bool still_current(sv_set *set, sv_conn *c)
{
    if (c->state == SV_CONN_NEW) {
        sv_conn_fail(set, c, HB__ERROR_CODE__ERR_NOT_LOGGED_IN, "log in first");
        return false;
    }
    if (c->state == SV_CONN_STANDBY) { /* a standby acts only once promoted (standby.c) */
        sv_conn_fail(set, c, HB__ERROR_CODE__ERR_NOT_LOGGED_IN, "a standby session: not promoted");
        return false;
    }
    if (sv_dir_get(&set->srv->dir, c->uid) != SV_LOC(set->id, sv_conn_slot(set, c))) {
        HB_INC(set->st.replaced);
        sv_conn_fail(set, c, HB__ERROR_CODE__ERR_REPLACED, "this uid logged in on another connection");
        return false;
    }
    return true;
}

/* ---- login ---------------------------------------------------------------------- */

static void deliver(sv_set *set, sv_conn *c, sv_msg *m);

static void on_login(sv_set *set, sv_conn *c, const Hb__Login *l)
{
    sv_server *s = set->srv;
    if (c->state != SV_CONN_NEW) {
        sv_conn_fail(set, c, HB__ERROR_CODE__ERR_ALREADY_LOGGED_IN, "already logged in");
        return;
    }
    if (l->uid >= s->dir.users) {
        sv_conn_fail(set, c, HB__ERROR_CODE__ERR_BAD_UID, "uid out of range");
        return;
    }
    if (s->secret_len) {
        hb_token_verdict v = hb_token_check(s->secret, s->secret_len, l->uid, l->expires, l->token.data,
                                            l->token.len, (uint64_t)(hb_now_us() / 1000000));
        if (v == HB_TOKEN_EXPIRED) {
            sv_conn_fail(set, c, HB__ERROR_CODE__ERR_TOKEN_EXPIRED, "token expired");
            return;
        }
        if (v != HB_TOKEN_OK) {
            sv_conn_fail(set, c, HB__ERROR_CODE__ERR_BAD_TOKEN,
                         l->expires ? "bad token" : "bad token (no expiry: make tokens with hb-token --ttl)");
            return;
        }
    }
    if (l->standby && s->cluster) {
        sv_standby_login(set, c, l); /* held as the uid's standby (standby.c) */
        return;
    }
    if (sv_rehome_login(set, c, l->uid, l->members_tag))
        return; /* another node owns this uid: redirected there (rehome.c) */
    sv_login_accept(set, c, l->uid, l->members_tag);
}

void sv_send_login_ok(sv_set *set, sv_conn *c, uint64_t members_tag, bool standby)
{
    sv_server *s = set->srv;
    Hb__LoginOk ok = HB__LOGIN_OK__INIT;
    ok.uid = c->uid;
    ok.set = (uint32_t)set->id;
    ok.server_time_us = hb_now_us();
    ok.node = s->band;
    ok.standby = standby;
    /* Cluster: the member list when the client's is stale (cluster.h). */
    ok.members = s->cluster ? sv_members_for(sv_cluster_members(s->cluster), members_tag) : NULL;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_LOGIN_OK;
    f.login_ok = &ok;
    sv_conn_send_frame(set, c, &f);
}

void sv_login_accept(sv_set *set, sv_conn *c, uint32_t uid, uint64_t members_tag)
{
    sv_server *s = set->srv;
    uint32_t slot = sv_conn_slot(set, c);
    c->uid = uid;
    c->state = SV_CONN_ACTIVE;
    HB_INC(set->st.active);
    HB_INC(set->st.logins);
    HB_STORE(set->st.login_last_us, (uint64_t)(ev_now(set->loop) * 1e6));
    sv_pend *parked;
    uint64_t mine = SV_LOC(set->id, slot);
    uint64_t prev = sv_dir_login(&s->dir, c->uid, mine, &parked);
    if (prev && prev != mine) {
        /* A second login for this uid: the old session is told and closed. */
        int ps = SV_LOC_SET(prev);
        if (ps == set->id) {
            sv_conn *old = &set->conns[SV_LOC_SLOT(prev)];
            if (old->state == SV_CONN_ACTIVE && old->uid == c->uid) {
                HB_INC(set->st.replaced);
                sv_conn_fail(set, old, HB__ERROR_CODE__ERR_REPLACED, "this uid logged in on another connection");
            }
        } else {
            sv_route_kick(s, prev, c->uid);
        }
    }
    sv_send_login_ok(set, c, members_tag, false);
    for (sv_pend *p = parked; p; p = p->next) {
        if (c->state == SV_CONN_ACTIVE)
            deliver(set, c, &p->m);
        else if (!sv_route(s, &p->m)) /* gone meanwhile: park the rest again */
            HB_INC(set->st.route_dropped);
    }
    sv_dir_free_list(parked);
}

/* ---- shake ------------------------------------------------------------------------ */

/* A packet from this SET: one put back by a grant that could not be made
 * first, else the producer's queue. */
static bool take_packet(sv_set *set, sv_packet *pk)
{
    if (set->nback) {
        *pk = set->back[--set->nback];
        return true;
    }
    return sv_pqueue_pop(&set->q, pk);
}

static void on_shake(sv_set *set, sv_conn *c, const Hb__Shake *sh)
{
    sv_server *s = set->srv;
    if (!still_current(set, c))
        return;
    HB_INC(set->st.shakes);
    uint8_t buf[64];
    size_t n;
    if (sh->retry) {
        /* A resend after a reconnect: if that shake already won, answer with
         * the same packet (once its record is durable), never a new one, and
         * do not count it against the rate limit: it is the same shake. */
        uint64_t pid, jseq;
        uint32_t amount;
        HB_INC(set->st.retries);
        if (sv_registry_find_grant(&s->reg, c->uid, sh->seq, &pid, &amount, &jseq)) {
            HB_INC(set->st.retry_replayed);
            n = pack_shake_reply(buf, sizeof buf, sh->seq, HB__RESULT__RESULT_WIN, pid, amount);
            defer(set, c, jseq, buf, n, true, true);
            return;
        }
    }
    if (s->cfg.shake_limit > 0 &&
        !sv_dir_shake_ok(&s->dir, c->uid, (uint32_t)ev_now(set->loop), (uint32_t)s->cfg.shake_limit)) {
        /* a bot shaking faster than a thumb can: answered, never a win */
        HB_INC(set->st.rate_limited);
        HB_INC(set->st.replies);
        n = pack_shake_reply(buf, sizeof buf, sh->seq, HB__RESULT__RESULT_RATE_LIMITED, 0, 0);
        sv_conn_send(set, c, buf, n);
        return;
    }
    sv_packet pk;
    if (!atomic_load_explicit(&s->event_started, memory_order_relaxed)) {
        HB_INC(set->st.not_yet);
        n = pack_shake_reply(buf, sizeof buf, sh->seq, HB__RESULT__RESULT_NOT_YET, 0, 0);
    } else if (take_packet(set, &pk)) {
        uint64_t mine = SV_LOC(set->id, sv_conn_slot(set, c));
        if (!sv_dir_lock_if_at(&s->dir, c->uid, mine)) {
            /* replaced since still_current(): the packet stays in this SET */
            set->back[set->nback++] = pk;
            HB_INC(set->st.replaced);
            sv_conn_fail(set, c, HB__ERROR_CODE__ERR_REPLACED, "this uid logged in on another connection");
            return;
        }
        Hb__Record rec = HB__RECORD__INIT;
        rec.type = HB__RECORD_TYPE__REC_WIN;
        rec.kind = HB__PACKET_KIND__KIND_SHAKE;
        rec.packet_id = pk.id;
        rec.amount = pk.amount;
        rec.uid = c->uid;
        rec.seq = sh->seq;
        rec.time_us = hb_now_us();
        uint64_t jseq = sv_journal_append(&s->journal, &rec, set->id);
        sv_registry_add_grant(&s->reg, c->uid, sh->seq, pk.id, pk.amount, jseq);
        sv_dir_unlock(&s->dir, c->uid);
        HB_INC(set->st.wins);
        HB_ADD(set->st.amount_won, pk.amount);
        n = pack_shake_reply(buf, sizeof buf, sh->seq, HB__RESULT__RESULT_WIN, pk.id, pk.amount);
        defer(set, c, jseq, buf, n, true, false);
        return;
    } else {
        HB_INC(set->st.losses);
        n = pack_shake_reply(buf, sizeof buf, sh->seq, HB__RESULT__RESULT_LOSE, 0, 0);
    }
    HB_INC(set->st.replies);
    sv_conn_send(set, c, buf, n);
}

/* ---- open ---------------------------------------------------------------------------- */

static void open_here(sv_set *set, sv_conn *c, uint64_t packet_id, bool keep);

static void on_open(sv_set *set, sv_conn *c, const Hb__Open *o)
{
    sv_server *s = set->srv;
    if (!still_current(set, c))
        return;
    HB_INC(set->st.opens);
    /* A send packet of another node's band is that node's to pay: the Open
     * goes there (xmsg.h) and its reply comes back to this connection. */
    unsigned band = hb_id_band(o->packet_id);
    if (s->xmsg && hb_is_send_id(o->packet_id) && band != s->band && band >= 1 && band <= (unsigned)s->cfg.nodes) {
        sv_msg m = {.type = SV_MSG_OPEN,
                    .uid = c->uid,
                    .from = s->band - 1,
                    .slot = sv_conn_slot(set, c),
                    .gen = c->gen,
                    .set = (uint16_t)set->id,
                    .packet_id = o->packet_id};
        if (sv_xmsg_send(s->xmsg, (int)band - 1, &m)) {
            HB_INC(set->st.opens_remote);
            return;
        }
        sv_conn_close(set, c); /* no room to forward it: the client opens again after reconnecting */
        return;
    }
    open_here(set, c, o->packet_id, true);
}

/* Open one of this node's shares and answer -- unless the share is being
 * opened from another connection at this very moment (registry.h): then
 * keep the open for a later loop turn (sv_retry_opens), never wait, never
 * answer before the paying open's record exists.  If there is no room to
 * keep it (or no later turn: !keep), close: the client opens again after
 * reconnecting, as when there is no room to forward an open. */
static void open_here(sv_set *set, sv_conn *c, uint64_t packet_id, bool keep)
{
    sv_server *s = set->srv;
    Hb__OpenStatus st;
    uint32_t share;
    uint64_t jseq;
    if (!sv_registry_open(&s->reg, &s->journal, set->id, packet_id, c->uid, &st, &share, &jseq)) {
        if (!keep || !sv_set_open_later(set, c, packet_id))
            sv_conn_close(set, c);
        return;
    }
    uint8_t buf[64];
    size_t n = pack_open_reply(buf, sizeof buf, packet_id, st, st == HB__OPEN_STATUS__OPEN_OK || st == HB__OPEN_STATUS__OPEN_ALREADY ? share : 0);
    if (st == HB__OPEN_STATUS__OPEN_OK) {
        HB_INC(set->st.opens_ok);
        HB_ADD(set->st.share_amount, share);
    } else {
        HB_INC(set->st.opens_rejected);
    }
    if (jseq)
        defer(set, c, jseq, buf, n, false, st == HB__OPEN_STATUS__OPEN_ALREADY);
    else
        sv_conn_send(set, c, buf, n);
}

void sv_retry_opens(sv_set *set, bool last)
{
    int n = set->nreopen;
    set->nreopen = 0;
    for (int i = 0; i < n; i++) {
        sv_reopen e = set->reopen[i];
        sv_conn *c = &set->conns[e.slot];
        if (c->gen == e.gen && c->state == SV_CONN_ACTIVE && c->uid == e.uid) /* else it left: its client opens again */
            open_here(set, c, e.packet_id, !last); /* there is room to keep it again: the list was emptied */
    }
}

/* ---- chat ------------------------------------------------------------------------------ */

static void on_chat(sv_set *set, sv_conn *c, const Hb__Chat *ch)
{
    sv_server *s = set->srv;
    if (!still_current(set, c))
        return;
    size_t len = ch->text ? strlen(ch->text) : 0;
    if (len > HB_CHAT_MAX || ch->to_uid >= s->dir.users) {
        sv_conn_fail(set, c, HB__ERROR_CODE__ERR_CHAT_INVALID,
                     len > HB_CHAT_MAX ? "chat text too long" : "chat target uid out of range");
        return;
    }
    if (s->cfg.chat_limit > 0 &&
        !sv_dir_chat_ok(&s->dir, c->uid, (uint32_t)ev_now(set->loop), (uint32_t)s->cfg.chat_limit)) {
        HB_INC(set->st.chat_limited); /* dropped: chat must not crowd out notices */
        return;
    }
    HB_INC(set->st.chats_in);
    sv_msg m = {.type = SV_MSG_CHAT, .uid = ch->to_uid, .from = c->uid, .textlen = (uint8_t)len};
    memcpy(m.text, ch->text, len);
    if (!sv_route(s, &m))
        HB_INC(set->st.route_dropped);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

bool sv_handle_frame(sv_set *set, sv_conn *c, const uint8_t *body, size_t len)
{
    Hb__Frame *f = hb_frame_unpack(&set->arena, body, len);
    if (!f) {
        sv_conn_fail(set, c, HB__ERROR_CODE__ERR_BAD_MESSAGE, "not a valid hb.Frame");
        return false;
    }
    switch (f->body_case) {
    case HB__FRAME__BODY_LOGIN: on_login(set, c, f->login); break;
    case HB__FRAME__BODY_SHAKE: on_shake(set, c, f->shake); break;
    case HB__FRAME__BODY_OPEN: on_open(set, c, f->open); break;
    case HB__FRAME__BODY_CHAT: on_chat(set, c, f->chat); break;
    case HB__FRAME__BODY__NOT_SET:
        sv_conn_fail(set, c, HB__ERROR_CODE__ERR_UNKNOWN_TYPE, "frame has no known message");
        break;
    default:
        sv_conn_fail(set, c, HB__ERROR_CODE__ERR_NOT_ALLOWED, "clients may not send this message");
        break;
    }
    return c->state == SV_CONN_ACTIVE || c->state == SV_CONN_NEW || c->state == SV_CONN_STANDBY;
}

/* ---- routed messages ------------------------------------------------------------------------ */

static void deliver(sv_set *set, sv_conn *c, sv_msg *m)
{
    Hb__Frame f = HB__FRAME__INIT;
    if (m->type == SV_MSG_NOTICE) {
        Hb__Notice nt = HB__NOTICE__INIT;
        nt.packet_id = m->packet_id;
        nt.amount = m->amount;
        nt.split = m->split;
        f.body_case = HB__FRAME__BODY_NOTICE;
        f.notice = &nt;
        sv_conn_send_frame(set, c, &f);
        HB_INC(set->st.notices);
        /* renotify.c tells it again only on another session */
        sv_registry_told(&set->srv->reg, m->packet_id, m->uid, SV_LOC(set->id, sv_conn_slot(set, c)));
    } else if (m->type == SV_MSG_CHAT) {
        char text[HB_CHAT_MAX + 1];
        memcpy(text, m->text, m->textlen);
        text[m->textlen] = 0;
        Hb__Chat ch = HB__CHAT__INIT;
        ch.from_uid = m->from;
        ch.to_uid = m->uid;
        ch.text = text;
        f.body_case = HB__FRAME__BODY_CHAT;
        f.chat = &ch;
        sv_conn_send_frame(set, c, &f);
        HB_INC(set->st.chats_out);
    }
}

/* The reply to an Open another node served (the share is durable there). */
static void open_reply(sv_set *set, const sv_msg *m)
{
    sv_conn *c = &set->conns[m->slot];
    if (!m->slot || m->slot > set->hwm || c->gen != m->gen || c->state != SV_CONN_ACTIVE || c->uid != m->uid) {
        HB_INC(set->st.open_replies_lost); /* the client left: its retry is answered OPEN_ALREADY, same share */
        return;
    }
    uint8_t buf[64];
    size_t n = pack_open_reply(buf, sizeof buf, m->packet_id, (Hb__OpenStatus)m->status, m->amount);
    sv_conn_send(set, c, buf, n);
}

void sv_handle_msg(sv_set *set, sv_msg *m)
{
    sv_server *s = set->srv;
    if (m->type == SV_MSG_OPEN_REPLY) {
        open_reply(set, m);
        return;
    }
    if (m->type == SV_MSG_KICK) {
        sv_conn *old = &set->conns[m->slot];
        if (m->slot && m->slot <= set->hwm && old->state == SV_CONN_ACTIVE && old->uid == m->uid &&
            sv_dir_get(&s->dir, m->uid) != SV_LOC(set->id, m->slot)) {
            HB_INC(set->st.replaced);
            sv_conn_fail(set, old, HB__ERROR_CODE__ERR_REPLACED, "this uid logged in on another connection");
        }
        return;
    }
    uint64_t loc = sv_dir_get(&s->dir, m->uid);
    if (loc && SV_LOC_SET(loc) == set->id) {
        sv_conn *c = &set->conns[SV_LOC_SLOT(loc)];
        if (c->state == SV_CONN_ACTIVE && c->uid == m->uid) {
            deliver(set, c, m);
            return;
        }
    }
    /* The user moved or left since the message was routed: route again
     * (a bounded number of times). */
    HB_INC(set->st.rerouted);
    if (++m->hops > 4 || !sv_route(s, m))
        HB_INC(set->st.route_dropped);
}
