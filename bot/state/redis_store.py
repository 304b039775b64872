"""The bot's state in Redis, for workers on many machines (`DOCKERCISE_REDIS_URL`).

Same contract as the SQLite store (`bot.state.base.StateStore` documents each
method).  Where SQLite
relied on a transaction, a Lua script runs instead (Redis runs each one
atomically): claiming a queued build, recording a delivery, receiving an
event, taking a dead build.  Times come from the Redis server's clock, so
heartbeats written on one machine and judged stale on another agree.

Keys, all under `dockercise:`:

- `build:<id>` hash: the job (JSON), status, worker, heartbeat, attempts, ...
- `builds` sorted set of build ids by creation time (`recent`);
  `running` set of running build ids (`stale`); `delivery:<id>` -> build id;
  `unhanded` sorted set of builds not on the queue yet, scored by the time
  from which an announcer may claim them (`claim_unannounced`);
  `active:<repo>` sorted set of builds recorded and not yet seen done, by
  creation (`unfinished`, which drops the done ones); `commit:<repo>:<sha>`
  sorted set of a commit's builds (`builds_of`), expiring KEEP_COMMITS after
  its last build; `waiting:<repo>:<number>` sorted set of a pull request's
  builds finished `waiting`, by creation (`waiting`, which drops those no
  longer waiting or approved), expiring KEEP_COMMITS after its last one
- `pipeline:<repo>` hash and `pipelines` (repos, lexically ordered)
- `event:<run id>` (JSON) and `green:<pipeline>` / `green:<pipeline>:<ref>`:
  run ids of green builds, all scored 0 so ZRANGEBYLEX finds the first after one;
  `events` sorted set of run ids by the time their event came (`prune`)
- `lease:<name>`: a chore's lease, expiring by itself
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

import bot.state.redis_scripts as lua
from bot.jobs import Job
from bot.state.base import (
    ANNOUNCE_LEASE,
    PRUNE_BATCH,
    WAITING,
    WAITING_LIMIT,
    Build,
    Claim,
    Known,
    Phase,
    StateStore,
    approved_id,
    waited_id,
)

__all__ = ["PREFIX", "RedisState"]

PREFIX = "dockercise:"
KEEP_COMMITS = 60 * 86400
"""Seconds a commit's list of builds outlives its newest build (its builds are pruned sooner)."""


