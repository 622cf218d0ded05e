"""deploy/: the Kubernetes manifests validated offline against the Kubernetes schemas
(kubernetes-validate), the config inside the ConfigMap accepted by `gossipctl config check`, and
the Kubernetes, Swarm and image settings kept aligned (integration/test_swarm.py runs the Swarm
stack for real; no Kubernetes cluster can be started here).
"""
from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CI"):   # in CI a missing validator is a failure, never a skip
    import kubernetes_validate as kv
    import yaml
else:
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate: pip install -e '.[integration]'")
    kv = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[integration]' (kubernetes-validate)")

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
SWARM = ROOT / "deploy" / "swarm"
# The oldest Kubernetes we claim (StatefulSet PVC retention is GA from 1.32, present since 1.23)
# and the newest schema the installed kubernetes-validate knows.
VERSIONS = sorted({"1.30.0", kv.latest_version()})
KUSTOMIZE_KINDS = {"Kustomization", "Component"}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def _patch_files() -> set[Path]:
    out = set()
    for k in _kustomizations():
        for p in _docs(k)[0].get("patches", []):
            out.add((k.parent / p["path"]).resolve())
    return out


def _manifests() -> list[Path]:
    """Every YAML file under deploy/kubernetes that is a Kubernetes resource (not a
    kustomization, not a patch)."""
    return [p for p in sorted(K8S.rglob("*.yaml"))
            if p.name != "kustomization.yaml" and p.resolve() not in _patch_files()]


def _by_kind(kind: str) -> dict[str, Any]:
    found = [d for p in _manifests() for d in _docs(p) if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} in deploy/kubernetes, found {len(found)}"
    return found[0]


