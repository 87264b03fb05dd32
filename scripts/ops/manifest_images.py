#!/usr/bin/env python3
"""The manifests against the images (run by scripts/check-manifest-images).

For every container of every pod template in every rendered overlay (the
YAML files given with --built NAME=FILE, `kubectl kustomize` output) whose
image is one of ours (mll-coordinator, mll-worker, mll-tools), runs, in the
locally built image (localhost/<name>:<tag>, scripts/images), as the manifest
runs it: its user (runAsUser/runAsGroup), a read-only root filesystem where
readOnlyRootFilesystem says so, its volumes at their mount paths (ConfigMaps
and Secrets from the rendered objects, or placeholder files for Secrets made
out of band; PVCs and emptyDirs as empty folders), no network:

1. its command and arguments in a dry-run form that fails on an unknown flag
   or a bad value:
   - a Rust binary (the image's entrypoint, no `command`): the arguments with
     `--help` appended (clap rejects an unknown flag, or a value that does not
     parse, before it prints the help);
   - `python SCRIPT.py ARGS`: the script run under a harness that lets argparse
     parse the arguments (unknown flags, types, choices, required ones) and
     exits 0 right after; a script that never parses its arguments fails.
2. every environment variable it sets: `MLL__SECTION__KEY` ones are loaded by
   the binary's `config` command (`worker config` in the tools image) with the
   container's --config profile; the configuration denies unknown keys, so a
   renamed key fails. Other names must be in KNOWN_ENV (names a program in the
   image reads).
3. runAsNonRoot without runAsUser needs the image's USER to be a non-zero uid.

Upstream images (rabbitmq, redis) are listed as skipped: they are not built
here. Images that are ours but not built on this machine fail the check unless
--skip-missing is given (then they are listed as skipped).

Prints one line per container checked and every failure; exits 1 on any.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

OUR_IMAGES = {"mll-coordinator", "mll-worker", "mll-tools"}
# Environment variables that are not configuration keys but that a program
# in our images reads (a name here must say which).
KNOWN_ENV = {
    "MLL_CONFIG": "the --config file of worker and coordinator (clap env)",
    "MLL_CONFIG_DIR": "where the default.toml layer is read (common/src/config.rs)",
    "CUDA_VISIBLE_DEVICES": "libtorch: which GPUs the worker sees",
    "HF_HOME": "huggingface_hub's cache (tools image)",
    "RUST_BACKTRACE": "Rust's panic backtraces",
}
# Placeholder values for the secret keys the manifests mount (out-of-band Secrets).
SECRET_PLACEHOLDER = "placeholder-password"

HARNESS = r"""
import argparse, runpy, sys
_orig = argparse.ArgumentParser.parse_args
def _check(self, args=None, namespace=None):
    ns = _orig(self, args, namespace)
    print("manifest-images: arguments accepted:", vars(ns))
    sys.exit(0)
argparse.ArgumentParser.parse_args = _check
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
print("manifest-images: the script returned without parsing its arguments with argparse", file=sys.stderr)
sys.exit(3)
"""

failures: list[str] = []


def fail(msg: str) -> None:
    failures.append(msg)
    print(f"FAIL {msg}", flush=True)


def pod_templates(doc: dict):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in ("Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        yield spec.get("template") or {}
    elif kind == "CronJob":
        yield ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    elif kind == "ScaledJob":
        yield ((spec.get("jobTargetRef") or {}).get("template")) or {}
    elif kind == "Pod":
        yield doc


def image_name(image: str) -> tuple[str, str]:
    name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
    return name.split("/")[-1], tag


def run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


def image_config(ref: str) -> dict | None:
    p = run(["podman", "image", "inspect", "--format", "{{json .Config}}", ref])
    if p.returncode != 0:
        return None
    return json.loads(p.stdout)


class Volumes:
    """The pod's volumes as host folders, made once per overlay."""

    def __init__(self, docs: list[dict], root: Path):
        self.root = root
        self.objects = {(d.get("kind"), (d.get("metadata") or {}).get("name")): d for d in docs}
        self.shared: dict[str, Path] = {}

    def _fill(self, dest: Path, data: dict[str, bytes], items: list | None) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        keys = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
        for key, path in keys:
            f = dest / path
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data.get(key, SECRET_PLACEHOLDER.encode()))
            f.chmod(0o644)

    def host_dir(self, owner: str, vol: dict) -> Path | str:
        name = vol["name"]
        if "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"]["claimName"]
            d = self.shared.setdefault(claim, self.root / f"pvc-{claim}")
        elif "emptyDir" in vol:
            d = self.root / f"empty-{owner}-{name}"
        elif "configMap" in vol:
            cm = self.objects.get(("ConfigMap", vol["configMap"]["name"]))
            if cm is None:
                return f"ConfigMap {vol['configMap']['name']} is not in the rendered overlay"
            data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
            data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
            d = self.root / f"cm-{owner}-{name}"
            self._fill(d, data, vol["configMap"].get("items"))
        elif "secret" in vol:
            s = self.objects.get(("Secret", vol["secret"]["secretName"]))
            data: dict[str, bytes] = {}
            if s is not None:
                data = {k: base64.b64decode(v) for k, v in (s.get("data") or {}).items()}
                data.update({k: v.encode() for k, v in (s.get("stringData") or {}).items()})
            items = vol["secret"].get("items")
            if s is None and not items:
                return f"Secret {vol['secret']['secretName']} is made out of band and mounted without items: cannot fake its keys"
            d = self.root / f"secret-{owner}-{name}"
            self._fill(d, data, items)
        else:
            return f"volume {name}: unsupported source {sorted(vol)} (extend scripts/ops/manifest_images.py)"
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o777)
        return d


