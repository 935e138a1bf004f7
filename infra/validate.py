"""Offline validation of the deployment files, run by `make lint` (no cluster, no Docker engine).

1. infra/k8s/base: every file the kustomization lists exists and every manifest is listed; built-in
   kinds pass kubernetes-validate (strict: unknown fields are errors); KEDA's ScaledObject and
   TriggerAuthentication pass KEDA's CRD schemas (node, @kubernetes-models/keda in infra/k8s/crd-check).
2. Cross-references no schema can see: each ScaledObject scales a Deployment of this base on a Redis
   list that is a Celery queue of photomatch; every long-running container has requests, limits and
   a liveness probe; every scaled Deployment has a PodDisruptionBudget; secrets come from the Secret.
3. infra/grafana/*.json: every series a panel queries is one photomatch defines (photomatch.metrics),
   so a renamed metric cannot leave an empty dashboard behind.
4. docker-compose.yml: `docker-compose config` accepts it with a generated .env and refuses it when
   FLOWER_BASIC_AUTH (or any other required secret) is missing.

Prints one JSON summary; exits 1 with the reasons when anything fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "infra" / "k8s" / "base"
CRD_CHECK = ROOT / "infra" / "k8s" / "crd-check"
K8S_VERSION = "1.33.0"
SECRET = "photomatch-secrets"
QUEUES = ("faces", "cpu")  # photomatch.queue.QUEUES; imported lazily below to check they agree


def load_base() -> tuple[list[tuple[Path, dict[str, Any]]], list[str]]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    errors = [f"{name}: listed in kustomization.yaml but missing" for name in listed if not (BASE / name).is_file()]
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    errors += [f"{name}: not listed in kustomization.yaml" for name in sorted(on_disk - set(listed))]
    docs = [
        (BASE / name, doc)
        for name in listed
        if (BASE / name).is_file()
        for doc in yaml.safe_load_all((BASE / name).read_text())
        if doc
    ]
    return docs, errors


def render(docs: list[tuple[Path, dict[str, Any]]]) -> tuple[list[tuple[Path, dict[str, Any]]], str]:
    """The base as kustomize renders it (namespace and labels applied), when kubectl is installed."""
    if shutil.which("kubectl") is None:
        return docs, "files (kubectl not installed)"
    run = subprocess.run(["kubectl", "kustomize", str(BASE)], capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"kubectl kustomize {BASE} failed:\n{run.stderr}")
    rendered = [doc for doc in yaml.safe_load_all(run.stdout) if doc]
    if len(rendered) != len(docs):
        raise SystemExit(f"kustomize rendered {len(rendered)} resources, the files hold {len(docs)}")
    path = BASE / "kustomization.yaml"
    return [(path, doc) for doc in rendered], "kubectl kustomize"


def validate_builtin(docs: list[tuple[Path, dict[str, Any]]]) -> tuple[int, list[str]]:
    errors, checked = [], 0
    for path, doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {e.message} at {list(e.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{path.name}: no schema for {doc['apiVersion']} {doc['kind']}")
    return checked, errors


def validate_keda(paths: list[Path]) -> tuple[int | None, list[str]]:
    """None when node is not installed (reported, not failed: kubernetes-validate still ran)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None, []
    if not (CRD_CHECK / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=CRD_CHECK, check=True)
    run = subprocess.run(["node", "check.mjs", *map(str, paths)], cwd=CRD_CHECK, capture_output=True, text=True)
    if run.returncode:
        return 0, [line for line in run.stderr.splitlines() if line.strip()] or [run.stdout]
    return int(json.loads(run.stdout)["keda_resources_valid"]), []


