/* agent.h -- hb-client --agent redis://HOST:PORT: one machine of the load
 * fleet, steered through Redis (the records are proto/fleet.h; the task
 * manager is hb-fleet, tools/fleet.c).
 *
 * The agent registers itself (a lease: a key with a TTL, renewed ten times a
 * second), watches the task and, for each task version it has not played
 * yet, claims a slice of the uids (HB_FLEET_CLAIM, atomic: no two agents
 * hold one slice; a dead agent's slice is free once its lease ran out) and
 * starts an ordinary hb-client process for it (this same binary) with the
 * task's servers, users, first rate, rate history (--plan), start second
 * (--start-at) and end (--stop-at), and a pipe for commands (command.h):
 * rate changes the task announces, pause, resume, stop.  When that process
 * ends, its final stats file and raw latency histogram go back to Redis
 * under the version it played; the agent then waits for the next version.
 *
 * Why a process per task: the client's counters, histograms and connections
 * belong to one run; a fresh process starts each task from zero and a crash
 * of one run does not take the agent with it.  The child dies with the agent
 * (PR_SET_PDEATHSIG, and end of file on its pipe), and the agent stops it
 * when it cannot renew its lease: a slice handed to another agent is never
 * played twice.
 *
 * Options not about the agent (--secret, --source, --threads, --tick,
 * --connect-rate, --monitor, --drain, --control, --echo, --config ...) are
 * passed to every run;
 * what the task decides (--server, --port, --users, --uid-from/to, --qps,
 * --groups, --duration ...) may not be given. */
#ifndef CL_AGENT_H
#define CL_AGENT_H

#include "client.h"

/* Runs until SIGINT/SIGTERM (a run in progress is stopped and reported
 * first).  Returns the process's exit status. */
int cl_agent_run(const cl_config *c, int argc, char **argv);

#endif
