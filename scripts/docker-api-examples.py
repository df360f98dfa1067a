#!/usr/bin/env python3
"""Assembles Engine API response examples from a moby swagger file (api/docs/v1.NN.yaml):

    python3 scripts/docker-api-examples.py v1.52.yaml OUT-PREFIX

writes OUT-PREFIX-{version,info,networks,network-inspect,containers,container-inspect}.json,
each the endpoint's own example where it has one, else the examples of its schema's fields.
See Tests/PortcullisTests/Fixtures/docker-api/README.md."""
import yaml, json, sys
spec = yaml.safe_load(open(sys.argv[1]))
defs = spec["definitions"]
def ex(schema, depth=0):
    if depth > 12: return None
    if "$ref" in schema:
        return ex(defs[schema["$ref"].split("/")[-1]], depth+1)
    if "example" in schema: return schema["example"]
    if "allOf" in schema:
        out = {}
        for s in schema["allOf"]:
            v = ex(s, depth+1)
            if isinstance(v, dict): out.update(v)
        return out
    t = schema.get("type")
    if t == "object" or "properties" in schema:
        if "properties" in schema:
            out = {}
            for k, v in schema["properties"].items():
                e = ex(v, depth+1)
                if e is not None: out[k] = e
            return out
        if isinstance(schema.get("additionalProperties"), dict):
            e = ex(schema["additionalProperties"], depth+1)
            return {} if e is None else {"example": e}
        return {}
    if t == "array":
        e = ex(schema.get("items", {}), depth+1)
        return [] if e is None else [e]
    return None
paths = spec["paths"]
def resp(path):
    r = paths[path]["get"]["responses"][200]
    if "examples" in r: return r["examples"]["application/json"]
    return ex(r["schema"])
out = sys.argv[2]
for name, path in [("version", "/version"), ("info", "/info"), ("networks", "/networks"),
                   ("network-inspect", "/networks/{id}"), ("containers", "/containers/json"),
                   ("container-inspect", "/containers/{id}/json")]:
    json.dump(resp(path), open(f"{out}-{name}.json", "w"), indent=2, sort_keys=False)
