"""The bot's state in Redis, for workers on many machines (`DOCKERCISE_REDIS_URL`).

Same contract as the SQLite `State` (see `bot.state.StateStore`).  Where SQLite
relied on a transaction, a Lua script runs instead (Redis runs each one
atomically): claiming a queued build, recording a delivery, receiving an
event, taking a dead build.  Times come from the Redis server's clock, so
heartbeats written on one machine and judged stale on another agree.

Keys, all under `dockercise:`:

- `build:<id>` hash: the job (JSON), status, worker, heartbeat, attempts, ...
- `builds` sorted set of build ids by creation time (`recent`);
  `running` set of running build ids (`stale`); `delivery:<id>` -> build id;
  `unhanded` sorted set of builds not on the queue yet, scored by the time
  from which an announcer may claim them (`claim_unannounced`)
- `pipeline:<repo>` hash and `pipelines` (repos, lexically ordered)
- `event:<run id>` (JSON) and `green:<pipeline>` / `green:<pipeline>:<ref>`:
  run ids of green builds, all scored 0 so ZRANGEBYLEX finds the first after one;
  `events` sorted set of run ids by the time their event came (`prune`)
- `lease:<name>`: a chore's lease, expiring by itself
"""

from __future__ import annotations

import json
from typing import Any

import redis

from bot.state import ANNOUNCE_LEASE, PRUNE_BATCH, Build, Job, Known

__all__ = ["PREFIX", "RedisState"]

PREFIX = "dockercise:"

_NOW = """
local t = redis.call('TIME')
local now = string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000)
"""

_RECORD = (
    _NOW
    + """
if ARGV[5] ~= '' then
  local existing = redis.call('GET', KEYS[2])
  if existing then
    local build = ARGV[6] .. 'build:' .. existing
    if redis.call('HGET', build, 'status') == 'queued' then
      return {'again', redis.call('HGET', build, 'job')}
    end
    return {'refused', 'duplicate delivery'}
  end
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'delivery', ARGV[5])
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'job', ARGV[2], 'repo', ARGV[3], 'sha', ARGV[4],
           'status', 'queued', 'attempts', 0, 'created', now)
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZADD', KEYS[4], now, ARGV[1])
return false
"""
)

_START = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[2], 'heartbeat', now)
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""
)

_BEAT = (
    _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'heartbeat', now) end
"""
)

_TAKE_STALE = (
    _NOW
    + """
local fields = redis.call('HMGET', KEYS[1], 'status', 'heartbeat')
if fields[1] ~= 'running' or not fields[2] then return 0 end
if tonumber(fields[2]) >= tonumber(now) - tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'heartbeat', now)
return 1
"""
)

_SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

_FINISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return end
redis.call('HSET', KEYS[1], 'status', 'done', 'state', ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
"""

_REQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'worker', 'run_id')
redis.call('SREM', KEYS[2], ARGV[1])
"""

_WATCHED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local previous = redis.call('HGET', KEYS[1], 'watched')
redis.call('HSET', KEYS[1], 'watched', ARGV[1])
return previous
"""

_RECEIVE = (
    _NOW
    + """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('ZADD', KEYS[4], now, ARGV[2])
if ARGV[3] == 'success' then
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
  redis.call('ZADD', KEYS[3], 0, ARGV[2])
end
return 1
"""
)

_PRUNE = (
    _NOW
    + """
local cutoff = tonumber(now) - tonumber(ARGV[1])
local prefix = ARGV[3]
local forgotten = 0
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local fields = redis.call('HMGET', prefix .. 'build:' .. id, 'status', 'delivery')
  if fields[1] == 'done' or not fields[1] then
    if fields[2] and redis.call('GET', prefix .. 'delivery:' .. fields[2]) == id then
      redis.call('DEL', prefix .. 'delivery:' .. fields[2])
    end
    redis.call('DEL', prefix .. 'build:' .. id)
    redis.call('ZREM', KEYS[1], id)
    forgotten = forgotten + 1
  end
end
local runs = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[2]))
for _, run in ipairs(runs) do
  local text = redis.call('GET', prefix .. 'event:' .. run)
  if text then
    local event = cjson.decode(text)
    redis.call('ZREM', prefix .. 'green:' .. event['pipeline'], run)
    redis.call('ZREM', prefix .. 'green:' .. event['pipeline'] .. ':' .. event['ref'], run)
    redis.call('DEL', prefix .. 'event:' .. run)
  end
  redis.call('ZREM', KEYS[2], run)
end
return forgotten
"""
)

_CLAIM = (
    _NOW
    + """
local jobs = {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  local fields = redis.call('HMGET', ARGV[3] .. 'build:' .. id, 'status', 'job')
  if fields[1] == 'queued' then
    redis.call('ZADD', KEYS[1], tonumber(now) + tonumber(ARGV[2]), id)
    table.insert(jobs, fields[2])
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return jobs
"""
)

