/* ledger.c -- the ledger check itself under test: crafted journals, server
 * counters and client ledgers, each wrong in one way, must be named and make
 * hb-reconcile exit 1 (money) or 2 (unusable input); a consistent set must
 * pass.  Each case once passed the check that existed before (issue 12), so
 * each is a check that can fail.  No server runs: the files are written here
 * with the same encoder the server uses (proto/jfile.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "jfile.h"
#include "ledgerfile.h"
#include "money.h"
#include "peer.h"

static char dir[64];
static FILE *jf;

static void journal_begin(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/j", dir);
    jf = fopen(path, "w");
    CHECK(jf, "cannot write %s", path);
}

static void put(Hb__Record *r)
{
    uint8_t buf[HB_JREC_MAX + 16];
    size_t n = hb_jrec_pack(r, buf, sizeof buf);
    CHECK(n && fwrite(buf, 1, n, jf) == n, "cannot write a journal entry");
}

/* A cycle of the settings tests use: 100 users, 3 shake packets of 1..1000
 * cents, 1 send packet of 3..3000 cents split in 3. */
static void cycle(uint32_t number)
{
    Hb__Cycle c = HB__CYCLE__INIT;
    c.number = number;
    c.users = 100;
    c.total = 3;
    c.amount_min = 1;
    c.amount_max = 1000;
    c.rate = 200;
    c.send_total = 1;
    c.send_amount_min = 3;
    c.send_amount_max = 3000;
    c.send_rate = 200;
    c.send_split = 3;
    Hb__Record r = HB__RECORD__INIT;
    r.type = HB__RECORD_TYPE__REC_CYCLE;
    r.cycle = &c;
    put(&r);
}

static void create(uint64_t id, uint32_t amount)
{
    Hb__Record r = HB__RECORD__INIT;
    r.type = HB__RECORD_TYPE__REC_CREATE;
    r.kind = HB__PACKET_KIND__KIND_SHAKE;
    r.packet_id = id;
    r.amount = amount;
    put(&r);
}

static void create_send(uint64_t id, uint32_t amount, const uint32_t *uids, const uint32_t *shares)
{
    Hb__Record r = HB__RECORD__INIT;
    r.type = HB__RECORD_TYPE__REC_CREATE;
    r.kind = HB__PACKET_KIND__KIND_SEND;
    r.packet_id = id;
    r.amount = amount;
    r.n_recipients = r.n_shares = 3;
    r.recipients = (uint32_t *)uids;
    r.shares = (uint32_t *)shares;
    put(&r);
}

static void win(uint64_t id, uint32_t uid, uint32_t amount, uint32_t seq)
{
    Hb__Record r = HB__RECORD__INIT;
    r.type = HB__RECORD_TYPE__REC_WIN;
    r.packet_id = id;
    r.uid = uid;
    r.amount = amount;
    r.seq = seq;
    put(&r);
}

static void share(uint64_t id, uint32_t uid, uint32_t amount)
{
    Hb__Record r = HB__RECORD__INIT;
    r.type = HB__RECORD_TYPE__REC_SHARE;
    r.kind = HB__PACKET_KIND__KIND_SEND;
    r.packet_id = id;
    r.uid = uid;
    r.amount = amount;
    put(&r);
}

static void journal_end(void)
{
    fclose(jf);
}

static void ledger(const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/c.ledger", dir);
    FILE *f = fopen(path, "w");
    CHECK(f, "cannot write %s", path);
    fprintf(f, "%s\n%s", HB_LEDGER_HEADER, text);
    fclose(f);
}

/* The consistent run: 3 packets won by uids 1..3, send packet to 4,5,6 all
 * opened.  Cases start from it and break one thing. */
static const uint32_t RCPT[3] = {4, 5, 6}, SHARES[3] = {10, 20, 30};
static void good_journal(void)
{
    journal_begin();
    cycle(1);
    create(1, 100);
    create(2, 200);
    create(3, 300);
    win(1, 1, 100, 11);
    win(2, 2, 200, 12);
    win(3, 3, 300, 13);
    create_send(hb_send_id(0), 60, RCPT, SHARES);
    for (int i = 0; i < 3; i++)
        share(hb_send_id(0), RCPT[i], SHARES[i]);
    journal_end();
}

static char good_ledger[512];
static void make_good_ledger(void)
{
    snprintf(good_ledger, sizeof good_ledger,
             "W 1 1 100 11\nW 2 2 200 12\nW 3 3 300 13\nS %llu 4 10\nS %llu 5 20\nS %llu 6 30\n",
             (unsigned long long)hb_send_id(0), (unsigned long long)hb_send_id(0), (unsigned long long)hb_send_id(0));
}