def cross_check(docs: list[tuple[Path, dict[str, Any]]]) -> list[str]:
    from photomatch.queue import QUEUES as APP_QUEUES

    errors = [] if tuple(APP_QUEUES) == QUEUES else [f"queues {APP_QUEUES} != {QUEUES}"]
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for _, doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    deployments = by_kind.get("Deployment", {})
    pdb_targets = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for d in by_kind.get("PodDisruptionBudget", {}).values()
    }
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        for c in pod["containers"]:
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                errors.append(f"Deployment/{name}: container {c['name']} lacks resource requests or limits")
            if "livenessProbe" not in c:
                errors.append(f"Deployment/{name}: container {c['name']} has no liveness probe")
            if {"secretRef": {"name": SECRET}} not in c.get("envFrom", []):
                errors.append(f"Deployment/{name}: container {c['name']} does not read the Secret {SECRET}")
            for env in c.get("env", []):
                if any(word in env["name"] for word in ("SECRET", "PASSWORD", "BASIC_AUTH")) and "value" in env:
                    errors.append(f"Deployment/{name}: {env['name']} has a literal value; use the Secret")
    for name, so in by_kind.get("ScaledObject", {}).items():
        target = so["spec"]["scaleTargetRef"]["name"]
        if target not in deployments:
            errors.append(f"ScaledObject/{name}: scales {target}, which is no Deployment of this base")
        elif deployments[target]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] not in pdb_targets:
            errors.append(f"Deployment/{target}: scaled but has no PodDisruptionBudget")
        for trig in so["spec"]["triggers"]:
            if trig["type"] != "redis" or trig["metadata"].get("listName") not in QUEUES:
                errors.append(f"ScaledObject/{name}: trigger must be a Redis list named after a queue {QUEUES}")
    gpu = deployments.get("photomatch-worker-gpu")
    limits = gpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] if gpu else {}
    if limits.get("nvidia.com/gpu") != 1:
        errors.append("Deployment/photomatch-worker-gpu must limit nvidia.com/gpu to 1")
    scaled = {so["spec"]["scaleTargetRef"]["name"] for so in by_kind.get("ScaledObject", {}).values()}
    if scaled != {"photomatch-worker-gpu", "photomatch-worker-cpu"}:
        errors.append(f"KEDA must scale both worker Deployments, scales {sorted(scaled)}")
    return errors


def validate_dashboards() -> tuple[int, list[str]]:
    import re

    from prometheus_client import REGISTRY

    import photomatch.metrics as metrics

    known: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    for family in REGISTRY.collect():
        known |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    # Scrape-time gauges (StateCollector) exist only inside /metrics; read their names from the code.
    known |= set(re.findall(r'GaugeMetricFamily\(\s*"(\w+)"', Path(metrics.__file__).read_text()))
    errors, checked = [], 0
    for path in sorted((ROOT / "infra" / "grafana").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                checked += 1
                for name in set(re.findall(r"\b(photomatch_\w+)", target["expr"])):
                    if name not in known:
                        errors.append(f"{path.name}: panel {panel['title']!r} queries unknown series {name}")
    if not checked:
        errors.append("no dashboard queries found under infra/grafana")
    return checked, errors


def validate_compose() -> tuple[bool | None, list[str]]:
    """None when Debian's docker-compose is not installed."""
    if shutil.which("docker-compose") is None:
        return None, []
    env_text = subprocess.run(
        ["sh", str(ROOT / "infra" / "make-env")], capture_output=True, text=True, check=True
    ).stdout
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        clean = {
            k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "FLOWER_BASIC_AUTH", "POSTGRES_PASSWORD")
        }

        def config(text: str) -> subprocess.CompletedProcess[str]:
            env_file = Path(tmp) / "env"
            env_file.write_text(text)
            argv = [
                "docker-compose",
                "--env-file",
                str(env_file),
                "-f",
                str(ROOT / "docker-compose.yml"),
                "config",
                "-q",
            ]
            return subprocess.run(argv, capture_output=True, text=True, env=clean, cwd=tmp)

        ok = config(env_text)
        if ok.returncode:
            errors.append(f"docker-compose config with a generated .env failed: {ok.stderr.strip()}")
        for required in ("FLOWER_BASIC_AUTH", "SECRET_KEY", "POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"):
            without = "".join(line + "\n" for line in env_text.splitlines() if not line.startswith(required + "="))
            refused = config(without)
            if refused.returncode == 0 or required not in refused.stderr:
                errors.append(f"docker-compose config accepted a .env without {required}")
    return not errors, errors


def main() -> int:
    docs, errors = load_base()
    docs, rendered_by = render(docs)
    builtin, errs = validate_builtin(docs)
    errors += errs
    with tempfile.TemporaryDirectory() as tmp:
        keda_file = Path(tmp) / "keda.yaml"
        keda_file.write_text(yaml.safe_dump_all([d for _, d in docs if d["apiVersion"].startswith("keda.sh/")]))
        keda, errs = validate_keda([keda_file])
    errors += errs
    errors += cross_check(docs)
    queries, errs = validate_dashboards()
    errors += errs
    compose, errs = validate_compose()
    errors += errs
    summary = {
        "k8s_version": K8S_VERSION,
        "rendered_by": rendered_by,
        "builtin_resources_valid": builtin,
        "keda_resources_valid": keda if keda is not None else "skipped: node/npm not installed",
        "dashboard_queries_valid": queries,
        "compose_config": compose if compose is not None else "skipped: docker-compose not installed",
        "errors": errors,
    }
    print(json.dumps(summary, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
