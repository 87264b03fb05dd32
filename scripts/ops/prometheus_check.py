#!/usr/bin/env python3
"""Runs a real Prometheus against running exporters and every dashboard query
against it (run by scripts/check-prometheus).

Starts `prometheus` with a temporary config that scrapes each --target every
second, waits until every target is up and has been scraped a few times, then
runs each query of k8s/grafana/*.json (Grafana variables substituted: $run
matches every run) through the HTTP API and requires a non-empty result.
Queries over RabbitMQ's metrics are skipped, with a message, unless a rabbitmq
target is given. Queries that may be empty in a healthy run are listed in
ALLOWED_EMPTY with the reason. Prints every problem and exits 1 on any.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402

# metric -> why a query reading it may legitimately return nothing.
ALLOWED_EMPTY = {
    "mll_worker_dead_letters_total": "labelled by reason: no series until a worker dead-letters a job, which a healthy run never does",
    "mll_coordinator_jobs_dead_lettered_total": "labelled by stage: no series until the coordinator records a dead-lettered job",
    "mll_run_jobs_failed": "labelled by run and stage: the coordinator may set it only once a job of that stage failed",
    "rabbitmq_global_messages_dead_lettered_delivery_limit_total": "RabbitMQ 3.10 exports it only once a quorum queue dead-lettered",
    "rabbitmq_global_messages_dead_lettered_rejected_total": "RabbitMQ exports it only once a message was dead-lettered",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, **params) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read().decode())


def parse_target(spec: str) -> tuple[str, str, str]:
    """job=host:port[/path] -> (job, host:port, path)"""
    job, _, rest = spec.partition("=")
    if not job or not rest:
        raise SystemExit(f"--target {spec!r}: expected JOB=HOST:PORT[/PATH], e.g. worker=127.0.0.1:9100")
    addr, slash, path = rest.partition("/")
    return job, addr, "/" + path if slash else "/metrics"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--prometheus", default="prometheus")
    ap.add_argument("--target", action="append", required=True, metavar="JOB=HOST:PORT[/PATH]",
                    help="an exporter to scrape; the job name 'rabbitmq' enables the broker queries")
    ap.add_argument("--timeout", type=float, default=60, help="seconds to wait for the targets to be scraped")
    ap.add_argument("--scrapes", type=int, default=4, help="scrapes of each target before querying")
    a = ap.parse_args()
    targets = [parse_target(t) for t in a.target]
    jobs = {t[0] for t in targets}
    external = promql.external_metrics(a.repo / "scripts/ops/external_metrics.txt")
    ours = promql.telemetry_metrics(a.repo / "common/src/telemetry.rs")
    known = {**external, **ours}

    tmp = Path(tempfile.mkdtemp(prefix="mll-prom-"))
    port = free_port()
    cfg = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
           "scrape_configs": [{"job_name": job, "metrics_path": path, "static_configs": [{"targets": [addr]}]}
                              for job, addr, path in targets]}
    (tmp / "prometheus.yml").write_text(json.dumps(cfg, indent=1))  # JSON is YAML
    log = open(tmp / "prometheus.log", "w")
    proc = subprocess.Popen([a.prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    problems: list[str] = []
    try:
        deadline = time.monotonic() + a.timeout
        status = "prometheus not ready"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {proc.returncode}: {(tmp / 'prometheus.log').read_text()[-2000:]}")
            try:
                counts = {}
                for job in jobs:
                    r = api(base, "/api/v1/query", query=f'count_over_time(up{{job="{job}"}}[5m]) and up{{job="{job}"}} == 1')
                    res = r["data"]["result"]
                    counts[job] = int(float(res[0]["value"][1])) if res else 0
                if all(c >= a.scrapes for c in counts.values()):
                    break
                status = f"successful scrapes so far: {counts}"
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                tg = ""
                try:
                    tg = "; ".join(f"{t['labels']['job']} {t['scrapeUrl']}: {t['health']} {t.get('lastError', '')}"
                                   for t in api(base, "/api/v1/targets")["data"]["activeTargets"])
                except (OSError, ValueError, KeyError):
                    pass
                raise RuntimeError(f"targets not scraped {a.scrapes} times within {a.timeout:.0f} s ({status}; {tg}): "
                                   f"are the binaries running and serving /metrics there?")
            time.sleep(0.5)

        n_ok = n_allowed = n_skipped = 0
        seen = set()
        for f in sorted((a.repo / "k8s/grafana").glob("*.json")):
            for q in promql.queries(f, promql.load_dashboard(f)):
                expr = promql.substitute_variables(q.expr, {"run": ".*"})
                if expr in seen:
                    continue
                seen.add(expr)
                names = {promql.base_name(n, known) or n for n in promql.metric_names(q.expr)}
                if names & set(external) and "rabbitmq" not in jobs:
                    print(f"SKIP {q.where()}: reads RabbitMQ's metrics and no rabbitmq target was given: {expr}", file=sys.stderr)
                    n_skipped += 1
                    continue
                try:
                    r = api(base, "/api/v1/query", query=expr)
                except urllib.error.HTTPError as e:
                    problems.append(f"{q.where()}: Prometheus rejected the query ({e.code}: {e.read().decode()[:300]}): {expr}")
                    continue
                if r.get("status") != "success":
                    problems.append(f"{q.where()}: query failed: {r}: {expr}")
                elif not r["data"]["result"]:
                    reasons = [ALLOWED_EMPTY[n] for n in sorted(names) if n in ALLOWED_EMPTY]
                    if reasons:
                        print(f"EMPTY-OK {q.where()}: {expr} ({'; '.join(reasons)})", file=sys.stderr)
                        n_allowed += 1
                    else:
                        problems.append(f"{q.where()}: no data: {expr}")
                else:
                    n_ok += 1
        print(f"check-prometheus: {n_ok} queries returned data, {n_allowed} empty as allowed, {n_skipped} skipped, "
              f"{len(problems)} problems (targets: {', '.join(sorted(jobs))})", file=sys.stderr)
    except RuntimeError as e:
        problems.append(str(e))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        subprocess.run(["rm", "-rf", str(tmp)])
    for p in problems:
        print(f"FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
