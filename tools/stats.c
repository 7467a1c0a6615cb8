/* stats.c -- hb-stats: read a stats file (proto/statsfile.h) for shell
 * scripts, so that every script reads it the same way and a missing counter
 * is an error, never a silent 0 or an empty string.
 *
 *     hb-stats FILE KEY...          the values, space-separated, on one line
 *     hb-stats --sum KEY FILE...    the sum of one whole-number counter
 * Exit status: 0; 1 when a key is missing (or not a number, with --sum);
 * 2 for a usage error or a file that cannot be read.  With --default V a
 * missing key or an unreadable file gives V instead (for a benchmark that
 * reads a file its process may not have written yet). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conf.h"
#include "statsfile.h"
#include "util.h"

static char *def;
static bool sum;

/* One file's value of key into *out (text); 0, 1 missing, 2 unreadable. */
static int value_of(const char *path, const char *key, const hb_statsfile *f, bool loaded, const char **out)
{
    if (!loaded) {
        *out = def;
        return def ? 0 : 2;
    }
    const char *v = hb_statsfile_get(f, key);
    if (v) {
        *out = v;
        return 0;
    }
    *out = def;
    if (def)
        return 0;
    fprintf(stderr, "hb-stats: %s has no '%s'\n", path, key);
    return 1;
}

static int do_sum(const char *key, int nfiles, char **files)
{
    uint64_t total = 0;
    for (int i = 0; i < nfiles; i++) {
        hb_statsfile f;
        char err[512];
        bool loaded = hb_statsfile_load(&f, files[i], err, sizeof err) == 0;
        if (!loaded && !def) {
            fprintf(stderr, "hb-stats: %s\n", err);
            return 2;
        }
        const char *v;
        int rc = value_of(files[i], key, &f, loaded, &v);
        uint64_t x = 0;
        char *end;
        if (!rc) {
            x = strtoull(v, &end, 10);
            if (end == v || *end || *v == '-') {
                fprintf(stderr, "hb-stats: %s: '%s' is '%s', not a whole number\n", files[i], key, v);
                rc = 1;
            }
        }
        if (loaded)
            hb_statsfile_free(&f);
        if (rc)
            return rc;
        total += x;
    }
    printf("%" PRIu64 "\n", total);
    return 0;
}

int main(int argc, char **argv)
{
    hb_prog = "hb-stats";
    const hb_opt opts[] = {
        {"default", HB_OPT_STR, &def, "V", "print V for a missing key or an unreadable file instead of failing", 0, 0},
        {"sum", HB_OPT_BOOL, &sum, NULL, "hb-stats --sum KEY FILE...: the sum of KEY over the files", 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const hb_cli cli = {
        .synopsis = "hb-stats [--default V] FILE KEY...  |  hb-stats --sum KEY FILE...",
        .description = "Read counters from a stats file of hb-server, hb-client or hb-echo-floor (--stats-file):\n"
                       "'name value' lines.  Prints the values of the keys, space-separated, on one line.",
        .epilog = "Exit status: 0; 1 a key is missing; 2 usage error or unreadable file.\n"
                  "Example:  read -r wins amount <<<\"$(hb-stats server.stats wins amount_won)\"",
        .opts = opts,
    };
    int first = hb_cli_parse(&cli, argc, argv);
    if (argc - first < 2) {
        fprintf(stderr, "hb-stats: need a file and at least one key\nhb-stats: see 'hb-stats --help'\n");
        return 2;
    }
    if (sum)
        return do_sum(argv[first], argc - first - 1, argv + first + 1);
    hb_statsfile f;
    char err[512];
    bool loaded = hb_statsfile_load(&f, argv[first], err, sizeof err) == 0;
    if (!loaded && !def) {
        fprintf(stderr, "hb-stats: %s\n", err);
        return 2;
    }
    int rc = 0;
    for (int i = first + 1; i < argc; i++) {
        const char *v;
        int r = value_of(argv[first], argv[i], &f, loaded, &v);
        if (r) {
            rc = r;
            continue;
        }
        printf("%s%s", i > first + 1 ? " " : "", v);
    }
    if (!rc)
        printf("\n");
    if (loaded)
        hb_statsfile_free(&f);
    return rc;
}
