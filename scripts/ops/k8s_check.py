#!/usr/bin/env python3
"""Offline checks of the Kubernetes manifests (run by scripts/check-k8s).

1. Schema validation, offline: every resource in every manifest file under k8s/
   and in every overlay's built output, against the Kubernetes JSON schemas
   that kubernetes-validate ships (strict: unknown fields are errors), for the
   oldest and newest Kubernetes versions we support. CRDs (KEDA, Prometheus
   Operator) against the hand-written schemas in scripts/ops/schemas/; a KEDA
   ScaledJob's jobTargetRef is also validated as a batch/v1 JobSpec. Patch files
   are partial resources: there only missing required fields are tolerated.
2. Consistency of each built overlay: config copy, profile keys, grace period
   versus worker.shutdown_grace_s, GPU scheduling, podFailurePolicy, references
   to ConfigMaps/Secrets/PVCs, monitors that select something, metrics ports
   versus metrics_addr, and the Job and KEDA worker pod templates being equal.

Prints every problem found and exits 1 if there was any.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tomllib
from pathlib import Path

import jsonschema
import yaml
from referencing import Registry, Resource

import kubernetes_validate.utils as kv

# Oldest version with everything we use on by default (podFailurePolicy beta
# since 1.26; Job onPodConditions with DisruptionTarget), and the newest shipped.
K8S_VERSIONS = ["1.29.0", kv.latest_version()]
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledJob"): "scaledjob.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
}
# Margin between the worker's own shutdown grace and the pod's: time to requeue
# the job in hand and close connections after the grace ran out.
GRACE_MARGIN_S = 20
# Secrets that the non-dev overlays expect to be created out of band.
EXTERNAL_SECRETS = {"mll-amqp", "mll-redis"}

problems: list[str] = []


def problem(msg: str) -> None:
    problems.append(msg)


# ---------------------------------------------------------------- schemas
_k8s_validators: dict = {}


def k8s_validator(doc: dict, version: str):
    """A Draft 2020-12 validator for the doc's kind, or None if the kind is unknown."""
    mm = kv.major_minor(version)
    schema_version = [v for v in kv.all_versions() if kv.major_minor(v) <= mm][-1]
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", doc["apiVersion"])
    key = (schema_version, doc["kind"].lower(), api)
    if key not in _k8s_validators:
        d = f"kubernetes-json-schema/v{schema_version}-local-strict"
        try:
            schema = kv.schema_contents(f"{d}/{doc['kind'].lower()}-{api}.json", version)
        except FileNotFoundError:
            _k8s_validators[key] = None
            return None
        defs = kv.schema_contents(f"{d}/_definitions.json", version)
        registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
        _k8s_validators[key] = jsonschema.Draft202012Validator(schema, registry=registry)
    return _k8s_validators[key]


_crd_validators: dict = {}


def crd_validator(doc: dict, schema_dir: Path):
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in CRD_SCHEMAS:
        return None
    if key not in _crd_validators:
        schema = json.loads((schema_dir / CRD_SCHEMAS[key]).read_text())
        jsonschema.Draft7Validator.check_schema(schema)
        _crd_validators[key] = jsonschema.Draft7Validator(schema)
    return _crd_validators[key]