def non_root_problem(pod: dict, c: dict, cfg: dict) -> str | None:
    psc = pod.get("securityContext") or {}
    csc = c.get("securityContext") or {}
    if csc.get("runAsNonRoot", psc.get("runAsNonRoot")) and csc.get("runAsUser", psc.get("runAsUser")) is None:
        u = (cfg.get("User") or "").split(":")[0]
        if not u.isdigit() or int(u) == 0:
            return f"runAsNonRoot without runAsUser, and the image's USER ({u or 'none'}) is not a non-zero uid"
    return None


def run_options(owner: str, pod: dict, c: dict, vols: Volumes) -> tuple[list[str], list[str], list[str]]:
    """`podman run` options that run container c as its pod spec says: user,
    read-only root, volumes at their mount paths; and its env as -e options."""
    psc = pod.get("securityContext") or {}
    csc = c.get("securityContext") or {}
    user = csc.get("runAsUser", psc.get("runAsUser"))
    group = csc.get("runAsGroup", psc.get("runAsGroup"))
    opts: list[str] = []
    problems: list[str] = []
    if user is not None:
        opts += ["--user", f"{user}:{group if group is not None else user}"]
    if csc.get("readOnlyRootFilesystem"):
        # As the kubelet does it: no tmpfs on /tmp, /run (podman's default);
        # only the pod's volumes are writable.
        opts += ["--read-only", "--read-only-tmpfs=false"]
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        v = volumes.get(m["name"])
        if v is None:
            problems.append(f"volumeMount {m['name']} names no volume of the pod")
            continue
        d = vols.host_dir(owner, v)
        if isinstance(d, str):
            problems.append(d)
            continue
        src = d / m["subPath"] if m.get("subPath") else d
        opts += ["-v", f"{src}:{m['mountPath']}:{'ro' if m.get('readOnly') else 'rw'}"]
    env_opts: list[str] = []
    for e in c.get("env") or []:
        value = e.get("value")
        if value is None:
            problems.append(f"env {e['name']} comes from valueFrom; give the check a placeholder for it")
            continue
        env_opts += ["-e", f"{e['name']}={value}"]
    return opts, env_opts, problems


