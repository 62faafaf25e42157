#!/usr/bin/env python3
"""Offline tests of the reseal Helm chart (helm/reseal) and the Dockerfile.

Uses Helm's own Go library through helm-python-sdk (module ``helm_python``):
``helm_python.lint`` (strict), ``Chart.load``, ``Chart.validate_schema`` and
``Chart.render``. Every rendered manifest is validated with kubernetes-validate
in strict mode against offline Kubernetes schemas; CRD-backed kinds (the
ServiceMonitor) have no such schema and are checked structurally instead.

No cluster, helm binary or docker daemon is needed.

Usage (from the repository root): python tests/python/helm_chart.py
Prints one line per check; exits non-zero if any check failed.
"""
import base64
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import helm_python as helm
    import jsonschema
    import kubernetes_validate
    import yaml
except ImportError as e:  # pragma: no cover - environment problem, not a chart problem
    print(f"FAIL test dependencies missing ({e}); install tests/python/requirements.txt into {sys.executable}")
    sys.exit(2)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "reseal"
DOCKERFILE = ROOT / "Dockerfile"

# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion: grpc probes,
# lifecycle.preStop.sleep) and the newest schema kubernetes-validate ships.
KUBE_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
# Kinds served by CRDs: kubernetes-validate has no schema for them. The
# PrometheusRule is validated against a JSON schema shipped with the tests
# (transcribed from the prometheus-operator CRD); the ServiceMonitor is checked
# structurally.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
PROMETHEUS_RULE_SCHEMA = Path(__file__).resolve().parent / "schemas" / "prometheusrule.json"
ALERTS = {"ResealKeyExpiringSoon", "ResealKeyExpired", "ResealRegistryReloadFailing", "ResealShedding",
          "ResealUpstreamUnavailable", "ResealNoSourceOpens"}
RELEASE, NAMESPACE = "demo", "payments"
FULLNAME = f"{RELEASE}-reseal"

FAILURES = []


def check(cond, what, detail=""):
    if cond:
        print(f"ok   {what}")
    else:
        FAILURES.append(what)
        print(f"FAIL {what}" + (f"\n     {detail}" if detail else ""))
    return cond