def drop_nulls(x):
    """A strategic merge patch deletes a key with null: not a value to validate."""
    if isinstance(x, dict):
        return {k: drop_nulls(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [drop_nulls(v) for v in x]
    return x


def where(err) -> str:
    return ".".join(str(p) for p in err.absolute_path) or "(top)"


def validate_doc(doc: dict, origin: str, schema_dir: Path, partial: bool) -> int:
    """Validates one resource; returns how many (version, schema) checks ran."""
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        problem(f"{origin}: not a Kubernetes resource (no apiVersion/kind)")
        return 0
    name = f"{doc['kind']}/{doc.get('metadata', {}).get('name', '?')}"
    if partial:
        doc = drop_nulls(doc)

    def report(validator, data, label):
        for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
            if partial and err.validator == "required":
                continue
            problem(f"{origin}: {name}: {label}: at {where(err)}: {err.message}")

    checks = 0
    crd = crd_validator(doc, schema_dir)
    if crd is not None:
        report(crd, doc, f"schema {CRD_SCHEMAS[(doc['apiVersion'], doc['kind'])]}")
        checks += 1
        if doc["kind"] == "ScaledJob" and isinstance(doc.get("spec", {}).get("jobTargetRef"), dict):
            job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": doc["metadata"]["name"]},
                   "spec": doc["spec"]["jobTargetRef"]}
            for v in K8S_VERSIONS:
                report(k8s_validator(job, v), job, f"spec.jobTargetRef as a batch/v1 JobSpec, Kubernetes {v}")
                checks += 1
        return checks
    for v in K8S_VERSIONS:
        val = k8s_validator(doc, v)
        if val is None:
            problem(f"{origin}: {name}: no schema for {doc['apiVersion']} {doc['kind']} in Kubernetes {v} "
                    f"(a typo in apiVersion/kind, or a CRD: add its schema to scripts/ops/schemas/)")
            continue
        report(val, doc, f"Kubernetes {v}")
        checks += 1
    return checks


def load_docs(path: Path) -> list:
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        problem(f"{path}: not valid YAML: {e}")
        return []


# ---------------------------------------------------------------- configs
def flatten(d: dict, prefix="") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


OPTIONAL_KEYS = {"broker.password_file": str, "store.password_file": str}


def check_profiles(repo: Path) -> dict:
    """Profiles may only set keys of default.toml, with the same types.
    Returns the effective cluster settings (default + cluster profile)."""
    default = flatten(tomllib.loads((repo / "configs/default.toml").read_text()))
    effective = dict(default)
    for name in ("local.toml", "cluster.toml"):
        path = repo / "configs" / name
        if not path.is_file():
            problem(f"{path}: missing")
            continue
        try:
            prof = flatten(tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as e:
            problem(f"{path}: not valid TOML: {e}")
            continue
        for k, v in prof.items():
            if k in default:
                if type(v) is not type(default[k]):
                    problem(f"{path}: {k} = {v!r} is a {type(v).__name__}, default.toml has a "
                            f"{type(default[k]).__name__}")
                elif v == default[k]:
                    problem(f"{path}: {k} = {v!r} equals the default: profiles hold only keys that differ")
            elif k in OPTIONAL_KEYS:
                if not isinstance(v, OPTIONAL_KEYS[k]):
                    problem(f"{path}: {k} must be a {OPTIONAL_KEYS[k].__name__}")
            else:
                problem(f"{path}: unknown key {k} (not in configs/default.toml; the binaries would refuse it)")
        if name == "cluster.toml":
            effective.update(prof)
    copy_path = repo / "k8s/base/config/cluster.toml"
    if not copy_path.is_file() or copy_path.read_bytes() != (repo / "configs/cluster.toml").read_bytes():
        problem(f"{copy_path} differs from configs/cluster.toml: run `cp configs/cluster.toml {copy_path.relative_to(repo)}`")
    return effective


# ---------------------------------------------------------------- overlays
def pod_templates(docs: list):
    """(label, pod template, controller doc) of every Job and ScaledJob."""
    for d in docs:
        if d["kind"] == "Job":
            yield f"Job/{d['metadata']['name']}", d["spec"]["template"], d["spec"]
        elif d["kind"] == "ScaledJob":
            yield f"ScaledJob/{d['metadata']['name']}", d["spec"]["jobTargetRef"]["template"], d["spec"]["jobTargetRef"]


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env", []) if "value" in e}


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def check_overlay(name: str, docs: list, cluster: dict) -> None:
    o = f"overlay {name}"
    name = name.split("@")[0]
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != "mll":
            problem(f"{o}: {d['kind']}/{d['metadata']['name']} is not in namespace mll")
    cms, secrets, pvcs = by_kind.get("ConfigMap", {}), by_kind.get("Secret", {}), by_kind.get("PersistentVolumeClaim", {})
    gpu_pool = name != "dev"

    if "mll-config" not in cms or cms["mll-config"].get("data", {}).get("cluster.toml") is None:
        problem(f"{o}: no ConfigMap mll-config with key cluster.toml")
    workers = 0
    for label, tmpl, ctl in pod_templates(docs):
        where_ = f"{o}: {label}"
        spec = tmpl["spec"]
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        for v in vols.values():
            if "configMap" in v and v["configMap"]["name"] not in cms:
                problem(f"{where_}: volume {v['name']} names ConfigMap {v['configMap']['name']}, which the overlay lacks")
            if "secret" in v:
                s = v["secret"]["secretName"]
                if s not in secrets and not (gpu_pool and s in EXTERNAL_SECRETS):
                    problem(f"{where_}: volume {v['name']} names Secret {s}, which the overlay lacks")
                for item in v["secret"].get("items", []):
                    if s in secrets:
                        keys = set(secrets[s].get("data", {})) | set(secrets[s].get("stringData", {}))
                        if item["key"] not in keys:
                            problem(f"{where_}: Secret {s} has no key {item['key']}")
            if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in pvcs:
                problem(f"{where_}: volume {v['name']} names PVC {v['persistentVolumeClaim']['claimName']}, which the overlay lacks")
        if ctl.get("podFailurePolicy"):
            if spec.get("restartPolicy") != "Never":
                problem(f"{where_}: podFailurePolicy needs restartPolicy Never")
            ignores = [r for r in ctl["podFailurePolicy"].get("rules", []) if r.get("action") == "Ignore"
                       and any(c.get("type") == "DisruptionTarget" for c in r.get("onPodConditions", []))]
            if not ignores:
                problem(f"{where_}: podFailurePolicy does not ignore DisruptionTarget")
        else:
            problem(f"{where_}: no podFailurePolicy (evictions and drains would count as failures)")
        container = spec["containers"][0]
        args = container.get("args", [])
        role = tmpl["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        if role in INPUT_ROLES:
            check_input_job(where_, role, spec, container, pvcs)
            continue
        # --config must name a file of a mounted ConfigMap.
        if "--config" in args:
            cfg = args[args.index("--config") + 1]
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            d, f = cfg.rsplit("/", 1)
            vol = vols.get(mounts.get(d, ""), {})
            cm = cms.get(vol.get("configMap", {}).get("name", ""), {})
            if f not in cm.get("data", {}):
                problem(f"{where_}: --config {cfg} is not a file of a ConfigMap mounted at {d}")
        else:
            problem(f"{where_}: no --config argument")
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        if role == "worker":
            workers += 1
            env = env_of(container)
            grace = int(env.get("MLL__WORKER__SHUTDOWN_GRACE_S", cluster["worker.shutdown_grace_s"]))
            tgp = spec.get("terminationGracePeriodSeconds", 30)
            if tgp < grace + GRACE_MARGIN_S:
                problem(f"{where_}: terminationGracePeriodSeconds {tgp} < worker.shutdown_grace_s {grace} + {GRACE_MARGIN_S} s margin: "
                        f"the kubelet would kill a worker still finishing or requeueing its job")
            if args[:1] != ["run"] or "--exit-when-idle" not in args:
                problem(f"{where_}: the worker must run `run ... --exit-when-idle SECONDS` (queue-driven batch pod)")
            gpus = container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
            if gpu_pool:
                if str(gpus) != "1":
                    problem(f"{where_}: limits nvidia.com/gpu is {gpus!r}, expected 1 (one worker process per GPU)")
                if not spec.get("nodeSelector") or not spec.get("tolerations"):
                    problem(f"{where_}: no nodeSelector/tolerations for the GPU pool")
            expect_port = port_of(env.get("MLL__WORKER__METRICS_ADDR", cluster["worker.metrics_addr"]))
        elif role == "coordinator":
            for a in ("submit", "--wait", "--benchmark"):
                if a not in args:
                    problem(f"{where_}: the coordinator must run `submit --benchmark FILE --wait` (missing {a})")
            expect_port = port_of(env_of(container).get("MLL__COORDINATOR__METRICS_ADDR", cluster["coordinator.metrics_addr"]))
        else:
            problem(f"{where_}: pod label app.kubernetes.io/component is {role!r}, expected worker, coordinator, prepare or export")
            continue
        if ports.get("metrics") != expect_port:
            problem(f"{where_}: container port 'metrics' is {ports.get('metrics')}, the config serves /metrics on {expect_port}")
    if workers != 1:
        problem(f"{o}: expected exactly one worker Job or ScaledJob, found {workers}")
    roles = {t["metadata"].get("labels", {}).get("app.kubernetes.io/component") for _, t, _ in pod_templates(docs)}
    for role in INPUT_ROLES:
        if role not in roles:
            problem(f"{o}: no {role} Job (k8s/base/inputs.yaml)")
    check_input_wait(o, docs)

    # Every monitor selects a pod template or Service that has the named port.
    def labels_match(sel: dict, labels: dict) -> bool:
        if sel.get("matchExpressions"):
            problem(f"{o}: monitors with matchExpressions are not checked here; use matchLabels")
        return all(labels.get(k) == v for k, v in sel.get("matchLabels", {}).items())

    for pm in by_kind.get("PodMonitor", {}).values():
        ports = [e.get("port") for e in pm["spec"]["podMetricsEndpoints"]]
        hits = [lbl for lbl, t, _ in pod_templates(docs) if labels_match(pm["spec"]["selector"], t["metadata"].get("labels", {}))
                and all(p in {cp.get("name") for c in t["spec"]["containers"] for cp in c.get("ports", [])} for p in ports)]
        if not hits:
            problem(f"{o}: PodMonitor/{pm['metadata']['name']} selects no pod template with port(s) {ports}")
    for sm in by_kind.get("ServiceMonitor", {}).values():
        ports = [e.get("port") for e in sm["spec"]["endpoints"]]
        hits = [s for s in by_kind.get("Service", {}).values() if labels_match(sm["spec"]["selector"], s["metadata"].get("labels", {}))
                and all(p in {sp.get("name") for sp in s["spec"]["ports"]} for p in ports)]
        if not hits:
            problem(f"{o}: ServiceMonitor/{sm['metadata']['name']} selects no Service with port(s) {ports}")
    # Services must select something.
    pod_labels = [t["metadata"].get("labels", {}) for d in docs if d["kind"] == "StatefulSet" for t in [d["spec"]["template"]]]
    for s in by_kind.get("Service", {}).values():
        if not any(all(l.get(k) == v for k, v in s["spec"].get("selector", {}).items()) for l in pod_labels):
            problem(f"{o}: Service/{s['metadata']['name']} selects no StatefulSet pod")
    for ss in by_kind.get("StatefulSet", {}).values():
        if ss["spec"]["serviceName"] not in by_kind.get("Service", {}):
            problem(f"{o}: StatefulSet/{ss['metadata']['name']} names Service {ss['spec']['serviceName']}, which the overlay lacks")
    # The broker must export per-queue metrics on 15692 for the broker dashboard.
    rmq = cms.get("rabbitmq-config", {}).get("data", {})
    if "rabbitmq_prometheus" not in rmq.get("enabled_plugins", ""):
        problem(f"{o}: RabbitMQ's rabbitmq_prometheus plugin is not enabled")
    if "prometheus.return_per_object_metrics = true" not in rmq.get("20-mll.conf", ""):
        problem(f"{o}: RabbitMQ does not return per-queue metrics (prometheus.return_per_object_metrics)")


# The input Jobs (k8s/base/inputs.yaml): Python tools on CPU nodes, no --config, no /metrics.
INPUT_ROLES = {"prepare": "scripts/data/prepare.py", "export": "scripts/export/export_hub.py"}


def check_input_job(where_: str, role: str, spec: dict, container: dict, pvcs: dict) -> None:
    if container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu") is not None:
        problem(f"{where_}: the {role} Job runs on CPU nodes: it must not ask for nvidia.com/gpu")
    if not any(INPUT_ROLES[role] in part for part in container.get("command", []) + container.get("args", [])):
        problem(f"{where_}: the {role} Job must run {INPUT_ROLES[role]}")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    claim = vols.get(mounts.get("/data", ""), {}).get("persistentVolumeClaim", {}).get("claimName")
    if claim not in pvcs:
        problem(f"{where_}: the {role} Job must mount the shared PVC at /data (found {claim!r})")


def check_input_wait(o: str, docs: list) -> None:
    """The coordinator waits for the inputs (an init container running scripts/data/wait_inputs.py)."""
    for label, tmpl, _ in pod_templates(docs):
        if tmpl["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "coordinator":
            continue
        inits = tmpl["spec"].get("initContainers", [])
        if not any("/opt/mll/scripts/data/wait_inputs.py" in c.get("command", []) for c in inits):
            problem(f"{o}: {label} has no init container running scripts/data/wait_inputs.py (it would start before "
                    f"the prepare and export Jobs finished)")


def worker_template(docs: list):
    for label, tmpl, _ in pod_templates(docs):
        if tmpl["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "worker":
            return label, tmpl
    return None, None


def check_job_equals_keda(built: dict) -> None:
    """The KEDA overlay's worker pod must be the Job overlay's, idle timeout aside."""
    for job_o, keda_o in (("a800", "a800-keda"),):
        if job_o not in built or keda_o not in built:
            continue
        (lj, tj), (lk, tk) = worker_template(built[job_o]), worker_template(built[keda_o])
        if tj is None or tk is None:
            continue
        tj, tk = copy.deepcopy(tj), copy.deepcopy(tk)
        for t in (tj, tk):
            args = t["spec"]["containers"][0].get("args", [])
            if "--exit-when-idle" in args:
                args[args.index("--exit-when-idle") + 1] = "N"
        if tj != tk:
            diff = [k for k in sorted(set(tj["spec"]) | set(tk["spec"])) if tj["spec"].get(k) != tk["spec"].get(k)]
            problem(f"worker pod templates differ between overlay {job_o} ({lj}) and {keda_o} ({lk}) in spec fields {diff or ['metadata']}: "
                    f"keep k8s/workers/job/worker-job.yaml and k8s/workers/keda/scaledjob.yaml (and the overlays' patches) in step")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--built", action="append", default=[], metavar="OVERLAY=FILE",
                    help="an overlay's `kubectl kustomize` output (repeatable)")
    a = ap.parse_args()
    repo = a.repo.resolve()
    schema_dir = repo / "scripts/ops/schemas"
    checks = 0

    # Raw manifests: everything under k8s/ but the kustomization files.
    patch_files = set()
    kustomizations = sorted((repo / "k8s").rglob("kustomization.yaml"))
    for k in kustomizations:
        kd = yaml.safe_load(k.read_text()) or {}
        for p in kd.get("patchesStrategicMerge", []) + [p.get("path") for p in kd.get("patches", []) if isinstance(p, dict)]:
            if p:
                patch_files.add((k.parent / p).resolve())
    manifests = sorted(p for p in (repo / "k8s").rglob("*.y*ml") if p.name != "kustomization.yaml")
    for m in manifests:
        for doc in load_docs(m):
            checks += validate_doc(doc, str(m.relative_to(repo)), schema_dir, partial=m.resolve() in patch_files)

    cluster = check_profiles(repo)

    built: dict[str, list] = {}
    for spec in a.built:
        name, _, file = spec.partition("=")
        docs = load_docs(Path(file))
        origin = f"overlay {name} (kubectl kustomize output)"
        for doc in docs:
            checks += validate_doc(doc, origin, schema_dir, partial=False)
        try:
            check_overlay(name, docs, cluster)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            problem(f"{origin}: malformed resource, cannot run the consistency checks: {type(e).__name__}: {e}")
        built.setdefault(name.split("@")[0], docs)
    check_job_equals_keda(built)

    for p in problems:
        print(f"FAIL {p}")
    print(f"check-k8s: {len(manifests)} manifest files, {len(a.built)} overlay builds, {checks} schema validations, "
          f"{len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
