/* conf.h -- flags and config files, one table per binary.
 *
 * Every setting is one hb_opt row.  It can be given as a flag
 * (`--name value`, `--name=value`, `--flag` / `--no-flag`) or as a line
 * `name = value` of a config file named by `--config FILE`.  The file is read
 * first, so flags override it.  `--help` is generated from the same table and
 * shows each setting's current (default) value. */
#ifndef HB_CONF_H
#define HB_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hb_opt_type {
    HB_OPT_INT,    /* int64_t *dst, range-checked */
    HB_OPT_DOUBLE, /* double *dst, range-checked */
    HB_OPT_STR,    /* char **dst (points into argv or a strdup) */
    HB_OPT_BOOL,   /* bool *dst */
};

typedef struct hb_opt {
    const char *name;
    enum hb_opt_type type;
    void *dst;
    const char *arg;  /* placeholder shown in --help, e.g. "N" */
    const char *help; /* one line */
    double min, max;  /* inclusive range for numbers */
} hb_opt;

typedef struct hb_cli {
    const char *synopsis;    /* "hb-server [OPTIONS]" */
    const char *description; /* paragraph(s) after the usage line */
    const char *epilog;      /* examples, shown after the options; may be NULL */
    const hb_opt *opts;      /* terminated by a row with name == NULL */
} hb_cli;

/* Parse.  Exits 0 after --help, exits 2 with a clear message on any bad flag,
 * value or config line.  Returns the index of the first positional argument
 * (argc if none). */
int hb_cli_parse(const hb_cli *cli, int argc, char **argv);

/* Apply one `name = value` setting (used by the parser; exposed for tests).
 * Returns 0 or -1 with a message in err. */
int hb_opt_set(const hb_opt *opts, const char *name, const char *value, char *err, size_t errlen);

/* Parse a config file; 0 or -1 with "file:line: message" in err. */
int hb_conf_load(const hb_opt *opts, const char *path, char *err, size_t errlen);

#endif
