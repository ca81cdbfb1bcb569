#!/usr/bin/python3
"""Job simulator for the jobwire demo: writes job state and events to Redis like the AI services.

Each simulated job goes through the life the seed documents describe (000, 001):

  HSET ai:job:{id} status pending progress 0 message … userId … startTime … updateTime …
  EXPIRE ai:job:{id} 300                                       (TTL 5 min, as in dev)
  PUBLISH ai:job:status:{id}   {"eventType":"job_status_update","jobId":…,"userId":…,
                                "status":"pending","progress":0,"timestamp":…}
  then, step by step:  HSET … status processing progress N message STEP
                       PUBLISH ai:job:progress:{id} {… "status":"processing","progress":N,
                                                     "message":STEP,"data":{"step":…} …}
  then either          HSET … status completed progress 100 resultKey ai:schedule:result:{id}
                       SET ai:schedule:result:{id} … EX 3600
                       PUBLISH ai:job:complete:{id} {"eventType":"job_completed", …}
  or                   HSET … status failed message ERROR
                       PUBLISH ai:job:error:{id} {"eventType":"job_failed", …, "error":ERROR}

The state is always written before the event is published, as the services do; jobwire's
snapshots rely on that order.

Usage:
  scripts/simulate.py [--users alice,bob,carol] [--concurrency 4] [--jobs N] [--duration S]
                      [--step-ms 700] [--fail-rate 0.15] [--seed N] [--prefix job_sim]
Redis: --url redis://…, else REDIS_URL, else REDIS_HOST / REDIS_PORT / REDIS_PASSWORD
(default 127.0.0.1:6379). Runs until --jobs jobs finished or --duration seconds passed
(forever when neither is given); jobs running then still finish. Ctrl-C / SIGTERM stop at once.
Needs python3-redis (Debian).
"""

import argparse
import heapq
import json
import os
import random
import signal
import sys
import time
from datetime import datetime, timezone

import redis

STEPS = ["analysing preferences", "searching places", "generating itinerary",
         "optimising route", "estimating costs", "writing summary"]
ERRORS = ["model timeout after 30 s", "upstream quota exceeded", "invalid destination",
          "GPU worker lost"]
JOB_TTL = 300  # seconds; ai:job:{id} lives 5 minutes in dev (000)
RESULT_TTL = 3600  # ai:schedule:result:{id}, 1 h (001)


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def connect(args):
    url = args.url or os.environ.get("REDIS_URL")
    if url:
        return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    return redis.Redis(host=os.environ.get("REDIS_HOST", "127.0.0.1"),
                       port=int(os.environ.get("REDIS_PORT", "6379")),
                       password=os.environ.get("REDIS_PASSWORD") or None,
                       socket_timeout=5, socket_connect_timeout=5)


class Job:
    """One simulated job: its id, owner, planned progress steps and how it ends."""

    def __init__(self, job_id, user, rng, fail_rate):
        self.id = job_id
        self.user = user
        self.progress = 0
        # Uneven steps, as real work is; the last one lands on 100 unless the job fails.
        self.stops = sorted(set(rng.randint(3, 97) for _ in range(rng.randint(4, 9)))) + [100]
        self.fail_at = rng.choice(self.stops[:-1]) if rng.random() < fail_rate else None
        self.error = rng.choice(ERRORS)
        self.step = 0


