// Validates custom resources against their own schemas (the KEDA and Prometheus Operator CRDs,
// as the @kubernetes-models packages ship them). Reads a JSON array of objects on stdin; prints
// a JSON array with, for each, its kind/name and the schema errors found ([] when valid).
// Used by tests/deploy/test_kubernetes.py.
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const MODELS = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((object) => {
  const key = `${object.apiVersion}/${object.kind}`;
  const Model = MODELS[key];
  const id = `${key} ${object.metadata?.name}`;
  if (!Model) return { id, errors: [`no schema for ${key}`] };
  try {
    new Model(object).validate();
    return { id, errors: [] };
  } catch (error) {
    return { id, errors: [String(error.message ?? error)] };
  }
});
process.stdout.write(JSON.stringify(results));