def info(what):
    print(f"info {what}")


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (a template bug YAML would hide)."""


def _no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def deep_merge(base, extra):
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


REGISTRY = {
    "sources": {
        "connect-primary": {
            "type": "raw-rsa",
            "provider_id": "AmazonConnect",
            "key_name": "6f1f2d3c-5a7b-4c8d-9e0f-1a2b3c4d5e6f",
            "private_key": "ssm:/amazon-connect/encryption/6f1f2d3c-5a7b-4c8d-9e0f-1a2b3c4d5e6f/private-key",
        }
    },
    "consumers": {
        "payments": {
            "keys": {
                "payments-2026": {
                    "type": "aws-kms",
                    "key_id": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                }
            }
        }
    },
    "routes": {"card-capture": ["payments"]},
    "limits": {"max_batch_items": 50},
}
ROLE_ARN = "arn:aws:iam::111122223333:role/reseal"
# A registry that needs no AWS (keys from env:), so that a local reseal binary
# can load the rendered file for real.
LOCAL_REGISTRY = {
    "sources": {"genesys-aes": {"type": "raw-aes", "provider_id": "genesys", "key_name": "org-key-1",
                                "key": "env:RESEAL_TEST_SOURCE_KEY"}},
    "consumers": {"vault": {"keys": {"vault-2026": {"type": "raw-aes", "key": "env:RESEAL_TEST_CONSUMER_KEY"}}}},
    "routes": {"card-capture": ["vault"]},
    "limits": {"max_batch_items": 50},
}

VALUE_SETS = {
    "defaults": {},
    "mtls": {"tls": {"enabled": True, "mtls": True, "secretName": "reseal-tls"}},
    "tls-only": {"tls": {"enabled": True, "secretName": "reseal-tls"}},
    "hpa-off": {"autoscaling": {"enabled": False}, "replicaCount": 3},
    "irsa": {"aws": {"irsa": True, "region": "us-east-1"}, "serviceAccount": {"irsaRoleArn": ROLE_ARN}},
    "servicemonitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}},
    "registry": {"config": REGISTRY},
    "local-registry": {"config": LOCAL_REGISTRY, "tls": {"enabled": True, "mtls": True, "secretName": "reseal-tls"}},
    "everything": {
        "tls": {"enabled": True, "mtls": True, "secretName": "reseal-tls"},
        "aws": {"irsa": True, "region": "eu-west-1", "endpointUrl": "http://localstack.dev:4566"},
        "serviceAccount": {"irsaRoleArn": ROLE_ARN, "annotations": {"example.com/owner": "payments"}},
        "serviceMonitor": {"enabled": True},
        "config": REGISTRY,
        "image": {"digest": "sha256:" + "ab" * 32},
        "autoscaling": {"targetMemoryUtilizationPercentage": 80},
        "podDisruptionBudget": {"minAvailable": "50%"},
        "extraEnv": [{"name": "RESEAL_LIMITS__MAX_BATCH_ITEMS", "value": "20"}],
        "extraVolumes": [{"name": "consumer-keys", "secret": {"secretName": "consumer-keys"}}],
        "extraVolumeMounts": [{"name": "consumer-keys", "mountPath": "/etc/reseal/keys", "readOnly": True}],
        "terminationGracePeriodSeconds": 60,
        "priorityClassName": "high",
        "networkPolicy": {"extraEgress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 4566}]}]},
    },
    "alerts-and-dashboard": {
        "config": REGISTRY,
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}, "keyExpiryDays": 21,
                           "additionalLabels": {"team": "payments"}},
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Payments"}},
        "serviceMonitor": {"enabled": True},
    },
    "otlp": {"config": deep_merge(REGISTRY, {"telemetry": {"otlp_endpoint": "http://otel-collector.monitoring:4317"}}),
             "networkPolicy": {"egress": {"otlp": {"to": [{"namespaceSelector": {"matchLabels": {
                 "kubernetes.io/metadata.name": "monitoring"}}}]}}}},
    "no-hook": {"config": REGISTRY, "validateHook": {"enabled": False},
                "networkPolicy": {"egress": {"instanceMetadata": {"enabled": False}, "podIdentity": {"enabled": False}}}},
    "http-api": {"config": LOCAL_REGISTRY, "httpApi": {"enabled": True},
                 "tls": {"enabled": True, "secretName": "reseal-tls"},
                 "networkPolicy": {"grpc": {"from": [{"podSelector": {"matchLabels": {"app": "genesys-bridge"}}}]}}},
    "closed-networkpolicy": {
        "networkPolicy": {
            "grpc": {"from": []},
            "metrics": {"namespace": ""},
            "egress": {"dns": {"enabled": False}, "aws": {"enabled": False}},
        },
        "preStopSleepSeconds": 0,
        "securityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None},
        "topologySpread": {"enabled": False},
    },
}


def render(chart, values):
    """Render with Helm's engine; returns [(template, document)] without NOTES.txt or empty docs."""
    out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for template, text in sorted(out.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.load_all(text, Loader=StrictLoader):
            if doc:
                docs.append((template, doc))
    return out, docs


def config_map(docs):
    """The release's ConfigMap (the pods mount it), among the hook's and the dashboard's."""
    found = [d for _, d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == f"{FULLNAME}-config"]
    assert len(found) == 1, f"expected one ConfigMap {FULLNAME}-config, got {len(found)}"
    return found[0]


def by_kind(docs, kind):
    return [d for _, d in docs if d.get("kind") == kind]


def one(docs, kind):
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def validate_all(label, docs):
    for template, doc in docs:
        kind, api = doc.get("kind"), doc.get("apiVersion")
        name = f"{label}: {kind}/{doc.get('metadata', {}).get('name')}"
        if (api, kind) == ("monitoring.coreos.com/v1", "PrometheusRule"):
            errors = sorted(jsonschema.Draft7Validator(json.loads(PROMETHEUS_RULE_SCHEMA.read_text()))
                            .iter_errors(doc), key=str)
            check(not errors, f"{name} valid against the PrometheusRule CRD schema (tests/python/schemas)",
                  "; ".join(f"{'.'.join(str(p) for p in e.path)}: {e.message}" for e in errors))
            continue
        if (api, kind) in CRD_KINDS:
            info(f"{name}: skipped by kubernetes-validate ({api} is CRD-backed, no offline schema)")
            continue
        for version in KUBE_VERSIONS:
            try:
                got = kubernetes_validate.validate(doc, version, strict=True)
                check(got == kubernetes_validate.utils.major_minor(version),
                      f"{name} valid (strict) for Kubernetes {got}")
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                check(False, f"{name} valid (strict) for Kubernetes {version}", f"{path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                check(False, f"{name} has a schema for Kubernetes {version}", e.message)


def check_deployment(label, values, docs):
    dep = one(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = next(c for c in pod["containers"] if c["name"] == "reseal")
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    merged = deep_merge(CHART_DEFAULTS, values)
    pfx = f"{label}: Deployment"

    check(psc.get("runAsNonRoot") is True and csc.get("runAsNonRoot") is True, f"{pfx} runs as non-root")
    if merged["securityContext"]["runAsUser"] is not None:
        check(psc.get("runAsUser") == 65532 and psc.get("runAsGroup") == 65532 and psc.get("fsGroup") == 65532,
              f"{pfx} pod runs as 65532:65532 (fsGroup 65532)")
    check(csc.get("readOnlyRootFilesystem") is True, f"{pfx} read-only root filesystem")
    check(csc.get("allowPrivilegeEscalation") is False, f"{pfx} no privilege escalation")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"] and not csc.get("capabilities", {}).get("add"),
          f"{pfx} capabilities drop ALL, add none")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
          and csc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{pfx} seccomp RuntimeDefault")
    check(c["args"] == ["serve", "--config", "/etc/reseal/config/reseal.yaml"], f"{pfx} runs `serve --config ...`")

    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    ports.pop("http-api", None)  # the HTTP/JSON door: check_http_api
    check(ports == {"grpc": 50051, "grpc-health": 50052, "http-admin": 9090}, f"{pfx} ports 50051/50052/9090")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = c.get(probe, {})
        check(p.get("grpc", {}).get("port") == 50052 and "httpGet" not in p and "exec" not in p,
              f"{pfx} {probe} is a kubelet grpc probe on 50052")

    pre = merged["preStopSleepSeconds"]
    sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
    if pre > 0:
        check(sleep == pre, f"{pfx} preStop sleeps {pre}s")
    else:
        check("lifecycle" not in c, f"{pfx} no preStop when preStopSleepSeconds is 0")
    grace = merged["server"]["shutdownGraceSeconds"]
    check(pod["terminationGracePeriodSeconds"] > pre + grace,
          f"{pfx} terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} > preStop {pre} + drain {grace}")
    live = c["livenessProbe"]
    check(live["periodSeconds"] * live["failureThreshold"] > grace, f"{pfx} liveness tolerates the drain window")

    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    check(mounts["config"]["mountPath"] == "/etc/reseal/config" and "subPath" not in mounts["config"]
          and "subPathExpr" not in mounts["config"], f"{pfx} ConfigMap mounted as a directory (no subPath)")
    check(vols["config"]["configMap"]["name"] == f"{FULLNAME}-config", f"{pfx} mounts the chart's ConfigMap")
    check(mounts["tmp"]["mountPath"] == "/tmp" and "emptyDir" in vols["tmp"], f"{pfx} emptyDir at /tmp")
    check(not any("subPath" in m or "subPathExpr" in m for m in c["volumeMounts"]), f"{pfx} no subPath mounts at all")
    if merged["tls"]["enabled"]:
        check(mounts["tls"]["mountPath"] == "/etc/reseal/tls" and "subPath" not in mounts["tls"],
              f"{pfx} TLS Secret mounted as a directory (no subPath)")
        check(vols["tls"]["secret"]["secretName"] == merged["tls"]["secretName"] and "items" not in vols["tls"]["secret"],
              f"{pfx} TLS volume is the whole Secret {merged['tls']['secretName']}")
    else:
        check("tls" not in mounts and "tls" not in vols, f"{pfx} no TLS volume when TLS is off")

    annotations = dep["spec"]["template"]["metadata"].get("annotations", {})
    check(not any(k.startswith("checksum/") or "config" in k.lower() for k in annotations),
          f"{pfx} no config checksum annotation", str(annotations))
    cm = config_map(docs)
    cm_hashes = {hashlib.sha256(cm["data"]["reseal.yaml"].encode()).hexdigest(),
                 hashlib.sha256(yaml.safe_dump(cm, sort_keys=True).encode()).hexdigest()}
    check(not any(str(v) in h or h in str(v) for v in annotations.values() for h in cm_hashes if len(str(v)) >= 8),
          f"{pfx} no annotation value is a hash of the ConfigMap")

    if merged["autoscaling"]["enabled"]:
        check("replicas" not in dep["spec"], f"{pfx} sets no replicas (the HPA owns them)")
        hpa = one(docs, "HorizontalPodAutoscaler")
        check(hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["name"] == FULLNAME,
              f"{label}: HPA autoscaling/v2 targets the Deployment")
        check((hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10), f"{label}: HPA min 2 / max 10")
        check(any(m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"]), f"{label}: HPA scales on CPU")
    else:
        check(dep["spec"].get("replicas") == merged["replicaCount"], f"{pfx} replicas {merged['replicaCount']} (HPA off)")
        check(not by_kind(docs, "HorizontalPodAutoscaler"), f"{label}: no HPA when autoscaling is off")

    ru = dep["spec"]["strategy"]["rollingUpdate"]
    check(dep["spec"]["strategy"]["type"] == "RollingUpdate" and ru["maxUnavailable"] == 0,
          f"{pfx} rolling update with maxUnavailable 0")
    res = c["resources"]
    check(res["requests"] == {"cpu": "250m", "memory": "64Mi"} and res["limits"] == {"memory": "256Mi"},
          f"{pfx} resources requests 250m/64Mi, limit 256Mi")
    if merged["topologySpread"]["enabled"]:
        tsc = pod.get("topologySpreadConstraints", [])
        check(tsc and all(t["whenUnsatisfiable"] == "ScheduleAnyway" for t in tsc),
              f"{pfx} soft topology spread ({', '.join(t['topologyKey'] for t in tsc)})")

    irsa = bool(merged["aws"]["irsa"] or merged["serviceAccount"]["irsaRoleArn"])
    check(pod["automountServiceAccountToken"] is irsa,
          f"{pfx} automountServiceAccountToken {str(irsa).lower()} ({'IRSA' if irsa else 'no IRSA'})")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    check(env.get("RUST_LOG") == "info", f"{pfx} RUST_LOG set")
    if merged["aws"]["region"]:
        check(env.get("AWS_REGION") == merged["aws"]["region"], f"{pfx} AWS_REGION={merged['aws']['region']}")
    else:
        check("AWS_REGION" not in env, f"{pfx} no AWS_REGION unless set")
    if merged["aws"]["endpointUrl"]:
        check(env.get("AWS_ENDPOINT_URL") == merged["aws"]["endpointUrl"], f"{pfx} AWS_ENDPOINT_URL set")

    digest = merged["image"]["digest"]
    expected = f"ghcr.io/reseal/reseal@{digest}" if digest else f"ghcr.io/reseal/reseal:{APP_VERSION}"
    check(c["image"] == expected, f"{pfx} image {c['image']}")
    return dep


def check_configmap(label, values, docs):
    merged = deep_merge(CHART_DEFAULTS, values)
    cm = config_map(docs)
    pfx = f"{label}: ConfigMap"
    check(cm["metadata"]["name"] == f"{FULLNAME}-config" and set(cm["data"]) == {"reseal.yaml"},
          f"{pfx} has exactly the key reseal.yaml")
    try:
        cfg = yaml.load(cm["data"]["reseal.yaml"], Loader=StrictLoader)
    except yaml.YAMLError as e:
        check(False, f"{pfx} reseal.yaml parses as YAML", str(e))
        return
    check(isinstance(cfg, dict), f"{pfx} reseal.yaml parses as a YAML mapping")
    server = cfg.get("server", {})
    check(server.get("listen") == "0.0.0.0:50051" and server.get("health_listen") == "0.0.0.0:50052"
          and server.get("admin_listen") == "0.0.0.0:9090", f"{pfx} server listens on 0.0.0.0:50051/50052/9090")
    check(server.get("log_format") == "json" and server.get("max_request_bytes") == 4194304
          and server.get("max_concurrent_requests") == 256 and server.get("request_timeout") == "10s"
          and server.get("reload_interval") == "2s", f"{pfx} server defaults (json, 4 MiB, 256, 10s, 2s)")
    check(server.get("shutdown_grace") == f"{merged['server']['shutdownGraceSeconds']}s",
          f"{pfx} shutdown_grace matches server.shutdownGraceSeconds")
    known = {"listen", "health_listen", "admin_listen", "log_format", "max_request_bytes",
             "max_concurrent_requests", "request_timeout", "reload_interval", "shutdown_grace", "tls",
             "worker_threads", "io_scheduling", "http_listen"}
    check(set(server) <= known, f"{pfx} server block has only fields reseal knows", str(set(server) - known))
    tls = merged["tls"]
    if tls["enabled"]:
        want = {"cert_file": "/etc/reseal/tls/tls.crt", "key_file": "/etc/reseal/tls/tls.key"}
        if tls["mtls"]:
            want["client_ca_file"] = "/etc/reseal/tls/ca.crt"
        check(server.get("tls") == want, f"{pfx} tls paths {'with' if tls['mtls'] else 'without'} client CA",
              str(server.get("tls")))
    else:
        check("tls" not in server, f"{pfx} no tls block when TLS is off")
    registry = {k: v for k, v in cfg.items() if k != "server"}
    check(registry == merged["config"], f"{pfx} carries the values' registry verbatim",
          f"got {registry!r}, want {merged['config']!r}")


def dep_labels(docs):
    return one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]


def check_others(label, values, docs):
    merged = deep_merge(CHART_DEFAULTS, values)
    svc = one(docs, "Service")
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    check(svc["spec"]["type"] == "ClusterIP", f"{label}: Service is ClusterIP")
    check(ports["grpc"]["port"] == 50051 and ports["grpc"].get("appProtocol") == "grpc"
          and ports["grpc"]["targetPort"] == "grpc", f"{label}: Service grpc 50051 appProtocol grpc")
    check(ports["metrics"]["port"] == 9090 and ports["metrics"]["targetPort"] == "http-admin",
          f"{label}: Service metrics 9090 -> admin port")
    check(set(ports) - {"http-api"} == {"grpc", "metrics"}, f"{label}: Service does not expose the probe port")

    sa = one(docs, "ServiceAccount")
    ann = sa["metadata"].get("annotations") or {}
    arn = merged["serviceAccount"]["irsaRoleArn"]
    if arn:
        check(ann.get("eks.amazonaws.com/role-arn") == arn, f"{label}: ServiceAccount has IRSA role {arn}")
    else:
        check("eks.amazonaws.com/role-arn" not in ann, f"{label}: ServiceAccount has no IRSA annotation")

    pdb = one(docs, "PodDisruptionBudget")
    want_min = merged["podDisruptionBudget"]["minAvailable"]
    want = {"minAvailable": want_min} if want_min not in (None, "") else {"maxUnavailable": 1}
    got = {k: v for k, v in pdb["spec"].items() if k in ("minAvailable", "maxUnavailable")}
    check(pdb["apiVersion"] == "policy/v1" and got == want
          and pdb["spec"]["selector"]["matchLabels"].items() <= dep_labels(docs).items(),
          f"{label}: PDB policy/v1 {want} selects the pods")

    np_ = one(docs, "NetworkPolicy")
    spec = np_["spec"]
    check(set(spec["policyTypes"]) == {"Ingress", "Egress"}, f"{label}: NetworkPolicy restricts ingress and egress")
    check(all(r.get("from") for r in spec["ingress"]),
          f"{label}: NetworkPolicy has no ingress rule without peers (which would admit everyone)")
    grpc_rules = [r for r in spec["ingress"] if any(p.get("port") == "grpc" for p in r.get("ports", []))]
    if merged["networkPolicy"]["grpc"]["from"]:
        check(len(grpc_rules) == 1 and grpc_rules[0]["from"] == merged["networkPolicy"]["grpc"]["from"],
              f"{label}: NetworkPolicy gRPC ingress only from the configured peers")
    else:
        check(not grpc_rules, f"{label}: NetworkPolicy admits no gRPC client when grpc.from is empty")
    mns = merged["networkPolicy"]["metrics"]["namespace"]
    metric_rules = [r for r in spec["ingress"] if any(p.get("port") == "http-admin" for p in r.get("ports", []))]
    if mns:
        check(len(metric_rules) == 1 and metric_rules[0]["from"][0]["namespaceSelector"]["matchLabels"]
              == {"kubernetes.io/metadata.name": mns}, f"{label}: NetworkPolicy metrics only from namespace {mns}")
    egress_ports = {(p.get("protocol", "TCP"), p.get("port")) for r in spec["egress"] for p in r.get("ports", [])}
    if merged["networkPolicy"]["egress"]["dns"]["enabled"]:
        check(("TCP", 53) in egress_ports and ("UDP", 53) in egress_ports, f"{label}: NetworkPolicy egress DNS")
    if merged["networkPolicy"]["egress"]["aws"]["enabled"]:
        check(("TCP", 443) in egress_ports, f"{label}: NetworkPolicy egress TCP 443 (AWS)")

    sms = by_kind(docs, "ServiceMonitor")
    if merged["serviceMonitor"]["enabled"]:
        ok = len(sms) == 1
        if ok:
            sm = sms[0]
            ep = sm["spec"]["endpoints"][0]
            ok = (sm["apiVersion"] == "monitoring.coreos.com/v1" and ep["port"] == "metrics"
                  and ep["path"] == "/metrics"
                  and sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
                  and sm["metadata"]["labels"].items() >= merged["serviceMonitor"]["labels"].items())
        check(ok, f"{label}: ServiceMonitor scrapes the Service's metrics port at /metrics (checked structurally)")
    else:
        check(not sms, f"{label}: no ServiceMonitor by default")


def check_hook(label, values, docs):
    """The pre-install/pre-upgrade hook: `reseal validate --offline` on this release's registry."""
    merged = deep_merge(CHART_DEFAULTS, values)
    jobs = by_kind(docs, "Job")
    hook_cms = [d for _, d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == f"{FULLNAME}-validate"]
    if not merged["validateHook"]["enabled"]:
        check(not jobs and not hook_cms, f"{label}: no validation hook when validateHook.enabled is false")
        return
    check(len(jobs) == 1 and len(hook_cms) == 1, f"{label}: one hook Job and its ConfigMap")
    job, cm = jobs[0], hook_cms[0]
    for what, doc, weight in (("Job", job, "0"), ("ConfigMap", cm, "-10")):
        ann = doc["metadata"].get("annotations", {})
        check(set(ann.get("helm.sh/hook", "").split(",")) == {"pre-install", "pre-upgrade"}
              and ann.get("helm.sh/hook-weight") == weight
              and "before-hook-creation" in ann.get("helm.sh/hook-delete-policy", ""),
              f"{label}: hook {what} runs pre-install and pre-upgrade (weight {weight}), replaced on the next run",
              str(ann))
    check(cm["data"]["reseal.yaml"] == config_map(docs)["data"]["reseal.yaml"],
          f"{label}: the hook validates exactly the reseal.yaml the pods mount")
    spec = job["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    check(c["args"] == ["validate", "--offline", "--config", "/etc/reseal/config/reseal.yaml"],
          f"{label}: hook runs `reseal validate --offline --config ...`", str(c["args"]))
    check(c["image"] == one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"],
          f"{label}: hook uses the release's image")
    check(spec.get("backoffLimit") == 0 and pod.get("restartPolicy") == "Never",
          f"{label}: hook fails at once (backoffLimit 0, restartPolicy Never)")
    check(pod.get("automountServiceAccountToken") is False and "serviceAccountName" not in pod,
          f"{label}: hook needs no ServiceAccount token (offline)")
    csc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and csc.get("readOnlyRootFilesystem") is True
          and csc.get("allowPrivilegeEscalation") is False and csc.get("capabilities", {}).get("drop") == ["ALL"],
          f"{label}: hook pod is as hardened as the Deployment's")
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    check(mounts.get("config") == "/etc/reseal/config" and vols["config"]["configMap"]["name"] == f"{FULLNAME}-validate",
          f"{label}: hook mounts its own copy of reseal.yaml")
    for extra in merged["extraVolumeMounts"]:
        check(mounts.get(extra["name"]) == extra["mountPath"], f"{label}: hook mounts extra volume {extra['name']} (file: keys)")
    pod_labels = spec["template"]["metadata"]["labels"]
    svc_sel = one(docs, "Service")["spec"]["selector"]
    pdb_sel = one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    check(not (svc_sel.items() <= pod_labels.items()) and not (pdb_sel.items() <= pod_labels.items()),
          f"{label}: neither the Service nor the PDB selects the hook's pod", str(pod_labels))


def check_prometheus_rule(label, values, docs):
    merged = deep_merge(CHART_DEFAULTS, values)
    rules = by_kind(docs, "PrometheusRule")
    if not merged["prometheusRule"]["enabled"]:
        check(not rules, f"{label}: no PrometheusRule by default")
        return
    check(len(rules) == 1, f"{label}: one PrometheusRule")
    pr = rules[0]
    check(pr["metadata"]["labels"].items() >= merged["prometheusRule"]["labels"].items(),
          f"{label}: PrometheusRule carries the labels Prometheus selects rules on")
    alerts = {r["alert"]: r for g in pr["spec"]["groups"] for r in g["rules"] if "alert" in r}
    check(set(alerts) == ALERTS, f"{label}: PrometheusRule alerts {sorted(ALERTS)}", str(sorted(alerts)))
    for name, r in alerts.items():
        expr = r["expr"]
        balanced = all(expr.count(a) == expr.count(b) for a, b in ("()", "[]", "{}"))
        check(balanced and f'namespace="{NAMESPACE}"' in expr and "{{" not in expr,
              f"{label}: {name} expr is balanced and scoped to the release namespace", expr)
        check(r["labels"].get("severity") in ("warning", "critical")
              and r["labels"].get("team") == merged["prometheusRule"]["additionalLabels"].get("team")
              and r["annotations"].get("summary"), f"{label}: {name} has a severity, the extra labels and a summary")
    days = merged["prometheusRule"]["keyExpiryDays"]
    check(f"< {days} * 86400" in alerts["ResealKeyExpiringSoon"]["expr"]
          and "reseal_key_not_after_timestamp_seconds" in alerts["ResealKeyExpiringSoon"]["expr"],
          f"{label}: key expiry alert fires {days} days ahead, on reseal_key_not_after_timestamp_seconds")
    check("{{ $labels.id }}" in alerts["ResealKeyExpiringSoon"]["annotations"]["summary"],
          f"{label}: alert annotations keep Prometheus' own templates (escaped from Helm)")
    check('outcome="UPSTREAM_UNAVAILABLE"' in alerts["ResealUpstreamUnavailable"]["expr"]
          and "reseal_registry_last_reload_success" in alerts["ResealRegistryReloadFailing"]["expr"]
          and "reseal_requests_shed_total" in alerts["ResealShedding"]["expr"]
          and 'reseal_source_key_uses_total{namespace="payments",outcome="OK"}' in alerts["ResealNoSourceOpens"]["expr"],
          f"{label}: alerts read the metrics reseal exports")
    # The schema means something: it refuses a rule without expr, and one with both alert and record.
    schema = json.loads(PROMETHEUS_RULE_SCHEMA.read_text())
    broken = copy.deepcopy(pr)
    broken["spec"]["groups"][0]["rules"][0].pop("expr")
    both = copy.deepcopy(pr)
    both["spec"]["groups"][0]["rules"][0]["record"] = "x"
    typo = copy.deepcopy(pr)
    typo["spec"]["groups"][0]["rules"][0]["anotations"] = {}
    for what, doc in (("a rule without expr", broken), ("a rule with alert and record", both),
                      ("a misspelt rule field", typo)):
        check(any(True for _ in jsonschema.Draft7Validator(schema).iter_errors(doc)),
              f"{label}: the PrometheusRule schema refuses {what}")


def check_dashboard(label, values, docs):
    merged = deep_merge(CHART_DEFAULTS, values)
    cms = [d for _, d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == f"{FULLNAME}-dashboard"]
    if not merged["grafanaDashboard"]["enabled"]:
        check(not cms, f"{label}: no dashboard ConfigMap by default")
        return
    check(len(cms) == 1, f"{label}: one dashboard ConfigMap")
    cm = cms[0]
    check(cm["metadata"]["labels"].get("grafana_dashboard") == "1"
          and cm["metadata"].get("annotations", {}) == merged["grafanaDashboard"]["annotations"],
          f"{label}: dashboard ConfigMap has the sidecar's label and the annotations")
    try:
        dash = json.loads(cm["data"]["reseal.json"])
    except (KeyError, ValueError) as e:
        check(False, f"{label}: dashboard is JSON", str(e))
        return
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    check(dash.get("uid") and dash.get("title") and len(dash["panels"]) >= 10 and all(exprs),
          f"{label}: dashboard has a uid, a title and {len(dash['panels'])} panels with queries")
    for needle in ("reseal_key_not_after_timestamp_seconds", "reseal_requests_total", "reseal_aws_calls_total",
                   "process_resident_memory_bytes", "reseal_registry_last_reload_success"):
        check(any(needle in e for e in exprs), f"{label}: dashboard shows {needle}")


def check_http_api(label, values, docs):
    """The HTTP/JSON door: container port, Service port, http_listen, NetworkPolicy, only when enabled."""
    merged = deep_merge(CHART_DEFAULTS, values)
    enabled = merged["httpApi"]["enabled"]
    port = merged["ports"]["http"]
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    svc = {p["name"]: p for p in one(docs, "Service")["spec"]["ports"]}
    cfg = yaml.safe_load(config_map(docs)["data"]["reseal.yaml"])
    listen = cfg.get("server", {}).get("http_listen")
    if enabled:
        check(ports.get("http-api") == port, f"{label}: container port http-api {port}", str(ports))
        check(svc.get("http-api", {}).get("targetPort") == "http-api"
              and svc["http-api"]["port"] == merged["service"]["ports"]["http"],
              f"{label}: Service port http-api", str(svc))
        check(listen == f"{merged['server']['listenHost']}:{port}", f"{label}: reseal listens on the HTTP/JSON port",
              str(listen))
        if merged["tls"]["enabled"]:
            check(svc["http-api"].get("appProtocol") == "https", f"{label}: the HTTP/JSON Service port is https")
        nps = by_kind(docs, "NetworkPolicy")
        if nps and merged["networkPolicy"]["grpc"]["from"]:
            rule = nps[0]["spec"]["ingress"][0]
            check({"port": "http-api", "protocol": "TCP"} in rule["ports"],
                  f"{label}: the NetworkPolicy admits the gRPC callers to the HTTP/JSON port", str(rule))
    else:
        check("http-api" not in ports and "http-api" not in svc and listen is None,
              f"{label}: no HTTP/JSON door unless httpApi.enabled")


def check_egress(label, values, docs):
    merged = deep_merge(CHART_DEFAULTS, values)
    nps = by_kind(docs, "NetworkPolicy")
    if not merged["networkPolicy"]["enabled"] or not nps:
        return
    egress = nps[0]["spec"]["egress"]
    def rule_to(cidr):
        return [r for r in egress if any(p.get("ipBlock", {}).get("cidr") == cidr for p in r.get("to", []))]
    eg = merged["networkPolicy"]["egress"]
    for what, cidr, on in (("instance metadata (IMDS)", "169.254.169.254/32", eg["instanceMetadata"]["enabled"]),
                           ("EKS Pod Identity", "169.254.170.23/32", eg["podIdentity"]["enabled"])):
        rules = rule_to(cidr)
        if on:
            check(len(rules) == 1 and rules[0]["ports"] == [{"port": 80, "protocol": "TCP"}],
                  f"{label}: NetworkPolicy egress to {what} {cidr} port 80")
        else:
            check(not rules, f"{label}: no egress to {what} when disabled")
    otlp = (merged["config"].get("telemetry") or {}).get("otlp_endpoint")
    otlp_rules = [r for r in egress if any(p.get("port") == 4317 for p in r.get("ports", []))]
    if otlp:
        check(len(otlp_rules) == 1 and otlp_rules[0].get("to") == (eg["otlp"]["to"] or None),
              f"{label}: NetworkPolicy egress to the OTLP port 4317 of {otlp}", str(otlp_rules))
    else:
        check(not otlp_rules, f"{label}: no OTLP egress without telemetry.otlp_endpoint")


def dockerfile_stages(text):
    """[(from_line, [instructions])] with line continuations joined and comments dropped."""
    lines, buf = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        lines.append(buf + s)
        buf = ""
    stages = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append((line, []))
        elif stages:
            stages[-1][1].append(line)
    return stages


def check_dockerfile(default_image):
    check(default_image == f"ghcr.io/reseal/reseal:{APP_VERSION}",
          f"default image is ghcr.io/reseal/reseal:<appVersion> ({default_image})")
    if not check(DOCKERFILE.is_file(), "Dockerfile exists"):
        return
    stages = dockerfile_stages(DOCKERFILE.read_text())
    check(len(stages) >= 2, f"Dockerfile is multi-stage ({len(stages)} stages)")
    build = [s for s in stages if re.search(r"\brust:1\.95-bookworm\b", s[0])]
    check(bool(build), "Dockerfile builds on rust:1.95-bookworm")
    check(any("cargo build --release --locked --bin reseal" in i for s in build for i in s[1]),
          "Dockerfile runs cargo build --release --locked --bin reseal")
    steps = [i for s in build for i in s[1]]
    check(any("strip" in i and "target/release/reseal" in i for i in steps),
          "Dockerfile strips the binary before copying it into the image")
    # cargo loads the whole workspace: every member's manifest must be in the build context.
    manifest = (ROOT / "Cargo.toml").read_text()
    members = re.search(r"members\s*=\s*\[([^\]]*)\]", manifest)
    members = [m for m in re.findall(r'"([^"]+)"', members.group(1)) if m != "."] if members else []
    copied = " ".join(i for i in steps if i.startswith("COPY"))
    missing = [m for m in members if m not in copied]
    check(bool(members) and not missing,
          f"Dockerfile copies every workspace member's manifest ({', '.join(members)})", str(missing))
    # The image's build_info commit: the REVISION argument reaches build.rs as RESEAL_COMMIT,
    # before the real sources are built (after the dependency layer, which it would rebuild).
    real_build = max((n for n, i in enumerate(steps) if "cargo build --release --locked --bin reseal" in i), default=-1)
    revision_at = [n for n, i in enumerate(steps) if re.match(r"ARG\s+REVISION\b", i)]
    commit_at = [n for n, i in enumerate(steps) if re.match(r"ENV\s+RESEAL_COMMIT=\$\{?REVISION\}?(\s|$)", i)]
    check(bool(revision_at) and bool(commit_at) and revision_at[0] < commit_at[0] < real_build,
          "Dockerfile passes its REVISION argument to the reseal build as RESEAL_COMMIT",
          f"ARG at {revision_at}, ENV at {commit_at}, build at {real_build}")
    runtime_from, runtime = stages[-1]
    check(re.match(r"FROM\s+gcr\.io/distroless/cc-debian12:nonroot(@sha256:[0-9a-f]{64})?(\s|$)", runtime_from)
          is not None, f"Dockerfile runtime stage is distroless nonroot ({runtime_from})")
    check(any(re.match(r"COPY\s+--from=\S+\s+.*\s/reseal$", i) for i in runtime), "Dockerfile copies the binary to /reseal")
    check('ENTRYPOINT ["/reseal"]' in runtime, "Dockerfile ENTRYPOINT [\"/reseal\"]")
    check('CMD ["serve", "--config", "/etc/reseal/config/reseal.yaml"]' in runtime
          or 'CMD ["serve","--config","/etc/reseal/config/reseal.yaml"]' in runtime,
          "Dockerfile CMD serve --config /etc/reseal/config/reseal.yaml (same path the chart mounts)")
    check("USER 65532:65532" in runtime, "Dockerfile USER 65532:65532 (matches the chart's runAsUser)")
    exposed = {p for i in runtime if i.startswith("EXPOSE") for p in i.split()[1:]}
    check(exposed == {"50051", "50052", "9090"}, f"Dockerfile EXPOSE 50051 50052 9090 ({sorted(exposed)})")
    check(any("org.opencontainers.image." in i for i in runtime if i.startswith("LABEL")), "Dockerfile has OCI labels")
    ignore = ROOT / ".dockerignore"
    entries = {l.strip().strip("/") for l in ignore.read_text().splitlines()} if ignore.is_file() else set()
    missing = {"target", ".venv", "node_modules", ".tmp", "dev-keys", ".git"} - entries
    check(not missing, ".dockerignore excludes target, .venv, node_modules, .tmp, dev-keys, .git", str(missing))


def find_reseal_binary():
    """$RESEAL_BIN, else a binary cargo already built (this script never builds one)."""
    if os.environ.get("RESEAL_BIN"):
        return Path(os.environ["RESEAL_BIN"])
    for p in (ROOT / "target" / "release" / "reseal", ROOT / "target" / "debug" / "reseal"):
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def check_with_reseal(configs):
    """Run what the hook runs (`reseal validate --offline`) on rendered reseal.yaml files, when a binary exists.

    configs: {label: (text, should_pass, needle)}; a failing config must print the needle.
    """
    binary = find_reseal_binary()
    if binary is None:
        info("reseal validate on rendered configs skipped: no binary (set RESEAL_BIN or build target/debug/reseal)")
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESEAL_", "AWS_"))}
    env["RESEAL_TEST_SOURCE_KEY"] = base64.b64encode(os.urandom(32)).decode()
    env["RESEAL_TEST_CONSUMER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    shown = binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary
    with tempfile.TemporaryDirectory() as tmp:
        for label, (text, should_pass, needle) in configs.items():
            path = Path(tmp) / f"{label}.yaml"
            path.write_text(text)
            try:
                r = subprocess.run([str(binary), "validate", "--offline", "--config", str(path)], env=env, cwd=tmp,
                                   capture_output=True, text=True, timeout=120)
                out = (r.stdout + r.stderr).strip()
                if should_pass:
                    ok = r.returncode == 0 and "0 failures" in r.stdout and needle in r.stdout
                else:
                    ok = r.returncode == 1 and needle in r.stdout
            except (OSError, subprocess.TimeoutExpired) as e:
                ok, out = False, str(e)
            verdict = "accepts" if should_pass else "refuses"
            check(ok, f"{label}: `{shown} validate --offline` (the hook's command) {verdict} the rendered reseal.yaml",
                  out)


def expect_refused(chart, values, what, needle):
    """Both schema validation and rendering must refuse `values`."""
    try:
        chart.validate_schema(values)
        check(False, f"schema refuses {what}", "validate_schema accepted it")
    except helm.HelmValuesError as e:
        check(needle in str(e), f"schema refuses {what}", str(e))
    try:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
        check(False, f"rendering refuses {what}", "render succeeded")
    except helm.HelmError as e:
        check(needle in str(e), f"rendering refuses {what}", str(e))


def expect_render_fails(chart, values, what, needle):
    """Schema-valid values that the templates must refuse (required/fail)."""
    try:
        chart.validate_schema(values)
        schema_ok = True
    except helm.HelmValuesError:
        schema_ok = False
    try:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
        check(False, f"rendering fails: {what}", "render succeeded")
    except helm.HelmRenderError as e:
        check(needle in str(e), f"rendering fails: {what}", str(e))
    except helm.HelmError as e:
        check(False, f"rendering fails: {what}", f"unexpected {type(e).__name__}: {e}")
    return schema_ok


def lint_problems(values=None):
    result = helm.lint(str(CHART), values, strict=True, kube_version="v" + KUBE_VERSIONS[0])
    return [m for m in result["messages"] if m["severity"] >= 2] + [{"error": e} for e in result["errors"]]


def guarded(what, fn, *args):
    """Run a group of checks; an exception (e.g. a missing field) is one failed check, not a crash."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - report anything as a failure and go on
        check(False, f"{what} (raised)", f"{type(e).__name__}: {e}")
        return None


def main():
    global CHART_DEFAULTS, APP_VERSION
    sys.stdout.reconfigure(line_buffering=True)  # keep our lines in order with Helm's stderr logs
    print(f"Helm SDK {helm.helm_sdk_version()} (helm-c {helm.helm_c_version()}), "
          f"kubernetes-validate {kubernetes_validate.__version__}, Kubernetes {', '.join(KUBE_VERSIONS)}")
    helm.disable_logging()

    # Lint (strict: warnings are errors), for defaults and each values set.
    problems = lint_problems()
    check(not problems, f"helm lint --strict --kube-version v{KUBE_VERSIONS[0]} (defaults)", str(problems))
    for label, values in VALUE_SETS.items():
        if label != "defaults":
            problems = lint_problems(values)
            check(not problems, f"helm lint --strict ({label})", str(problems))

    try:
        chart = helm.Chart.load(str(CHART))
    except helm.HelmError as e:
        check(False, f"Helm loads the chart at {CHART}", str(e))
        return report()
    with chart:
        meta = chart.metadata
        APP_VERSION = meta.get("appVersion")
        CHART_DEFAULTS = chart.values
        check((meta.get("apiVersion"), meta.get("name"), meta.get("version"), APP_VERSION)
              == ("v2", "reseal", "0.1.0", "0.1.0"), "Chart.yaml: apiVersion v2, reseal 0.1.0, appVersion 0.1.0")
        check(CHART_DEFAULTS.get("preStopSleepSeconds", 0) > 0, "preStop sleep is on by default")
        schema = chart.schema
        check(schema is not None and schema.get("$schema") == "http://json-schema.org/draft-07/schema#"
              and schema.get("additionalProperties") is False, "values.schema.json is draft-07 and closed at the top")

        # Render, validate, assert.
        rendered, reseal_configs = {}, {}
        for label, values in VALUE_SETS.items():
            try:
                chart.validate_schema(values)
                check(True, f"{label}: values pass values.schema.json")
                out, docs = render(chart, values)
            except (helm.HelmError, yaml.YAMLError) as e:
                check(False, f"{label}: renders to valid YAML", f"{type(e).__name__}: {e}")
                continue
            kinds = sorted(d["kind"] for _, d in docs)
            check(True, f"{label}: rendered {len(docs)} manifests ({', '.join(kinds)})")
            check(any(k.endswith("NOTES.txt") and out[k].strip() for k in out), f"{label}: NOTES.txt renders")
            rendered[label] = docs
            if label in ("defaults", "mtls", "local-registry", "registry", "otlp", "http-api"):
                reseal_configs[label] = guarded(f"{label}: ConfigMap", lambda: config_map(docs)["data"]["reseal.yaml"])
            guarded(f"{label}: kubernetes-validate", validate_all, label, docs)
            guarded(f"{label}: Deployment checks", check_deployment, label, values, docs)
            guarded(f"{label}: ConfigMap checks", check_configmap, label, values, docs)
            guarded(f"{label}: Service/ServiceAccount/PDB/NetworkPolicy/ServiceMonitor checks", check_others,
                    label, values, docs)
            guarded(f"{label}: validation hook checks", check_hook, label, values, docs)
            guarded(f"{label}: PrometheusRule checks", check_prometheus_rule, label, values, docs)
            guarded(f"{label}: dashboard checks", check_dashboard, label, values, docs)
            guarded(f"{label}: NetworkPolicy egress checks", check_egress, label, values, docs)
            guarded(f"{label}: HTTP/JSON door checks", check_http_api, label, values, docs)

        # The chart's default registry is empty: reseal refuses it (so the hook fails the
        # install, and a pod would never become Ready); a real one passes offline, its SSM
        # and KMS keys checked as configuration only.
        expectations = {
            "defaults": (False, "sources: no source keys"),
            "mtls": (False, "sources: no source keys"),
            "local-registry": (True, "OK    sources.genesys-aes"),
            "http-api": (True, "OK    sources.genesys-aes"),
            "registry": (True, "not checked (offline)"),
            "otlp": (True, "not checked (offline)"),
        }
        check_with_reseal({k: (reseal_configs[k],) + expectations[k] for k in expectations if reseal_configs.get(k)})

        # Hot reload: a registry change must leave the pod template untouched
        # (no restart); a start-only setting must change it (rollout).
        if "defaults" in rendered and "registry" in rendered:
            tpl = lambda docs: one(docs, "Deployment")["spec"]["template"]
            check(tpl(rendered["defaults"]) == tpl(rendered["registry"])
                  and config_map(rendered["defaults"]) != config_map(rendered["registry"]),
                  "registry change updates the ConfigMap only: pod template identical (no restart)")
            def rolls():
                _, grace = render(chart, {"server": {"shutdownGraceSeconds": 25}})
                _, aws = render(chart, {"config": {"aws": {"max_attempts": 2}}})
                return tpl(grace) != tpl(rendered["defaults"]) and tpl(aws) != tpl(rendered["defaults"])
            check(guarded("start-only change renders", rolls),
                  "start-only change (server.*, config.aws) changes the pod template (rollout)")

            server_of = lambda docs: yaml.safe_load(config_map(docs)["data"]["reseal.yaml"])["server"]

            # Threads: automatic (per core the container may use) unless set.
            def threads():
                _, set3 = render(chart, {"server": {"workerThreads": 3}})
                return "worker_threads" not in server_of(rendered["defaults"]) and server_of(set3).get("worker_threads") == 3
            check(guarded("server.workerThreads renders", threads),
                  "server.workerThreads: absent by default (one per core), rendered as worker_threads when set")
            expect_refused(chart, {"server": {"workerThreads": 0}}, "server.workerThreads: 0", "workerThreads")

            # Scheduling of the runtime threads: batch unless set to normal.
            def scheduling():
                _, normal = render(chart, {"server": {"ioScheduling": "normal"}})
                return (server_of(rendered["defaults"]).get("io_scheduling") == "batch"
                        and server_of(normal).get("io_scheduling") == "normal")
            check(guarded("server.ioScheduling renders", scheduling),
                  "server.ioScheduling: io_scheduling batch by default, normal when set")
            expect_refused(chart, {"server": {"ioScheduling": "fast"}}, 'server.ioScheduling: "fast"', "ioScheduling")

        # The schema refuses bad values, both on its own and when rendering.
        expect_refused(chart, {"replicaCount": "three"}, 'replicaCount: "three"', "replicaCount")
        expect_refused(chart, {"replicas": 3}, "an unknown top-level key (replicas)", "replicas")
        expect_refused(chart, {"tls": {"enabled": "yes"}}, 'tls.enabled: "yes"', "enabled")
        expect_refused(chart, {"tls": {"enabeld": True}}, "an unknown key under tls", "enabeld")
        expect_refused(chart, {"config": {"server": {"listen": "0.0.0.0:1"}}}, "config.server (chart-managed)", "server")
        expect_refused(chart, {"config": {"routes": {"r": "payments"}}}, "config.routes entry that is not a list", "routes")
        expect_refused(chart, {"extraVolumeMounts": [{"name": "x", "mountPath": "/x", "subPath": "y"}]},
                       "a subPath volume mount (breaks hot reload)", "extraVolumeMounts")
        expect_refused(chart, {"ports": {"grpc": 70000}}, "an out-of-range port", "grpc")

        # `required`/`fail` in templates: schema-valid values that must not render.
        no_secret = {"tls": {"enabled": True, "mtls": True}}
        schema_ok = expect_render_fails(chart, no_secret, "tls.enabled without tls.secretName", "tls.secretName is required")
        check(schema_ok, "TLS without secretName passes the schema (only rendering can catch it)")
        lint_missed = not lint_problems(no_secret)
        info(f"helm lint alone {'does not catch' if lint_missed else 'also catches'} the missing tls.secretName")
        expect_render_fails(chart, {"aws": {"irsa": True}}, "aws.irsa without serviceAccount.irsaRoleArn",
                            "serviceAccount.irsaRoleArn is required")
        expect_render_fails(chart, {"tls": {"mtls": True, "secretName": "s"}}, "tls.mtls without tls.enabled", "tls.mtls")
        expect_render_fails(chart, {"terminationGracePeriodSeconds": 20},
                            "terminationGracePeriodSeconds <= preStop + shutdown grace", "terminationGracePeriodSeconds")
        expect_render_fails(chart, {"autoscaling": {"minReplicas": 5, "maxReplicas": 3}},
                            "minReplicas > maxReplicas", "minReplicas")

        # The validator itself rejects a broken manifest (so "valid" above means something).
        dep = copy.deepcopy(one(rendered.get("defaults", []), "Deployment")) if "defaults" in rendered else None
        if dep is not None:
            dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["portt"] = 50052
            try:
                kubernetes_validate.validate(dep, KUBE_VERSIONS[0], strict=True)
                check(False, "kubernetes-validate (strict) rejects an unknown field")
            except kubernetes_validate.ValidationError:
                check(True, "kubernetes-validate (strict) rejects an unknown field")

        default_image = None
        if "defaults" in rendered:
            default_image = one(rendered["defaults"], "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        check_dockerfile(default_image)

    return report()


def report():
    total = len(FAILURES)
    if FAILURES:
        print(f"\n{total} check(s) FAILED:")
        for f in FAILURES:
            print(f"  - {f}")
        return 1
    print("\nall Helm chart checks passed")
    return 0


CHART_DEFAULTS = {}
APP_VERSION = None

if __name__ == "__main__":
    sys.exit(main())