_STALE = (
    _NOW
    + """
local found = {}
local cutoff = tonumber(now) - tonumber(ARGV[1])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fields = redis.call('HMGET', ARGV[2] .. 'build:' .. id, 'status', 'heartbeat')
  if fields[1] == 'running' and fields[2] and tonumber(fields[2]) < cutoff then
    table.insert(found, id)
  end
end
return found
"""
)


class RedisState:
    """The bot's state shared through one Redis; close() it when done (it holds connections)."""

    def __init__(self, url: str, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.redis: redis.Redis = redis.Redis.from_url(url, decode_responses=True)
        script = self.redis.register_script
        self._record = script(_RECORD)
        self._start = script(_START)
        self._beat = script(_BEAT)
        self._take_stale = script(_TAKE_STALE)
        self._set_if_exists = script(_SET_IF_EXISTS)
        self._finish = script(_FINISH)
        self._requeue = script(_REQUEUE)
        self._watched = script(_WATCHED)
        self._receive = script(_RECEIVE)
        self._stale = script(_STALE)
        self._claim = script(_CLAIM)
        self._prune = script(_PRUNE)

    def close(self) -> None:
        self.redis.close()

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # --- builds -----------------------------------------------------------------

    def record(self, job: Job) -> Job | str:
        """Remember a new build: the build to queue, or why there is none.

        A redelivered event whose build started already is a duplicate; one
        whose build never started is that build again (its task is idempotent):
        the caller queues what this returns, not its own copy.
        """
        answer = self._record(
            keys=[
                self._key("build", job.id),
                self._key("delivery", job.delivery or ""),
                self._key("builds"),
                self._key("unhanded"),
            ],
            args=[job.id, job.to_json(), job.repo, job.sha, job.delivery or "", self.prefix],
        )
        if not answer:
            return job
        kind, text = (str(part) for part in answer)
        return Job.from_json(text) if kind == "again" else text

    def handed_over(self, build_id: str) -> None:
        """The build's task is on the queue (after the `pending` status, so never before it)."""
        self.redis.zrem(self._key("unhanded"), build_id)

    def claim_unannounced(self, limit: int, lease: float = ANNOUNCE_LEASE) -> list[Job]:
        """Take up to `limit` recorded builds that are not on the queue yet, oldest first;
        each is offered again `lease` seconds later unless handed over by then."""
        texts = self._claim(keys=[self._key("unhanded")], args=[limit, lease, self.prefix])
        return [Job.from_json(str(t)) for t in texts]

    def start(self, build_id: str, worker: str) -> bool:
        """Claim a queued build for this worker; False when another has it or it is done."""
        claimed = self._start(
            keys=[self._key("build", build_id), self._key("running")], args=[build_id, worker]
        )
        return bool(claimed)

    def beat(self, build_id: str) -> None:
        self._beat(keys=[self._key("build", build_id)])

    def set_run(self, build_id: str, run_id: str) -> None:
        self._set_if_exists(keys=[self._key("build", build_id)], args=["run_id", run_id])

    def finish(self, build_id: str, state: str) -> None:
        self._finish(
            keys=[self._key("build", build_id), self._key("running")], args=[build_id, state]
        )

    def requeue(self, build_id: str) -> None:
        self._requeue(keys=[self._key("build", build_id), self._key("running")], args=[build_id])

    def stale(self, older_than: float) -> list[Build]:
        """Running builds whose worker has not said it is alive for `older_than` seconds."""
        ids = self._stale(keys=[self._key("running")], args=[older_than, self.prefix])
        found = self._load([str(i) for i in ids])
        return sorted(found, key=lambda b: b.heartbeat or 0.0)

    def take_stale(self, build_id: str, older_than: float) -> bool:
        """Take a dead build for settling: True for one caller; it beats the heartbeat now,
        so the other workers' reapers, running at the same moment, leave it alone."""
        return bool(self._take_stale(keys=[self._key("build", build_id)], args=[older_than]))

    def running(self) -> list[Build]:
        """Every build a worker is on now (or was, if it died), oldest first."""
        ids = [str(i) for i in self.redis.smembers(self._key("running"))]
        scores = self.redis.zmscore(self._key("builds"), ids) if ids else []
        by_age = sorted(zip(scores, ids, strict=True), key=lambda pair: pair[0] or 0.0)
        return [b for b in self._load([i for _, i in by_age]) if b.status == "running"]

    def get(self, build_id: str) -> Build | None:
        found = self._load([build_id])
        return found[0] if found else None

    def recent(self, limit: int = 20) -> list[Build]:
        if limit <= 0:
            return []
        ids = self.redis.zrevrange(self._key("builds"), 0, limit - 1)
        return self._load([str(i) for i in ids])

    def _load(self, ids: list[str]) -> list[Build]:
        pipe = self.redis.pipeline(transaction=False)
        for build_id in ids:
            pipe.hgetall(self._key("build", build_id))
        return [_build(fields) for fields in pipe.execute() if fields]

    # --- pipelines the bot knows (upstream subscriptions, schedules) ------------

    def remember(
        self,
        repo: str,
        clone_url: str,
        installation_id: int | None,
        upstream: tuple[str, ...],
        cron: str | None,
        watch: str | None,
    ) -> None:
        """Learn a repository's triggers each time its pipeline is loaded (kept across restarts)."""
        key = self._key("pipeline", repo)
        values = {"installation_id": installation_id, "cron": cron, "watch": watch}
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"clone_url": clone_url, "upstream": json.dumps(list(upstream))})
        for name, value in values.items():
            if value is None:
                pipe.hdel(key, name)
            else:
                pipe.hset(key, name, str(value))
        pipe.zadd(self._key("pipelines"), {repo: 0})
        pipe.execute()

    def known(self) -> list[Known]:
        repos = [str(r) for r in self.redis.zrange(self._key("pipelines"), 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for repo in repos:
            pipe.hgetall(self._key("pipeline", repo))
        return [
            _known(repo, fields)
            for repo, fields in zip(repos, pipe.execute(), strict=True)
            if fields
        ]

    def subscribers(self, upstream: str) -> list[Known]:
        return [k for k in self.known() if upstream.lower() in (u.lower() for u in k.upstream)]

    def scheduled(self, repo: str, when: float) -> None:
        self._set_if_exists(keys=[self._key("pipeline", repo)], args=["scheduled", repr(when)])

    def watched(self, repo: str, output: str) -> str | None:
        """Store the watch stage's output; return the previous one."""
        previous = self._watched(keys=[self._key("pipeline", repo)], args=[output])
        return None if previous is None else str(previous)

    # --- remote-build-complete events received ----------------------------------

    def receive(
        self, run_id: str, pipeline: str, ref: str, sha: str, status: str, url: str
    ) -> bool:
        """Record an event; False when this run's event was received already."""
        pipeline = pipeline.lower()
        event = {"pipeline": pipeline, "ref": ref, "sha": sha, "status": status, "url": url}
        fresh = self._receive(
            keys=[
                self._key("event", run_id),
                self._key("green", pipeline),
                self._key("green", pipeline, ref),
                self._key("events"),
            ],
            args=[json.dumps(event), run_id, status],
        )
        return bool(fresh)

    def green_since(self, pipeline: str, branch: str | None, run_id_after: str) -> str | None:
        """The run id of a green build of `pipeline` that started after `run_id_after`.

        Run ids sort by start time, so "started after" is the next member in lexical order.
        """
        parts = [pipeline.lower()] + ([f"refs/heads/{branch}"] if branch is not None else [])
        found = self.redis.zrangebylex(
            self._key("green", *parts), f"({run_id_after}", "+", start=0, num=1
        )
        return str(found[0]) if found else None

    # --- chores one worker of many does (the minutely reap and schedule tick) ----

    def prune(self, older_than: float) -> int:
        """Forget finished builds and received events older than `older_than` seconds
        (up to PRUNE_BATCH of each a call); the number of builds forgotten."""
        forgotten = self._prune(
            keys=[self._key("builds"), self._key("events")],
            args=[older_than, PRUNE_BATCH, self.prefix],
        )
        return int(forgotten)

    def lease(self, name: str, seconds: float) -> bool:
        """Take the lease on chore `name` for `seconds`; False while another holder's runs.

        Every consumer enqueues the minutely chore; the lease lets one of them do it.
        """
        taken = self.redis.set(self._key("lease", name), "1", nx=True, px=int(seconds * 1000))
        return bool(taken)


def _optional_float(text: str | None) -> float | None:
    return float(text) if text is not None else None


def _build(fields: dict[str, Any]) -> Build:
    return Build(
        job=Job.from_json(fields["job"]),
        status=fields["status"],
        run_id=fields.get("run_id"),
        worker=fields.get("worker"),
        heartbeat=_optional_float(fields.get("heartbeat")),
        attempts=int(fields.get("attempts", 0)),
        state=fields.get("state"),
    )


def _known(repo: str, fields: dict[str, Any]) -> Known:
    installation = fields.get("installation_id")
    return Known(
        repo=repo,
        clone_url=fields["clone_url"],
        installation_id=int(installation) if installation is not None else None,
        upstream=tuple(json.loads(fields.get("upstream", "[]"))),
        cron=fields.get("cron"),
        watch=fields.get("watch"),
        scheduled=_optional_float(fields.get("scheduled")),
        watched=fields.get("watched"),
    )
