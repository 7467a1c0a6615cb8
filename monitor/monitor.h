/* monitor.h -- the state hb-monitor shares between its two threads: the main
 * thread (UDP reports, the once-a-second merge, the log) writes it, the
 * libmicrohttpd thread (/metrics, the dashboard) reads it, both under `mu`.
 * Everything else in monitor/ is single-threaded and lock-free. */
#ifndef MON_MONITOR_H
#define MON_MONITOR_H

#include <pthread.h>
#include <stdint.h>
#include "collect.h"
#include "history.h"

typedef struct mon_state {
    pthread_mutex_t mu;
    mon_collect *col;
    mon_history hist;
    int64_t start_time; /* unix second */
    int settle;
    const char *web_dir; /* the dashboard's files */
} mon_state;

#endif
