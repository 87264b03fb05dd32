"""Celery side of the queue-path benchmark (scripts/bench-queue).

The same workload as coordinator/examples/bench_queue.rs, through Celery on the
same RabbitMQ and Redis: no-op tasks with task_acks_late, prefetch 1
(worker_prefetch_multiplier=1), publisher confirms, a quorum queue (as the
MLL work queue is) and the Redis result backend on its own database.

    python celery_bench.py --jobs 2000 --workers 2 --json out.json

starts W `celery worker` processes (one task at a time each) on a fresh queue,
warms up, then measures:
  - throughput: N tasks sent one by one (apply_async), then all results awaited;
    N / (last task end - first send);
  - latency under that load: task end - send time, per task;
  - unloaded latency: one task in flight at a time.
A task's end time is `time.time()` taken inside the task as it returns, i.e.
before Celery stores its result and acks, so Celery is, if anything, favoured
against the MLL side (whose time is taken after the Redis commit returned).
The queue, its exchange and the result keys are deleted at the end.

Two configurations (--config):
  durable   the guarantees MLL gives: quorum queue, publisher confirms,
            acks_late, pool solo (the task runs in the worker process);
  defaults  what a new user gets from Celery's defaults plus acks_late: classic
            queue, no publisher confirms, prefork pool with one child per worker.

This module is also the Celery app the worker processes import (-A celery_bench).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

from celery import Celery
from celery.result import ResultSet

BROKER = os.environ.get("CELERY_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
BACKEND = os.environ.get("CELERY_BENCH_BACKEND", "redis://127.0.0.1:6379/15")
# A fresh queue per client run; the client hands its name to its workers.
QUEUE = os.environ.get("CELERY_BENCH_QUEUE", f"bench.celery.{os.getpid()}")
QUEUE_TYPE = os.environ.get("CELERY_BENCH_QUEUE_TYPE", "quorum")
CONFIRM = os.environ.get("CELERY_BENCH_CONFIRM", "1") == "1"
# --config: (queue type, publisher confirms, pool).
CONFIGS = {"durable": ("quorum", True, "solo"), "defaults": ("classic", False, "prefork")}

app = Celery("celery_bench", broker=BROKER, backend=BACKEND)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_default_queue_type=QUEUE_TYPE,
    # A send returns once the broker has the message, as MLL's publishes do.
    broker_transport_options={"confirm_publish": CONFIRM},
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
    task_send_sent_event=False,
    result_expires=3600,
)


@app.task(name="bench.noop")
def noop(index):
    """The no-op job: returns when it ended and where it ran."""
    return [time.time(), noop.request.hostname, index]


def percentile(sorted_values, p):
    """Nearest-rank percentile (the same rule as bench_queue.rs)."""
    if not sorted_values:
        return float("nan")
    rank = int(-(-p * len(sorted_values) // 100))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def start_workers(count, tag, pool, logdir):
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=here + os.pathsep + os.environ.get("PYTHONPATH", ""), CELERY_BENCH_QUEUE=QUEUE)
    procs, names = [], []
    for i in range(count):
        name = f"bq{i}-{tag}@{socket.gethostname()}"
        log = open(os.path.join(logdir, f"worker-{i}.log"), "wb")
        cmd = [
            sys.executable, "-m", "celery", "-A", "celery_bench", "worker",
            "--pool", pool, "--concurrency", "1", "--prefetch-multiplier", "1",
            "-Q", QUEUE, "-n", name,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel", "WARNING",
        ]
        procs.append(subprocess.Popen(cmd, cwd=here, env=env, stdout=log, stderr=subprocess.STDOUT))
        names.append(name)
    return procs, names


def wait_ready(names, procs, logdir, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for i, p in enumerate(procs):
            if p.poll() is not None:
                raise SystemExit(f"celery worker {i} exited with {p.returncode} at start; log:\n{tail(logdir, i)}")
        replies = app.control.ping(destination=names, timeout=0.5)
        seen = {k for r in replies for k in r}
        if seen >= set(names):
            return
    raise SystemExit(f"celery workers {names} did not answer a ping within {timeout} s; logs under {logdir}")


def tail(logdir, i):
    try:
        with open(os.path.join(logdir, f"worker-{i}.log"), "rb") as f:
            return f.read()[-3000:].decode(errors="replace")
    except OSError as e:
        return f"(no log: {e})"


def stop_workers(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)  # warm shutdown: finish the task in hand
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cleanup(task_ids):
    client = app.backend.client
    keys = [app.backend.get_key_for_task(t) for t in task_ids]
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])
    with app.connection_for_write() as conn:
        ch = conn.default_channel
        ch.queue_delete(QUEUE)
        ch.exchange_delete(QUEUE)
    # With a quorum queue, Celery (5.5+) workers also declare its fixed-name
    # "native delayed delivery" topology (28 quorum queues) and the pidbox
    # exchanges; remove them when nothing uses them any more.
    fixed_exchanges = ["celery.pidbox", "reply.celery.pidbox"]
    if QUEUE_TYPE == "quorum":
        fixed_exchanges += ["celery_delayed_delivery"] + [f"celery_delayed_{i}" for i in range(28)]
        for i in range(28):
            with app.connection_for_write() as conn:
                try:
                    # Quorum queues refuse if_unused/if_empty: check by hand.
                    _, messages, consumers = conn.default_channel.queue_declare(f"celery_delayed_{i}", passive=True)
                    if messages == 0 and consumers == 0:
                        conn.default_channel.queue_delete(f"celery_delayed_{i}")
                except Exception:  # gone already, or not ours to judge: keep it
                    pass
    for name in fixed_exchanges:
        with app.connection_for_write() as conn:
            try:
                conn.default_channel.exchange_delete(name, if_unused=True)
            except Exception:  # still bound or in use: keep it
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--latency-jobs", type=int, default=200)
    ap.add_argument("--warmup-jobs", type=int, default=50)
    ap.add_argument("--config", default="durable", choices=sorted(CONFIGS),
                    help="durable: quorum queue, confirms, pool solo; defaults: classic queue, no confirms, prefork")
    ap.add_argument("--pool", choices=["solo", "prefork"],
                    help="override the configuration's pool (solo: in the worker process; prefork: in one child, -c 1)")
    ap.add_argument("--timeout-s", type=float, default=120)
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.jobs < 1 or a.workers < 1:
        raise SystemExit("--jobs and --workers must be at least 1")

    global QUEUE_TYPE
    QUEUE_TYPE, confirm, pool = CONFIGS[a.config]
    a.pool = a.pool or pool
    # The client's app and the worker processes (which import this module) alike.
    os.environ.update(CELERY_BENCH_QUEUE_TYPE=QUEUE_TYPE, CELERY_BENCH_CONFIRM="1" if confirm else "0")
    app.conf.task_default_queue_type = QUEUE_TYPE
    app.conf.broker_transport_options = {"confirm_publish": confirm}

    logdir = tempfile.mkdtemp(prefix="celery-bench-")
    tag = uuid.uuid4().hex[:8]
    procs, names = start_workers(a.workers, tag, a.pool, logdir)
    sent_ids = []
    try:
        wait_ready(names, procs, logdir, 60)

        warm = [noop.apply_async((i,)) for i in range(max(a.warmup_jobs, a.workers))]
        sent_ids += [r.id for r in warm]
        ResultSet(warm).get(timeout=a.timeout_s)

        # Throughput: one by one, as a Celery client sends; then wait for all.
        sends, results = [], []
        for i in range(a.jobs):
            sends.append(time.time())
            results.append(noop.apply_async((i,)))
        sent_ids += [r.id for r in results]
        values = ResultSet(results).get(timeout=a.timeout_s)
        ends = [v[0] for v in values]
        seconds = max(ends) - min(sends)
        load = sorted((e - s) * 1000.0 for s, e in zip(sends, ends))
        per_worker = {}
        for v in values:
            per_worker[v[1]] = per_worker.get(v[1], 0) + 1

        unloaded = []
        for i in range(a.latency_jobs):
            t = time.time()
            r = noop.apply_async((i,))
            sent_ids.append(r.id)
            unloaded.append((r.get(timeout=30)[0] - t) * 1000.0)
        unloaded.sort()
    finally:
        stop_workers(procs)
        try:
            cleanup(sent_ids)
        except Exception as e:  # report, but keep the measurement
            print(f"celery_bench: clean-up of queue {QUEUE} / result keys failed: {e}", file=sys.stderr)

    report = {
        "system": "celery" if a.config == "durable" else "celerydefaults",
        "config": a.config,
        "workers": a.workers,
        "jobs": a.jobs,
        "publish": f"apply_async one by one, {'confirm_publish' if confirm else 'no publisher confirms'}, {QUEUE_TYPE} queue, pool {a.pool}",
        "seconds": seconds,
        "jobs_per_s": a.jobs / seconds,
        "load_p50_ms": percentile(load, 50),
        "load_p99_ms": percentile(load, 99),
        "latency_jobs": a.latency_jobs,
        "unloaded_p50_ms": percentile(unloaded, 50) if unloaded else None,
        "unloaded_p99_ms": percentile(unloaded, 99) if unloaded else None,
        "per_worker_committed": sorted(per_worker.values(), reverse=True),
        "duplicate_executions": None,
    }
    print(f"celery ({a.config}): {a.jobs} no-op tasks, {a.workers} worker(s): {report['jobs_per_s']:.0f} tasks/s "
          f"({seconds:.2f} s first send -> last task end); send->end p50 {report['load_p50_ms']:.1f} ms "
          f"p99 {report['load_p99_ms']:.1f} ms under load")
    if unloaded:
        print(f"celery: one task in flight ({a.latency_jobs} tasks): send->end p50 {report['unloaded_p50_ms']:.2f} ms "
              f"p99 {report['unloaded_p99_ms']:.2f} ms")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
