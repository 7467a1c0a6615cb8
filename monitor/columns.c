/* columns.c -- the column table of columns.h. */
#include "columns.h"

const char *const mon_col_name[MON_NCOLS] = {
#define X(name, expr, help) #name,
    MON_COLUMNS(X)
#undef X
};

const char *const mon_col_help[MON_NCOLS] = {
#define X(name, expr, help) help,
    MON_COLUMNS(X)
#undef X
};

void mon_row_values(const mon_row *r, uint64_t out[MON_NCOLS])
{
    int i = 0;
#define X(name, expr, help) out[i++] = (expr);
    MON_COLUMNS(X)
#undef X
}
