/* Settings: a config file, flags overriding it, clear errors for bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "conf.h"

static int64_t sets = 4, users = 100;
static double rate = 200;
static char *journal = "x";
static bool fsync_ = true;
static const hb_opt opts[] = {
    {"sets", HB_OPT_INT, &sets, "N", "sets", 1, 64},
    {"users", HB_OPT_INT, &users, "N", "users", 1, 1e9},
    {"rate", HB_OPT_DOUBLE, &rate, "N", "rate", 0, 1e6},
    {"journal", HB_OPT_STR, &journal, "FILE", "journal", 0, 0},
    {"fsync", HB_OPT_BOOL, &fsync_, NULL, "fsync", 0, 0},
    {NULL, 0, NULL, NULL, NULL, 0, 0},
};

static void test_file_then_flags(void **st)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/hb-test-conf-%d", getpid());
    FILE *f = fopen(path, "w");
    fprintf(f, "# comment\nsets = 8\n  users=5000   # trailing comment\nrate = 2.5\njournal = /tmp/j\nfsync = off\n");
    fclose(f);
    hb_cli cli = {.synopsis = "t", .description = "t", .opts = opts};
    char *argv[] = {"t", "--config", path, "--sets", "16", "--fsync", NULL};
    int first = hb_cli_parse(&cli, 6, argv);
    assert_int_equal(first, 6);
    assert_int_equal(sets, 16);       /* the flag wins */
    assert_int_equal(users, 5000);    /* from the file */
    assert_true(rate > 2.49 && rate < 2.51);
    assert_string_equal(journal, "/tmp/j");
    assert_true(fsync_);              /* --fsync after the file's "off" */
    unlink(path);
}

static void test_errors(void **st)
{
    char err[256];
    assert_int_equal(hb_opt_set(opts, "sets", "abc", err, sizeof err), -1);
    assert_non_null(strstr(err, "not a whole number"));
    assert_int_equal(hb_opt_set(opts, "sets", "65", err, sizeof err), -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(hb_opt_set(opts, "nope", "1", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown setting"));
    assert_int_equal(hb_opt_set(opts, "fsync", "maybe", err, sizeof err), -1);
    char path[64];
    snprintf(path, sizeof path, "/tmp/hb-test-conf2-%d", getpid());
    FILE *f = fopen(path, "w");
    fprintf(f, "sets = 4\nthis line has no equals sign\n");
    fclose(f);
    assert_int_equal(hb_conf_load(opts, path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":2:"));
    unlink(path);
    assert_int_equal(hb_conf_load(opts, "/nonexistent/file", err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_file_then_flags), cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
