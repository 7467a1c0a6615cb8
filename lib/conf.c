/* conf.c -- flags and `name = value` config files from one option table. */
#include "conf.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Strings given to settings live for the whole run; they are kept on this
 * list so they stay reachable (a leak checker sees them as owned, not lost). */
static char **owned;
static size_t nowned;

static char *own(const char *v)
{
    char *copy = strdup(v);
    char **n = copy ? realloc(owned, (nowned + 1) * sizeof *owned) : NULL;
    if (!n) {
        free(copy);
        return NULL;
    }
    owned = n;
    owned[nowned++] = copy;
    return copy;
}

static const hb_opt *find(const hb_opt *opts, const char *name, size_t len)
{
    for (const hb_opt *o = opts; o->name; o++)
        if (strlen(o->name) == len && memcmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        *out = true;
    else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
        *out = false;
    else
        return -1;
    return 0;
}

static void range_text(const hb_opt *o, char *buf, size_t n)
{
    if (o->type == HB_OPT_INT)
        snprintf(buf, n, "%.0f..%.0f", o->min, o->max);
    else
        snprintf(buf, n, "%g..%g", o->min, o->max);
}

int hb_opt_set(const hb_opt *opts, const char *name, const char *value, char *err, size_t errlen)
{
    const hb_opt *o = find(opts, name, strlen(name));
    if (!o) {
        snprintf(err, errlen, "unknown setting '%s'", name);
        return -1;
    }
    char range[64];
    switch (o->type) {
    case HB_OPT_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end) {
            snprintf(err, errlen, "--%s: '%s' is not a whole number", name, value);
            return -1;
        }
        if ((double)v < o->min || (double)v > o->max) {
            range_text(o, range, sizeof range);
            snprintf(err, errlen, "--%s: %lld is out of range (%s)", name, v, range);
            return -1;
        }
        *(int64_t *)o->dst = v;
        return 0;
    }
    case HB_OPT_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v)) {
            snprintf(err, errlen, "--%s: '%s' is not a number", name, value);
            return -1;
        }
        if (v < o->min || v > o->max) {
            range_text(o, range, sizeof range);
            snprintf(err, errlen, "--%s: %g is out of range (%s)", name, v, range);
            return -1;
        }
        *(double *)o->dst = v;
        return 0;
    }
    case HB_OPT_STR: {
        char *copy = own(value);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        *(char **)o->dst = copy;
        return 0;
    }
    case HB_OPT_BOOL:
        if (parse_bool(value, o->dst) < 0) {
            snprintf(err, errlen, "--%s: '%s' is not true/false", name, value);
            return -1;
        }
        return 0;
    }
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

