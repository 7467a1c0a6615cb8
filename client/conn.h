/* conn.h -- one connection of a client worker: connecting with back-off,
 * logging in, sending frames, reading and handling what the server sends
 * (conn.c).  Called on the worker's own thread only. */
#ifndef CL_CONN_H
#define CL_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include "worker.h"

/* Start a non-blocking connect for connection i (the worker paces these). */
void cl_conn_connect(cl_worker *w, uint32_t i);
/* Close and schedule a reconnect with exponential back-off and full jitter;
 * a no-op on an idle connection. */
void cl_conn_lost(cl_worker *w, cl_conn *c);
/* Close (if open) and reconnect as soon as the connect pacing allows. */
void cl_conn_reconnect_now(cl_worker *w, cl_conn *c);
/* Cluster: while users are parked because their owner is suspected, let
 * one of them try every CL_PROBE_US (its login brings the list that ends
 * the wait, or shows the suspect alive). */
void cl_members_probe(cl_worker *w, int64_t mono);
/* A connection whose back-off has ended by `mono` (monotonic us), if any. */
bool cl_backoff_due(cl_worker *w, int64_t mono, uint32_t *conn);
/* Write a frame (queued if the socket is full; a server that reads nothing
 * for 64 KiB loses the connection). */
/* False: it did not leave and never will (the connection broke). */
bool cl_conn_send(cl_worker *w, cl_conn *c, const Hb__Frame *f);
/* Send the connection's outstanding shake (c->seq), as a retry or not. */
void cl_conn_send_shake(cl_worker *w, cl_conn *c, bool retry);

#endif
