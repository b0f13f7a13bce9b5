"""Offline checks of the Kubernetes manifests in deploy/kubernetes.

1. Every kustomization's `resources` and `patches` resolve, and every YAML
   file there is used by a kustomization.
2. Every complete resource validates strictly against the Kubernetes schemas
   (kubernetes-validate; the ServiceMonitor against the schema beside this
   file); every patch names a resource of its kustomization.
3. Each overlay is built (`kubectl kustomize` or `kustomize build`, when one is
   installed), the output validated strictly, and checked for what the
   deployment promises: probes, resources, non-root read-only containers,
   secrets as files, the migration step, selectors that select.

Usage: check.py DIR (deploy/kubernetes). Exits 1 with one line per problem.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

# The oldest Kubernetes the manifests support, and the newest known.
VERSIONS = ["1.29.0", "1.37.0"]
HERE = Path(__file__).parent
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): HERE / "servicemonitor.schema.json",
}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def validate(resource, where):
    key = (resource.get("apiVersion"), resource.get("kind"))
    if key in CRD_SCHEMAS:
        schema = yaml.safe_load(CRD_SCHEMAS[key].read_text())
        for error in jsonschema.Draft202012Validator(schema).iter_errors(resource):
            path = ".".join(str(p) for p in error.absolute_path)
            problem(where, f"{key[1]} {path}: {error.message}")
        return
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problem(where, f"{key[1]} {path}: {e.message} (Kubernetes {version})")
        except kubernetes_validate.SchemaNotFoundError:
            problem(where, f"no schema for {key[1]} {key[0]} (Kubernetes {version})")


def kustomization_files(root):
    return sorted(root.rglob("kustomization.yaml"))


def resources_of(kustomization, seen=None):
    """(kind, name) of every resource a kustomization builds on."""
    seen = seen if seen is not None else set()
    doc = load(kustomization)[0]
    out = set()
    for entry in doc.get("resources", []):
        target = (kustomization.parent / entry).resolve()
        if target.is_dir():
            if target not in seen:
                seen.add(target)
                out |= resources_of(target / "kustomization.yaml", seen)
        elif target.is_file():
            out |= {(r["kind"], r["metadata"]["name"]) for r in load(target)}
    return out


def check_sources(root):
    used = set()
    for kustomization in kustomization_files(root):
        where = kustomization.relative_to(root)
        doc = load(kustomization)[0]
        if doc.get("kind") != "Kustomization":
            problem(where, "kind must be Kustomization")
        for entry in doc.get("resources", []):
            target = (kustomization.parent / entry).resolve()
            if target.is_dir():
                if not (target / "kustomization.yaml").is_file():
                    problem(where, f"resource {entry}: a directory without kustomization.yaml")
            elif target.is_file():
                used.add(target)
                for resource in load(target):
                    validate(resource, target.relative_to(root))
            else:
                problem(where, f"resource {entry} does not exist")
        known = resources_of(kustomization)
        for patch in doc.get("patches", []):
            if "path" in patch:
                target = (kustomization.parent / patch["path"]).resolve()
                if not target.is_file():
                    problem(where, f"patch {patch['path']} does not exist")
                    continue
                used.add(target)
                docs = load(target)
            else:
                docs = [yaml.safe_load(patch["patch"])]
            for d in docs:
                name = (d.get("kind"), d.get("metadata", {}).get("name"))
                if name not in known:
                    problem(where, f"patch names {name[0]}/{name[1]}, which the kustomization does not have")
    for path in sorted(root.rglob("*.yaml")):
        if path.name != "kustomization.yaml" and path.resolve() not in used:
            problem(path.relative_to(root), "used by no kustomization")


def kustomize_command():
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def containers(pod_spec):
    return pod_spec.get("initContainers", []) + pod_spec.get("containers", [])


def selects(selector, labels):
    wanted = selector.get("matchLabels", selector)
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def check_pod(where, spec, secret_files):
    if spec.get("automountServiceAccountToken") is not False:
        problem(where, "the service account token must not be mounted")
    pod_security = spec.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True:
        problem(where, "the pod must run as non-root (runAsNonRoot)")
    mounts_of_secrets = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
    for c in containers(spec):
        cw = f"{where} container {c['name']}"
        security = c.get("securityContext", {})
        if security.get("readOnlyRootFilesystem") is not True:
            problem(cw, "the root filesystem must be read-only")
        if security.get("allowPrivilegeEscalation") is not False:
            problem(cw, "privilege escalation must be off")
        if "ALL" not in security.get("capabilities", {}).get("drop", []):
            problem(cw, "every capability must be dropped")
        resources = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in resources.get(kind, {}):
                    problem(cw, f"resources.{kind}.{r} is missing")
        secret_dirs = [m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in mounts_of_secrets]
        for env in c.get("env", []):
            if "secretKeyRef" in env.get("valueFrom", {}):
                problem(cw, f"{env['name']} comes from a Secret through the environment; mount it as a file")
            if env["name"] in secret_files and not any(
                env.get("value", "").startswith(d + "/") for d in secret_dirs
            ):
                problem(cw, f"{env['name']} must name a file in a mounted Secret")


def check_overlay(name, docs):
    where = f"overlay {name}"
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        validate(d, where)
    deployment = next(iter(by_kind.get("Deployment", [])), None)
    if deployment is None:
        problem(where, "no Deployment")
        return
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    secret_files = {"PORTCULLIS_KEK_FILE", "PORTCULLIS_ADMIN_TOKENS_FILE", "PORTCULLIS_DATABASE_URL_FILE"}
    check_pod(f"{where} Deployment", spec, secret_files)
    server = next((c for c in spec["containers"] if c["name"] == "portcullis"), None)
    if server is None:
        problem(where, "no container named portcullis")
        return
    env = {e["name"]: e.get("value") for e in server.get("env", [])}
    for required in ("PORTCULLIS_KEK_FILE", "PORTCULLIS_ADMIN_TOKENS_FILE"):
        if required not in env:
            problem(where, f"{required} is not set")
    if "PORTCULLIS_DATABASE_URL" not in env and "PORTCULLIS_DATABASE_URL_FILE" not in env:
        problem(where, "no database configured")
    probes = {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in probes.items():
        if server.get(probe, {}).get("httpGet", {}).get("path") != path:
            problem(where, f"{probe} must GET {path}")
    services = [s for s in by_kind.get("Service", []) if s["metadata"]["name"] == "portcullis"]
    if not services:
        problem(where, "no Service named portcullis")
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
        for d in by_kind.get(kind, []):
            selector = d["spec"].get("selector") or d["spec"].get("podSelector")
            if not selects(selector, labels):
                problem(where, f"{kind} {d['metadata']['name']} does not select the pods")
    for kind in ("PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"):
        if kind not in by_kind:
            problem(where, f"no {kind}")
    service_labels = services[0]["metadata"].get("labels", {}) if services else {}
    for monitor in by_kind.get("ServiceMonitor", []):
        if not selects(monitor["spec"]["selector"], service_labels):
            problem(where, "the ServiceMonitor does not select the Service")
    migrates = any(c.get("args") == ["migrate"] for c in spec.get("initContainers", [])) or any(
        c.get("args") == ["migrate"] for job in by_kind.get("Job", []) for c in job["spec"]["template"]["spec"]["containers"]
    )
    if not migrates:
        problem(where, "nothing runs `portcullis migrate` (an init container or a Job)")
    for job in by_kind.get("Job", []):
        check_pod(f"{where} Job {job['metadata']['name']}", job["spec"]["template"]["spec"], secret_files)
    replicas = deployment["spec"].get("replicas", 1)
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    if env.get("PORTCULLIS_DATABASE_URL", "").startswith("sqlite:"):
        if replicas != 1 or hpas:
            problem(where, "SQLite serves one process: one replica, no autoscaler")
        if deployment["spec"].get("strategy", {}).get("type") != "Recreate":
            problem(where, "SQLite: the strategy must be Recreate (never two pods on one database)")
    else:
        if replicas < 2:
            problem(where, "PostgreSQL overlay: at least two replicas")
        for hpa in hpas:
            if hpa["spec"]["minReplicas"] < replicas:
                problem(where, "the autoscaler's minReplicas is below the Deployment's replicas")
            if hpa["spec"]["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
                problem(where, "the autoscaler scales another Deployment")
        if not hpas:
            problem(where, "no HorizontalPodAutoscaler")


def main():
    root = Path(sys.argv[1]).resolve()
    check_sources(root)
    command = kustomize_command()
    overlays = sorted(p.parent for p in (root / "overlays").glob("*/kustomization.yaml"))
    if not overlays:
        problem(root, "no overlays")
    if command is None:
        print("check.py: no kustomize or kubectl: overlays not built (each file was validated)", file=sys.stderr)
    else:
        for overlay in overlays:
            built = subprocess.run(command + [str(overlay)], capture_output=True, text=True)
            if built.returncode != 0:
                problem(f"overlay {overlay.name}", f"{' '.join(command)} failed: {built.stderr.strip()}")
                continue
            check_overlay(overlay.name, [d for d in yaml.safe_load_all(built.stdout) if d])
            print(f"check.py: overlay {overlay.name} built with {' '.join(command)} and checked", file=sys.stderr)
    for p in problems:
        print(p, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
