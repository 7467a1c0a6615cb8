/* control.h -- the client's HTTP control interface (libmicrohttpd):
 *   GET  /stats    JSON: connected, target and actual rate, wins, amounts,
 *                  errors, latency percentiles, clock offset
 *   POST /qps      new aggregate rate: ?qps=N[&at=UNIXSECOND] or a JSON body
 *                  {"qps": N, "at": T}; applied at second `at` (default: the
 *                  next second) by every client that gets it.  Changes wait
 *                  in a queue of CL_CHANGES_MAX, one per second (a second
 *                  change for the same second replaces it), each applied at
 *                  its own second; GET /stats lists them ("queued").  A full
 *                  queue answers 409 and keeps what it has.
 *   POST /pause, POST /resume
 * Off unless --control ADDR:PORT is given. */
#ifndef CL_CONTROL_H
#define CL_CONTROL_H

#include <stddef.h>
#include "client.h"

int cl_control_start(cl_client *cl, const char *addr, char *err, size_t errlen);
void cl_control_stop(void);

#endif
