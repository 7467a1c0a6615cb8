/* fleet.h -- the load fleet's records in Redis, shared by the agents
 * (hb-client --agent, client/agent.c) and the task manager (hb-fleet,
 * tools/fleet.c).  Everything is under HB_FLEET_PREFIX:
 *
 *   task             hash, the current task: version, server, port, users,
 *                    qps (the first rate), groups, slices, start (unix
 *                    second), duration (s, 0 = until stopped), status
 *                    (running | paused | stopped), rates ("T:QPS,..." every
 *                    rate change announced, ascending), stopped_at
 *   version          counter: a new task takes the next version
 *   agent:NAME       string with a TTL (the agent's lease): what it does now
 *   agents           sorted set NAME -> unix ms last seen (for listing)
 *   v:V:slices       hash slice -> agent holding it in version V
 *   v:V:claims       hash agent -> slice, every agent that ever held one in
 *                    V (so one that died without reporting is named)
 *   v:V:results      hash agent -> its result: the final stats file of its
 *                    run ("name value" lines, proto/statsfile.h) plus agent,
 *                    slice, uid_from, uid_to, exit_status and latency_hist
 *                    (hb_hist_encode: the raw buckets) lines
 *
 * Invariants.  A slice is held by one agent at a time: HB_FLEET_CLAIM hands
 * out a slice only when it is free or its holder's lease (agent:NAME) has
 * expired, atomically (one Lua script).  An agent plays uids only while its
 * lease is fresh (it stops its run when it cannot renew it), so a slice
 * claimed again after a lease ran out is no longer played by the old
 * holder.  Nothing of version V is ever written under another version's
 * keys, so two tasks never mix.  Version keys expire HB_FLEET_KEEP_S after
 * their last write. */
#ifndef HB_FLEET_H
#define HB_FLEET_H

#define HB_FLEET_PREFIX "hb:fleet:"
#define HB_FLEET_TASK HB_FLEET_PREFIX "task"
#define HB_FLEET_VERSION HB_FLEET_PREFIX "version"
#define HB_FLEET_AGENT HB_FLEET_PREFIX "agent:" /* + NAME */
#define HB_FLEET_AGENTS HB_FLEET_PREFIX "agents"
#define HB_FLEET_KEEP_S 604800 /* a week */
#define HB_FLEET_NAME_MAX 64

/* "hb:fleet:v:V:WHAT" */
#define HB_FLEET_VKEY_FMT HB_FLEET_PREFIX "v:%lld:%s"

/* KEYS: v:V:slices, v:V:claims.  ARGV: agent name, number of slices, the
 * lease key prefix (HB_FLEET_AGENT), keep seconds.  Returns the slice this
 * agent holds in V (the one it held already, or a free one, or one whose
 * holder's lease expired), -1 when every slice is held by a live agent, -2
 * when this agent held a slice in V that was given to another meanwhile
 * (its lease ran out: it must not play again in V). */
#define HB_FLEET_CLAIM                                                              \
    "local me, n = ARGV[1], tonumber(ARGV[2])\n"                                    \
    "local mine = redis.call('HGET', KEYS[2], me)\n"                                \
    "if mine then\n"                                                                \
    "  if redis.call('HGET', KEYS[1], mine) == me then return tonumber(mine) end\n" \
    "  return -2\n"                                                                 \
    "end\n"                                                                         \
    "for s = 0, n - 1 do\n"                                                         \
    "  local o = redis.call('HGET', KEYS[1], tostring(s))\n"                        \
    "  if not o or redis.call('EXISTS', ARGV[3] .. o) == 0 then\n"                  \
    "    redis.call('HSET', KEYS[1], tostring(s), me)\n"                            \
    "    redis.call('HSET', KEYS[2], me, tostring(s))\n"                            \
    "    redis.call('EXPIRE', KEYS[1], ARGV[4]); redis.call('EXPIRE', KEYS[2], ARGV[4])\n" \
    "    return s\n"                                                                \
    "  end\n"                                                                       \
    "end\n"                                                                         \
    "return -1\n"

/* Slice s of k over users [0, users): [from, to). */
static inline void hb_fleet_slice(long long users, long long k, long long s, long long *from, long long *to)
{
    *from = users * s / k;
    *to = users * (s + 1) / k;
}

#endif