def check_container(overlay: str, owner: str, pod: dict, c: dict, vols: Volumes, tag_map: dict, skip_missing: bool,
                    only: set[str]):
    where = f"{overlay}: {owner} container {c['name']} ({c.get('image')})"
    name, tag = image_name(c.get("image", ""))
    if name not in OUR_IMAGES:
        print(f"skip {where}: upstream image, not built here", flush=True)
        return
    if only and name not in only:
        print(f"skip {where}: not selected (--only)", flush=True)
        return
    ref = tag_map.get(name, f"localhost/{name}:{tag}")
    cfg = image_config(ref)
    if cfg is None:
        if skip_missing:
            print(f"skip {where}: {ref} is not built on this machine (scripts/images --only {name[4:]})", flush=True)
            return
        fail(f"{where}: image {ref} is not built (run scripts/images --only {name[4:]})")
        return
    if non_root_problem(pod, c, cfg):
        fail(f"{where}: {non_root_problem(pod, c, cfg)}")
    opts, env_opts, problems = run_options(owner, pod, c, vols)
    for p in problems:
        fail(f"{where}: {p}")
    if problems:
        return
    mll_keys = []
    for e in c.get("env") or []:
        if e["name"].startswith("MLL__"):
            mll_keys.append(e["name"])
        elif e["name"] not in KNOWN_ENV:
            fail(f"{where}: env {e['name']} is neither an MLL__SECTION__KEY configuration key nor a variable a "
                 f"program in the image reads (KNOWN_ENV in scripts/ops/manifest_images.py)")
    if c.get("envFrom"):
        fail(f"{where}: envFrom is not checked (list the variables under env)")

    command = c.get("command") or []
    args = c.get("args") or []
    if not command:
        argv = args + ["--help"]
        config_bin: list[str] = []
    elif len(command) >= 2 and Path(command[0]).name.startswith("python") and command[1].endswith(".py"):
        argv = [command[0], "-c", HARNESS, *command[1:], *args]
        config_bin = ["--entrypoint", "worker"]
    else:
        fail(f"{where}: no dry-run form known for command {command!r} (extend scripts/ops/manifest_images.py)")
        return
    opts = ["--rm", "--network", "none", *opts]
    p = run(["podman", "run", *opts, *env_opts, *(["--entrypoint", command[0]] if command else []), ref,
             *(argv[1:] if command else argv)])
    shown = shlex.join((command or [cfg.get("Entrypoint", ["?"])[0]]) + args)
    if p.returncode != 0:
        fail(f"{where}: `{shown}` is not accepted by {ref} (dry run exited {p.returncode}):\n"
             + "\n".join("    " + line for line in p.stdout.strip().splitlines()[-15:]))
        return
    # The config layers: the profile the arguments name and the MLL__ variables.
    cfg_args = []
    if "--config" in args:
        cfg_args = ["--config", args[args.index("--config") + 1]]
    if mll_keys or cfg_args:
        q = run(["podman", "run", *opts, *env_opts, *config_bin, ref, "config", *cfg_args])
        if q.returncode != 0:
            fail(f"{where}: the configuration ({', '.join(mll_keys + cfg_args) }) is rejected by {ref}:\n"
                 + "\n".join("    " + line for line in q.stdout.strip().splitlines()[-10:]))
            return
    extra = f"; profile {cfg_args[1]} loaded" if cfg_args else ""
    extra += f"; config keys {', '.join(mll_keys)} known" if mll_keys else ""
    print(f"ok   {where}: `{shown}` accepted{extra}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--built", action="append", default=[], metavar="NAME=FILE",
                    help="a rendered overlay (kubectl kustomize output); repeat for each")
    ap.add_argument("--image", action="append", default=[], metavar="NAME=REF",
                    help="the local image for a manifest image name (default localhost/NAME:TAG)")
    ap.add_argument("--only", action="append", default=[], metavar="IMAGE",
                    help="check only the containers of this image (mll-coordinator, mll-worker, mll-tools); repeat")
    ap.add_argument("--skip-missing", action="store_true",
                    help="list containers whose image is not built here as skipped instead of failing")
    ap.add_argument("--podman-run", metavar="KIND/NAME:CONTAINER",
                    help="instead of checking: print, one per line, the `podman run` options, image and arguments "
                         "that run this container of the (single) --built overlay as its manifest says, with its "
                         "volumes as folders under --root (scripts/cluster-containers)")
    ap.add_argument("--root", metavar="DIR", help="with --podman-run: where the volumes' folders are made")
    ap.add_argument("--set-arg", action="append", default=[], metavar="FLAG=VALUE",
                    help="with --podman-run: replace FLAG's value in the container's args (added when absent)")
    a = ap.parse_args()
    if not a.built:
        ap.error("give at least one --built NAME=FILE")
    tag_map = dict(i.split("=", 1) for i in a.image)
    if a.podman_run:
        return podman_run(a, tag_map)
    with tempfile.TemporaryDirectory(prefix="manifest-images-") as tmp:
        os.chmod(tmp, 0o755)
        for b in a.built:
            overlay, _, file = b.partition("=")
            docs = [d for d in yaml.safe_load_all(Path(file).read_text()) if d]
            root = Path(tmp) / overlay
            root.mkdir()
            vols = Volumes(docs, root)
            for d in docs:
                owner = f"{d['kind']} {d['metadata']['name']}"
                for t in pod_templates(d):
                    pod = t.get("spec") or {}
                    for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
                        check_container(overlay, owner, pod, c, vols, tag_map, a.skip_missing, set(a.only))
    if failures:
        print(f"manifest-images: {len(failures)} failure(s)", flush=True)
        return 1
    return 0


def podman_run(a, tag_map: dict) -> int:
    if len(a.built) != 1 or not a.root:
        print("--podman-run needs exactly one --built and a --root", file=sys.stderr)
        return 2
    want_obj, _, want_c = a.podman_run.partition(":")
    docs = [d for d in yaml.safe_load_all(Path(a.built[0].partition("=")[2]).read_text()) if d]
    vols = Volumes(docs, Path(a.root))
    for d in docs:
        owner = f"{d['kind']}/{d['metadata']['name']}"
        if owner != want_obj:
            continue
        for t in pod_templates(d):
            pod = t.get("spec") or {}
            for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
                if c["name"] != want_c:
                    continue
                opts, env_opts, problems = run_options(owner.replace("/", "-"), pod, c, vols)
                if problems:
                    print(f"{a.podman_run}: " + "; ".join(problems), file=sys.stderr)
                    return 1
                name, tag = image_name(c["image"])
                args = list(c.get("args") or [])
                for sa in a.set_arg:
                    flag, _, value = sa.partition("=")
                    if flag in args:
                        args[args.index(flag) + 1] = value
                    else:
                        args += [flag, value]
                entry = ["--entrypoint", c["command"][0]] if c.get("command") else []
                rest = (c.get("command") or [])[1:]
                print("\n".join([*opts, *env_opts, *entry, tag_map.get(name, f"localhost/{name}:{tag}"), *rest, *args]))
                return 0
    print(f"{a.podman_run}: no such container in {a.built[0]}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