class Simulator:
    def __init__(self, r, args):
        self.r = r
        self.args = args
        self.rng = random.Random(args.seed)
        self.serial = 0
        self.started = 0
        self.finished = 0
        self.stopping = False
        self.queue = []  # heap of (due time, tie-breaker, job)

    def key(self, job):
        return f"ai:job:{job.id}"

    def event(self, job, status, event_type="job_status_update", **extra):
        body = {"eventType": event_type, "jobId": job.id, "userId": job.user, "status": status,
                "progress": job.progress, "timestamp": now_iso()}
        body.update(extra)
        return json.dumps(body, separators=(",", ":"))

    def start_job(self):
        self.serial += 1
        user = self.args.users[(self.serial - 1) % len(self.args.users)]
        job = Job(f"{self.args.prefix}_{int(time.time())}_{self.serial}", user, self.rng,
                  self.args.fail_rate)
        ts = now_iso()
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(self.key(job), mapping={"status": "pending", "progress": 0, "message": "queued",
                                          "userId": user, "startTime": ts, "updateTime": ts})
        pipe.expire(self.key(job), JOB_TTL)
        pipe.publish(f"ai:job:status:{job.id}", self.event(job, "pending", message="queued"))
        pipe.execute()
        self.started += 1
        self.schedule(job)
        print(f"started  {job.id} for {user}", flush=True)

    def schedule(self, job):
        jitter = self.rng.uniform(0.5, 1.5)
        heapq.heappush(self.queue, (time.monotonic() + self.args.step_ms / 1000 * jitter,
                                    self.serial * 1000 + job.step, job))

    def advance(self, job):
        """Runs the job's next step: progress, or its end (complete or error)."""
        target = job.stops[job.step]
        job.step += 1
        ts = now_iso()
        key = self.key(job)
        pipe = self.r.pipeline(transaction=False)
        if job.fail_at is not None and target >= job.fail_at:
            # Fails on the way to the next stop: the progress stays where it was last reported.
            pipe.hset(key, mapping={"status": "failed", "message": job.error, "error": job.error,
                                    "updateTime": ts})
            pipe.publish(f"ai:job:error:{job.id}",
                         self.event(job, "failed", "job_failed", message=job.error,
                                    error=job.error))
            pipe.execute()
            self.finished += 1
            print(f"failed   {job.id} at {job.progress}%: {job.error}", flush=True)
            return
        job.progress = target
        if job.progress >= 100:
            result_key = f"ai:schedule:result:{job.id}"
            pipe.set(result_key, json.dumps({"jobId": job.id, "summary": "3-day itinerary"}),
                     ex=RESULT_TTL)
            pipe.hset(key, mapping={"status": "completed", "progress": 100, "message": "done",
                                    "resultKey": result_key, "updateTime": ts})
            pipe.publish(f"ai:job:complete:{job.id}",
                         self.event(job, "completed", "job_completed", message="done",
                                    resultKey=result_key))
            pipe.execute()
            self.finished += 1
            print(f"complete {job.id}", flush=True)
            return
        step = STEPS[min(len(STEPS) - 1, job.progress * len(STEPS) // 100)]
        pipe.hset(key, mapping={"status": "processing", "progress": job.progress, "message": step,
                                "updateTime": ts})
        pipe.publish(f"ai:job:progress:{job.id}",
                     self.event(job, "processing", message=step,
                                data={"step": step.replace(" ", "_")}))
        pipe.execute()
        self.schedule(job)

    def may_start(self, deadline):
        if self.stopping or (deadline and time.monotonic() >= deadline):
            return False
        return not self.args.jobs or self.started < self.args.jobs

    def run(self):
        deadline = time.monotonic() + self.args.duration if self.args.duration else None
        while True:
            while len(self.queue) < self.args.concurrency and self.may_start(deadline):
                self.start_job()
            if not self.queue:
                break
            due, _, job = self.queue[0]
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 0.25))
                continue
            heapq.heappop(self.queue)
            if self.stopping:
                break
            self.advance(job)
            # Past --duration or --jobs, no new job starts and the running ones finish.
        print(f"simulate: {self.started} jobs started, {self.finished} finished", flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="redis:// or rediss:// URL (default: REDIS_URL, REDIS_HOST/PORT)")
    p.add_argument("--users", default="alice,bob,carol", help="comma-separated user ids")
    p.add_argument("--concurrency", type=int, default=4, help="jobs running at once")
    p.add_argument("--jobs", type=int, default=0, help="stop after this many jobs (0: no limit)")
    p.add_argument("--duration", type=float, default=0,
                   help="start no new job after this many seconds (0: no limit)")
    p.add_argument("--step-ms", type=float, default=700, help="mean time between steps")
    p.add_argument("--fail-rate", type=float, default=0.15, help="share of jobs that fail")
    p.add_argument("--seed", type=int, default=None, help="random seed (repeatable runs)")
    p.add_argument("--prefix", default="job_sim", help="job id prefix")
    args = p.parse_args(argv)
    args.users = [u for u in args.users.split(",") if u]
    if not args.users or args.concurrency < 1 or args.step_ms < 0 or not 0 <= args.fail_rate <= 1:
        p.error("need at least one user, --concurrency >= 1, --step-ms >= 0, 0 <= --fail-rate <= 1")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sim = Simulator(connect(args), args)

    def stop(_signum, _frame):
        # Ends the run after the step in progress; the jobs left running expire from Redis.
        sim.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        sim.run()
    except redis.exceptions.ConnectionError as e:
        print(f"simulate: Redis connection failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
