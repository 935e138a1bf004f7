// Validate KEDA resources (ScaledObject, TriggerAuthentication) in the given YAML files against
// KEDA's CRD schemas, as packaged by @kubernetes-models/keda. Other kinds are skipped: Python's
// kubernetes-validate checks them. Exit 1 on the first invalid document set.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { ScaledObject, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";

const kinds = { ScaledObject, TriggerAuthentication };
let failed = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const obj = doc.toJS();
    if (!obj || obj.apiVersion !== "keda.sh/v1alpha1") continue;
    const Model = kinds[obj.kind];
    if (!Model) {
      console.error(`ERROR ${file}: no schema for ${obj.apiVersion} ${obj.kind}`);
      failed++;
      continue;
    }
    try {
      new Model(obj).validate();
      checked++;
    } catch (err) {
      console.error(`ERROR ${file}: ${obj.kind}/${obj.metadata?.name}: ${err.message}`);
      failed++;
    }
  }
}
console.log(JSON.stringify({ keda_resources_valid: checked, invalid: failed }));
process.exit(failed ? 1 : 0);