class RedisState(StateStore):
    """The bot's state shared through one Redis; close() it when done (it holds connections)."""

    def __init__(self, url: str, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.redis: redis.Redis = redis.Redis.from_url(url, decode_responses=True)
        script = self.redis.register_script
        self._record = script(lua.RECORD)
        self._start = script(lua.START)
        self._beat = script(lua.BEAT)
        self._take_stale = script(lua.TAKE_STALE)
        self._set_if_exists = script(lua.SET_IF_EXISTS)
        self._finish = script(lua.FINISH)
        self._requeue = script(lua.REQUEUE)
        self._watched = script(lua.WATCHED)
        self._receive = script(lua.RECEIVE)
        self._stale = script(lua.STALE)
        self._claim = script(lua.CLAIM)
        self._prune = script(lua.PRUNE)
        self._cancel = script(lua.CANCEL)
        self._end_waiting = script(lua.END_WAITING)

    def close(self) -> None:
        self.redis.close()

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # --- builds -----------------------------------------------------------------

    def record(self, job: Job) -> Job | str:
        waited = (None if job.approved_by is None else waited_id(job.id)) or ""
        answer = self._record(
            keys=[
                self._key("build", job.id),
                self._key("delivery", job.delivery or ""),
                self._key("builds"),
                self._key("unhanded"),
                self._key("build", waited),
            ],
            args=[
                job.id,
                job.to_json(),
                job.repo,
                job.sha,
                job.delivery or "",
                self.prefix,
                waited,
            ],
        )
        if not answer:
            now = time.time()
            commit = self._key("commit", job.repo, job.sha)
            pipe = self.redis.pipeline(transaction=False)
            pipe.zadd(self._key("active", job.repo), {job.id: now})
            pipe.zadd(commit, {job.id: now})
            pipe.expire(commit, KEEP_COMMITS)
            pipe.execute()
            return job
        kind, text = (str(part) for part in answer)
        return Job.from_json(text) if kind == "again" else text

    def handed_over(self, build_id: str) -> None:
        self.redis.zrem(self._key("unhanded"), build_id)

    def claim_unannounced(self, limit: int, lease: float = ANNOUNCE_LEASE) -> list[Claim]:
        found = self._claim(keys=[self._key("unhanded")], args=[limit, lease, self.prefix])
        return [Claim(Job.from_json(str(text)), int(tries)) for text, tries in found]

    def start(self, build_id: str, worker: str) -> bool:
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
            keys=[self._key("build", build_id), self._key("running")],
            args=[build_id, state, self.prefix, KEEP_COMMITS],
        )

    def requeue(self, build_id: str) -> None:
        self._requeue(keys=[self._key("build", build_id), self._key("running")], args=[build_id])

    def stale(self, older_than: float) -> list[Build]:
        ids = self._stale(keys=[self._key("running")], args=[older_than, self.prefix])
        found = self._load([str(i) for i in ids])
        return sorted(found, key=lambda b: b.heartbeat or 0.0)

    def take_stale(self, build_id: str, older_than: float) -> bool:
        return bool(self._take_stale(keys=[self._key("build", build_id)], args=[older_than]))

    def running(self) -> list[Build]:
        ids = [str(i) for i in self.redis.smembers(self._key("running"))]
        scores = self.redis.zmscore(self._key("builds"), ids) if ids else []
        by_age = sorted(zip(scores, ids, strict=True), key=lambda pair: pair[0] or 0.0)
        return [b for b in self._load([i for _, i in by_age]) if b.status is Phase.RUNNING]

    def get(self, build_id: str) -> Build | None:
        found = self._load([build_id])
        return found[0] if found else None

    def recent(self, limit: int = 20) -> list[Build]:
        if limit <= 0:
            return []
        ids = self.redis.zrevrange(self._key("builds"), 0, limit - 1)
        return self._load([str(i) for i in ids])

    def request_cancel(self, build_id: str, why: str) -> Phase | None:
        status = self._cancel(keys=[self._key("build", build_id)], args=[why])
        return Phase(str(status)) if status else None

    def cancel_requested(self, build_id: str) -> str | None:
        found = self.redis.hget(self._key("build", build_id), "cancel")
        return None if found is None else str(found)

    def unfinished(self, repo: str) -> list[Build]:
        key = self._key("active", repo)
        ids = [str(i) for i in self.redis.zrange(key, 0, -1)]
        builds = self._load(ids)
        done = [b.job.id for b in builds if b.status is Phase.DONE]
        gone = set(ids) - {b.job.id for b in builds}
        if done or gone:
            self.redis.zrem(key, *done, *gone)
        return [b for b in builds if b.status is not Phase.DONE]

    def builds_of(self, repo: str, sha: str) -> list[Build]:
        ids = self.redis.zrevrange(self._key("commit", repo, sha), 0, -1)
        return self._load([str(i) for i in ids])

    def waiting(self, repo: str, number: int) -> list[Build]:
        key = self._key("waiting", repo, str(number))
        while True:  # each round drops what no longer waits, for good: amortised
            ids = [str(i) for i in self.redis.zrange(key, 0, WAITING_LIMIT - 1)]
            pipe = self.redis.pipeline(transaction=False)
            for build_id in ids:
                pipe.hgetall(self._key("build", build_id))
                pipe.exists(self._key("build", approved_id(build_id)))
            answers = pipe.execute()
            builds = [
                _build(fields) if fields and not twin and fields.get("state") == WAITING else None
                for fields, twin in zip(answers[::2], answers[1::2], strict=True)
            ]
            over = [i for i, b in zip(ids, builds, strict=True) if b is None]
            if over:
                self.redis.zrem(key, *over)
            if not over or len(ids) < WAITING_LIMIT:
                return [b for b in builds if b is not None]

    def end_waiting(self, build_id: str, state: str) -> bool:
        ended = self._end_waiting(
            keys=[self._key("build", build_id), self._key("build", approved_id(build_id))],
            args=[state],
        )
        return bool(ended)

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

    def scheduled(self, repo: str, when: float) -> None:
        self._set_if_exists(keys=[self._key("pipeline", repo)], args=["scheduled", repr(when)])

    def watched(self, repo: str, output: str) -> str | None:
        previous = self._watched(keys=[self._key("pipeline", repo)], args=[output])
        return None if previous is None else str(previous)

    # --- remote-build-complete events received ----------------------------------

    def receive(
        self, run_id: str, pipeline: str, ref: str, sha: str, status: str, url: str
    ) -> bool:
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
        # Run ids sort by start time, so "started after" is the next member in lexical order.
        parts = [pipeline.lower()] + ([f"refs/heads/{branch}"] if branch is not None else [])
        found = self.redis.zrangebylex(
            self._key("green", *parts), f"({run_id_after}", "+", start=0, num=1
        )
        return str(found[0]) if found else None

    # --- the results site: sign-in sessions, repositories' privacy -------------

    def put_session(self, key: str, data: str, ttl: float) -> None:
        self.redis.set(self._key("session", key), data, px=max(1, int(ttl * 1000)))

    def get_session(self, key: str) -> str | None:
        found = self.redis.get(self._key("session", key))
        return None if found is None else str(found)

    def drop_session(self, key: str) -> None:
        self.redis.delete(self._key("session", key))

    def set_private(self, repo: str, private: bool) -> None:
        self.redis.hset(self._key("privacy"), repo.lower(), "1" if private else "0")

    def is_private(self, repo: str) -> bool | None:
        found = self.redis.hget(self._key("privacy"), repo.lower())
        return None if found is None else found == "1"

    # --- chores one worker of many does (the minutely reap and schedule tick) ----

    def prune(self, older_than: float) -> int:
        forgotten = self._prune(
            keys=[self._key("builds"), self._key("events")],
            args=[older_than, PRUNE_BATCH, self.prefix],
        )
        return int(forgotten)

    def lease(self, name: str, seconds: float) -> bool:
        taken = self.redis.set(self._key("lease", name), "1", nx=True, px=int(seconds * 1000))
        return bool(taken)


def _optional_float(text: str | None) -> float | None:
    return float(text) if text is not None else None


def _build(fields: dict[str, Any]) -> Build:
    return Build(
        job=Job.from_json(fields["job"]),
        status=Phase(fields["status"]),
        run_id=fields.get("run_id"),
        worker=fields.get("worker"),
        heartbeat=_optional_float(fields.get("heartbeat")),
        attempts=int(fields.get("attempts", 0)),
        state=fields.get("state"),
        created=_optional_float(fields.get("created")),
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