int hb_conf_load(const hb_opt *opts, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024], msg[512];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected 'name = value'", path, lineno);
            rc = -1;
            break;
        }
        *eq = 0;
        char *name = trim(s), *value = trim(eq + 1);
        /* Allow the flag spelling too: "--sets = 4". */
        while (*name == '-')
            name++;
        if (!strcmp(name, "config")) {
            snprintf(err, errlen, "%s:%d: a config file cannot name another", path, lineno);
            rc = -1;
            break;
        }
        if (hb_opt_set(opts, name, value, msg, sizeof msg) < 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

static void print_help(const hb_cli *cli)
{
    printf("Usage: %s\n\n%s\n\nOptions (flags override settings from --config FILE):\n", cli->synopsis,
           cli->description);
    printf("  %-26s %s\n", "--help", "show this help and exit");
    printf("  %-26s %s\n", "--config FILE", "read 'name = value' settings from FILE first");
    printf("  %-26s %s\n", "--print-config", "print the settings in effect (file and flags) as a config file and exit");
    for (const hb_opt *o = cli->opts; o->name; o++) {
        char left[64], def[96] = "";
        if (o->type == HB_OPT_BOOL)
            snprintf(left, sizeof left, "--[no-]%s", o->name);
        else
            snprintf(left, sizeof left, "--%s %s", o->name, o->arg ? o->arg : "X");
        switch (o->type) {
        case HB_OPT_INT: snprintf(def, sizeof def, " (default %lld)", (long long)*(int64_t *)o->dst); break;
        case HB_OPT_DOUBLE: snprintf(def, sizeof def, " (default %g)", *(double *)o->dst); break;
        case HB_OPT_STR:
            if (*(char **)o->dst)
                snprintf(def, sizeof def, " (default %s)", *(char **)o->dst);
            break;
        case HB_OPT_BOOL: snprintf(def, sizeof def, " (default %s)", *(bool *)o->dst ? "on" : "off"); break;
        }
        printf("  %-26s %s%s\n", left, o->help, def);
    }
    if (cli->epilog)
        printf("\n%s\n", cli->epilog);
}

/* --print-config: every setting as `name = value`, a config file that gives
 * the same settings; an unset string, or a number left at a default outside
 * its range (a "not given" marker such as uid-to 0), is a comment. */
static void print_config(const hb_cli *cli)
{
    for (const hb_opt *o = cli->opts; o->name; o++) {
        switch (o->type) {
        case HB_OPT_INT: {
            long long v = (long long)*(int64_t *)o->dst;
            bool in = (double)v >= o->min && (double)v <= o->max;
            printf("%s%s = %lld%s\n", in ? "" : "# ", o->name, v, in ? "" : " (not given)");
            break;
        }
        case HB_OPT_DOUBLE: {
            double v = *(double *)o->dst;
            bool in = v >= o->min && v <= o->max;
            printf("%s%s = %.17g%s\n", in ? "" : "# ", o->name, v, in ? "" : " (not given)");
            break;
        }
        case HB_OPT_BOOL: printf("%s = %s\n", o->name, *(bool *)o->dst ? "true" : "false"); break;
        case HB_OPT_STR:
            if (*(char **)o->dst)
                printf("%s = %s\n", o->name, *(char **)o->dst);
            else
                printf("# %s = (not set)\n", o->name);
            break;
        }
    }
}

static void usage_error(const char *msg)
{
    fprintf(stderr, "%s: %s\n%s: see '%s --help'\n", hb_prog, msg, hb_prog, hb_prog);
    exit(2);
}

int hb_cli_parse(const hb_cli *cli, int argc, char **argv)
{
    char err[600];
    /* --help anywhere wins; --config is applied before every other flag. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_help(cli);
            exit(0);
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc)
                usage_error("--config needs a file name");
            path = argv[i + 1];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            path = argv[i] + 9;
        }
        if (path && hb_conf_load(cli->opts, path, err, sizeof err) < 0)
            usage_error(err);
    }
    int i = 1;
    bool print = false;
    for (; i < argc; i++) {
        char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (strncmp(a, "--", 2) != 0)
            break; /* first positional argument */
        char *name = a + 2, *value = NULL;
        char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen == 6 && !strncmp(name, "config", 6)) {
            if (!eq)
                i++;
            continue;
        }
        if (!eq && !strcmp(name, "print-config")) {
            print = true;
            continue;
        }
        const hb_opt *o = find(cli->opts, name, nlen);
        if (!o && nlen > 3 && !strncmp(name, "no-", 3)) {
            const hb_opt *b = find(cli->opts, name + 3, nlen - 3);
            if (b && b->type == HB_OPT_BOOL && !eq) {
                *(bool *)b->dst = false;
                continue;
            }
        }
        if (!o) {
            snprintf(err, sizeof err, "unknown option '--%.*s'", (int)nlen, name);
            usage_error(err);
        }
        if (eq) {
            value = eq + 1;
        } else if (o->type == HB_OPT_BOOL) {
            *(bool *)o->dst = true;
            continue;
        } else {
            if (i + 1 >= argc) {
                snprintf(err, sizeof err, "--%s needs a value (%s)", o->name, o->arg ? o->arg : "X");
                usage_error(err);
            }
            value = argv[++i];
        }
        if (hb_opt_set(cli->opts, o->name, value, err, sizeof err) < 0)
            usage_error(err);
    }
    if (print) {
        print_config(cli);
        exit(0);
    }
    return i;
}