/* Run hb-reconcile with `flags` (and the ledger unless no_ledger); expect
 * exit status `want` and, when want != 0, `needle` in its output. */
static void expect(const char *what, const char *flags, bool no_ledger, int want, const char *needle)
{
    char cmd[1024], out[128];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    snprintf(cmd, sizeof cmd, "'%s/hb-reconcile' --journal %s/j %s %s%s >%s 2>&1", getenv("HB_BIN"), dir, flags,
             no_ledger ? "" : dir, no_ledger ? "" : "/c.ledger", out);
    int st = system(cmd);
    CHECK(st != -1 && WIFEXITED(st), "%s: hb-reconcile did not exit normally (status %d)", what, st);
    char text[16384] = "";
    FILE *f = fopen(out, "r");
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
    }
    CHECK(WEXITSTATUS(st) == want, "%s: exit status %d, want %d; output:\n%s", what, WEXITSTATUS(st), want, text);
    CHECK(!needle || strstr(text, needle), "%s: output does not say '%s':\n%s", what, needle, text);
    PASS("%s: exit %d%s%s", what, want, needle ? ", says: " : "", needle ? needle : "");
}

int main(void)
{
    CHECK(getenv("HB_BIN"), "HB_BIN not set");
    snprintf(dir, sizeof dir, "/tmp/hb-ledger.XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp");
    make_good_ledger();

    good_journal();
    ledger(good_ledger);
    expect("control: a consistent run", "--expect-all-won --expect-all-opened", false, 0, "LEDGER OK");

    /* a client W line on a send-flow packet id that no WIN record grants */
    char text[1024];
    snprintf(text, sizeof text, "%sW %llu 7 60 99\n", good_ledger, (unsigned long long)hb_send_id(0));
    ledger(text);
    expect("a client win on a send-flow id", "", false, 1, "never made as a shake packet");

    /* two different packets won by the same (uid, seq): one shake paid twice */
    journal_begin();
    cycle(1);
    create(1, 100);
    create(2, 200);
    win(1, 1, 100, 11);
    win(2, 1, 200, 11);
    journal_end();
    ledger("W 1 1 100 11\n");
    expect("one shake (uid, seq) paid twice", "", false, 1, "one shake paid twice");

    /* a 0-cent packet, a 4,000,000,000-cent packet, a win to uid 4,000,000,000 */
    journal_begin();
    cycle(1);
    create(1, 0);
    journal_end();
    ledger("");
    expect("a 0-cent packet", "", false, 1, "of 0 cents: cycle 1 makes 1..1000");
    journal_begin();
    cycle(1);
    create(1, 4000000000u);
    journal_end();
    expect("a 4,000,000,000-cent packet", "", false, 1, "of 4000000000 cents");
    journal_begin();
    cycle(1);
    create(1, 100);
    win(1, 4000000000u, 100, 1);
    journal_end();
    ledger("W 1 4000000000 100 1\n");
    expect("a win to uid 4,000,000,000", "", false, 1, "won by uid 4000000000, the run has 100 users");

    /* more packets than the cycle's --total */
    journal_begin();
    cycle(1);
    for (uint64_t id = 1; id <= 4; id++)
        create(id, 100);
    journal_end();
    ledger("");
    expect("a fourth packet in a cycle of 3", "", false, 1, "beyond the totals");

    /* --expect-all-won on a run that did not make all its packets */
    journal_begin();
    cycle(1);
    create(1, 100);
    win(1, 1, 100, 1);
    journal_end();
    ledger("W 1 1 100 1\n");
    expect("expect-all-won with 1 of 3 made", "--expect-all-won", false, 1, "1 of 3 made");

    /* the client's totals and lines against the journal's: a wrong amount */
    good_journal();
    snprintf(text, sizeof text, "%s", good_ledger);
    text[strlen("W 1 1 1")] = '9'; /* "W 1 1 190 11" */
    ledger(text);
    expect("a client amount edited", "", false, 1, "client uid 1 190 cents");

    /* a missing journal, an empty journal, with --expect-all-won and no ledgers */
    char path[128];
    snprintf(path, sizeof path, "%s/j", dir);
    unlink(path);
    expect("a missing journal", "--expect-all-won", true, 2, "No such file");
    journal_begin();
    journal_end();
    expect("an empty journal", "--expect-all-won", true, 2, "empty");
    /* records without cycle settings cannot be checked */
    journal_begin();
    create(1, 100);
    journal_end();
    expect("a journal without cycle records", "", true, 2, "before any cycle record");

    /* an unreadable ledger line is unusable input, not a money verdict */
    good_journal();
    snprintf(text, sizeof text, "%sW 1 2\n", good_ledger);
    ledger(text);
    expect("an unreadable ledger line", "", false, 2, "unreadable ledger line");

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    return 0;
}