def _container(sts: dict[str, Any]) -> dict[str, Any]:
    return sts["spec"]["template"]["spec"]["containers"][0]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def strategic_merge(base: Any, patch: Any) -> Any:
    """Enough of kustomize's strategic merge for our patches: maps merge recursively, lists of
    maps with a `name` merge by name (containers, env, volumes, volumeMounts), other lists are
    replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = strategic_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and all(isinstance(x, dict) and "name" in x
                                                                   for x in base + patch)):
        out = [copy.deepcopy(x) for x in base]
        index = {x["name"]: i for i, x in enumerate(out)}
        for item in patch:
            if item["name"] in index:
                out[index[item["name"]]] = strategic_merge(out[index[item["name"]]], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


# ---- schemas ---------------------------------------------------------------------------------------
def test_every_manifest_is_found():
    kinds = sorted(d["kind"] for p in _manifests() for d in _docs(p))
    assert kinds == ["ConfigMap", "PodDisruptionBudget", "Service", "StatefulSet"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", _manifests(), ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_matches_kubernetes_schema(path, version):
    for doc in _docs(path):
        try:
            kv.validate(doc, version, strict=True)   # strict: unknown fields are errors too
        except kv.ValidationError as exc:
            pytest.fail(f"{path.relative_to(ROOT)} ({doc['kind']}) against Kubernetes {version}: "
                        f"{exc.message} at {'/'.join(map(str, exc.path))}")


@pytest.mark.parametrize("version", VERSIONS)
def test_curve_component_patch_gives_a_valid_statefulset(version):
    component = K8S / "components" / "curve"
    patch = _docs(component / "statefulset-curve.yaml")[0]
    sts = strategic_merge(_by_kind("StatefulSet"), patch)
    kv.validate(sts, version, strict=True)
    container = _container(sts)
    env = _env(container)
    assert env["GOSSIPMQ_SECURITY__STRATEGY"] == "curve"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "curve-keys")
    assert env["GOSSIPMQ_SECURITY__TRUST_DIR"] == mount["mountPath"]
    assert env["GOSSIPMQ_SECURITY__KEY"].startswith(mount["mountPath"] + "/{id}")
    # every CURVE seed names a pod of this StatefulSet through its stable DNS name
    for seed in env["GOSSIPMQ_SEEDS"].split(","):
        m = re.fullmatch(r"(gossipmq-\d+)@tcp://(gossipmq-\d+)\.gossipmq:7946", seed)
        assert m and m.group(1) == m.group(2), seed


def test_kustomizations_reference_existing_files_and_every_manifest():
    listed: set[Path] = set()
    for k in _kustomizations():
        doc = _docs(k)[0]
        assert doc["kind"] in KUSTOMIZE_KINDS, k
        for entry in doc.get("resources", []) + doc.get("components", []):
            target = (k.parent / entry).resolve()
            assert target.exists(), f"{k.relative_to(ROOT)}: {entry} does not exist"
            if target.is_dir():
                assert (target / "kustomization.yaml").exists(), f"{k.relative_to(ROOT)}: {entry} has no kustomization"
            listed.add(target)
        for p in doc.get("patches", []):
            assert (k.parent / p["path"]).exists(), f"{k.relative_to(ROOT)}: patch {p['path']} does not exist"
    missing = [p.relative_to(ROOT) for p in _manifests() if p.resolve() not in listed]
    assert not missing, f"manifests no kustomization lists: {missing}"


# ---- the config inside the ConfigMap ----------------------------------------------------------------
def _configmap_toml() -> str:
    return _by_kind("ConfigMap")["data"]["gossipmq.toml"]


def test_configmap_toml_passes_gossipctl_config_check(tmp_path):
    path = tmp_path / "gossipmq.toml"
    path.write_text(_configmap_toml())
    proc = subprocess.run([sys.executable, "-m", "gossipmq", "config", "check", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr or proc.stdout
    assert "ok" in proc.stdout


def test_configmap_is_where_the_statefulset_reads_it():
    sts = _by_kind("StatefulSet")
    container = _container(sts)
    volume = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == _by_kind("ConfigMap")["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert _env(container)["GOSSIPMQ_CONFIG"] == f"{mount['mountPath']}/gossipmq.toml"


def test_config_with_the_pods_environment_is_valid(tmp_path):
    """The ConfigMap TOML with the StatefulSet's GOSSIPMQ_<TABLE>__<KEY> overrides (plain and
    with the CURVE component) is a valid config, as `gossipctl run` would build it."""
    from gossipmq.core.config import env_overrides, merge_overrides, parse_config
    from gossipmq.core.plugins import build_registry, make_plugin_manager

    registry = build_registry(make_plugin_manager())
    doc = tomllib.loads(_configmap_toml())
    plain = _env(_container(_by_kind("StatefulSet")))
    curve = _env(_container(strategic_merge(_by_kind("StatefulSet"),
                                            _docs(K8S / "components" / "curve" / "statefulset-curve.yaml")[0])))
    for env in (plain, curve):
        cfg = parse_config(merge_overrides(doc, env_overrides({k: v for k, v in env.items() if v})), registry,
                           "configmap")
        assert cfg.storage.backend == "sqlite"
    assert cfg.strategies["security"].name == "curve"


def test_kubernetes_swarm_and_image_configs_are_the_same():
    """One configuration everywhere: the ConfigMap, the Swarm config and the image default."""
    k8s = tomllib.loads(_configmap_toml())
    assert tomllib.loads((SWARM / "gossipmq.toml").read_text()) == k8s
    assert tomllib.loads((ROOT / "deploy" / "docker" / "gossipmq.toml").read_text()) == k8s


# ---- the StatefulSet: what the Swarm test proves for the stack ----------------------------------------
def _grace_needed_s() -> float:
    from gossipmq.transports import zmq_runtime as rt
    return rt.HANDOFF_TIMEOUT_S + rt.LEAVE_FLUSH_S + 1.0


def test_statefulset_shape():
    sts = _by_kind("StatefulSet")
    svc = _by_kind("Service")
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    container = _container(sts)
    env = _env(container)
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    assert env["GOSSIPMQ_SEEDS"] == svc["metadata"]["name"]          # the headless name: every pod
    assert env["GOSSIPMQ_NODE_ID"] == "$(POD_NAME)"
    assert env["GOSSIPMQ_ADVERTISE"] == "tcp://$(POD_IP):7946"
    assert env["GOSSIPMQ_CLUSTER"]
    names = [e["name"] for e in container["env"]]
    assert names.index("POD_NAME") < names.index("GOSSIPMQ_NODE_ID")  # $(VAR) needs VAR defined before
    assert names.index("POD_IP") < names.index("GOSSIPMQ_ADVERTISE")
    assert pod["terminationGracePeriodSeconds"] > _grace_needed_s()
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["gossipctl", "leave"]
    assert container["readinessProbe"]["exec"]["command"][:3] == ["gossipctl", "status", "--wait-converged"]
    assert container["livenessProbe"]["exec"]["command"] == ["gossipctl", "status"]
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert any(m["mountPath"] == "/var/lib/gossipmq" and m["name"] == "data" for m in container["volumeMounts"])
    pdb = _by_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"] == spec["selector"]


def test_swarm_stack_shape():
    stack = yaml.safe_load((SWARM / "stack.yaml").read_text())
    (name, svc), = stack["services"].items()
    env = svc["environment"]
    deploy = svc["deploy"]
    assert deploy["endpoint_mode"] == "dnsrr"
    assert env["GOSSIPMQ_SEEDS"] == f"tasks.{name}"
    assert env["GOSSIPMQ_NODE_ID"] == svc["hostname"] == f"{name}-{{{{.Task.Slot}}}}"
    assert env["GOSSIPMQ_CLUSTER"] == _env(_container(_by_kind("StatefulSet")))["GOSSIPMQ_CLUSTER"]
    assert deploy["update_config"]["parallelism"] == 1 and deploy["update_config"]["order"] == "stop-first"
    grace = float(svc["stop_grace_period"].rstrip("s"))
    assert grace > _grace_needed_s()
    (net,) = svc["networks"]
    assert stack["networks"][net]["driver"] == "overlay" and stack["networks"][net]["attachable"] is True
    assert svc["volumes"][0].endswith(":/var/lib/gossipmq")
    curve = yaml.safe_load((SWARM / "curve.yaml").read_text())
    csvc = curve["services"][name]
    targets = {s["target"] for s in csvc["secrets"]}
    for slot in range(1, 8):
        assert {f"{name}-{slot}.key", f"{name}-{slot}.key_secret"} <= targets
    assert set(curve["secrets"]) == {s["source"] for s in csvc["secrets"]}


def test_dockerfile_shape():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim$", text, re.M)
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2                       # multi-stage
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M)                    # not root
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*gossipctl\", \"status", text, re.M)
    assert re.search(r'^VOLUME \["/var/lib/gossipmq"\]', text, re.M)
    assert "PIP_NO_INDEX=1" in text and "deploy/wheelhouse" in text          # the offline path
    assert not (ROOT / "integration" / "images" / "Dockerfile.node").exists()
