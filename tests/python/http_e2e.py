#!/usr/bin/env python3
"""The HTTP/JSON door seen by a client that is not reseal's own.

Reads a cases file written by the Rust test (tests/broker/http.rs and
tests/edge/http_auth.rs) and, with `requests`:

* checks docs/openapi.yaml is valid OpenAPI (openapi-spec-validator) and that
  every answer's body validates against its schema (jsonschema);
* runs each "call" case (a POST with a body and headers) and checks the HTTP
  status, the google.rpc.Status body (code, ErrorInfo reason, domain,
  request id), Retry-After on 429/503, and that no secret text appears in it;
* for successful calls, opens every envelope with the reference Python ESDK
  (aws-encryption-sdk) under the consumer's RSA private key and compares the
  plaintext.

Prints one line per check and `N passed, M failed`; exits 1 on any failure.

Cases file:
  {"openapi": PATH, "keys": DIR,
   "cases": [{"name", "url", "path", "headers": {}, "body": "<raw text>",
              "status": 200, "reason": "..." | null, "grpc_code": 3 | null,
              "retry_after": bool, "secrets": ["text that must not come back"],
              "open": {"consumer": [["key file", "key name"], ...]},
              "plaintext_b64": "...", "schema": "ReencryptResponse" | "ReencryptBatchResponse" | "Status"}]}
"""
import base64
import json
import sys
from pathlib import Path

import aws_encryption_sdk
import jsonschema
import requests
import yaml
from aws_encryption_sdk.identifiers import CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey
from openapi_spec_validator import validate

PASSED, FAILED = [], []


def check(cond, what, detail=""):
    (PASSED if cond else FAILED).append(what)
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or not detail else f"\n     {detail}"))
    return cond


def schema_of(spec, name):
    """A self-contained JSON schema for components/schemas/NAME (refs resolved)."""
    components = spec["components"]["schemas"]

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(components[node["$ref"].split("/")[-1]])
            return {k: resolve(v) for k, v in node.items() if k != "example"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(components[name])


def open_envelope(envelope, key_file, key_name):
    key = RawMasterKey(
        provider_id="reseal",
        key_id=key_name.encode(),
        wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
            wrapping_key=Path(key_file).read_bytes(),
            wrapping_key_type=EncryptionKeyType.PRIVATE,
        ),
    )
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT)
    plaintext, _ = client.decrypt(source=envelope, key_provider=key)
    return plaintext


def run(case, spec, keys):
    name = case["name"]
    headers = case.get("headers", {})
    try:
        r = requests.request(case.get("method", "POST"), case["url"] + case.get("path", "/v1/reencrypt"),
                             data=case.get("body", "").encode(), headers=headers, timeout=30,
                             verify=case.get("verify", True))
    except requests.RequestException as e:
        check(False, f"{name}: the call is answered", str(e))
        return
    check(r.status_code == case["status"], f"{name}: HTTP {case['status']}", f"got {r.status_code}: {r.text[:300]}")
    text = r.text
    for secret in case.get("secrets", []):
        check(secret not in text and secret not in str(r.headers), f"{name}: the answer repeats no secret")
    try:
        body = r.json()
    except ValueError:
        check(False, f"{name}: the answer is JSON", text[:200])
        return
    check(r.headers.get("content-type", "").startswith("application/json"), f"{name}: Content-Type is JSON")
    schema = case.get("schema") or ("Status" if case["status"] >= 400 else "ReencryptResponse")
    try:
        jsonschema.validate(body, schema_of(spec, schema))
        check(True, f"{name}: the body validates against the OpenAPI {schema} schema")
    except jsonschema.ValidationError as e:
        check(False, f"{name}: the body validates against the OpenAPI {schema} schema", e.message)
    if case["status"] >= 400:
        infos = [d for d in body.get("details", []) if d.get("@type") == "type.googleapis.com/google.rpc.ErrorInfo"]
        check(len(infos) == 1 and infos[0].get("reason") == case["reason"] and infos[0].get("domain") == "reseal.v1",
              f"{name}: ErrorInfo reason {case['reason']}", json.dumps(body)[:300])
        if case.get("grpc_code") is not None:
            check(body.get("code") == case["grpc_code"], f"{name}: google.rpc.Status code {case['grpc_code']}",
                  str(body.get("code")))
        rid = r.headers.get("x-request-id")
        check(bool(rid) and infos and infos[0].get("metadata", {}).get("request_id") == rid,
              f"{name}: the request id is in the header and the ErrorInfo")
        retry = case.get("retry_after", False)
        has = "retry-after" in {k.lower() for k in r.headers}
        check(has == retry, f"{name}: Retry-After {'present' if retry else 'absent'}")
        if retry:
            check(any(d.get("@type") == "type.googleapis.com/google.rpc.RetryInfo" for d in body["details"]),
                  f"{name}: RetryInfo detail")
        if r.status_code == 401:
            check("www-authenticate" in {k.lower() for k in r.headers}, f"{name}: WWW-Authenticate")
        return
    opens = case.get("open", {})
    if schema == "ReencryptBatchResponse":
        results = [res for item in body.get("results", []) for res in (item.get("response") or {}).get("results", [])]
    else:
        results = body.get("results", [])
    want = base64.b64decode(case["plaintext_b64"]) if "plaintext_b64" in case else None
    for consumer, key_list in opens.items():
        mine = [res for res in results if res.get("consumer") == consumer]
        if not check(bool(mine) and all("error" not in m for m in mine), f"{name}: {consumer} has an envelope"):
            continue
        for res in mine:
            envelope = base64.b64decode(res["ciphertext"])
            for key_file, key_name in key_list:
                try:
                    got = open_envelope(envelope, Path(keys) / key_file, key_name)
                    check(got == want, f"{name}: reference ESDK opens {consumer}'s envelope with {key_name}")
                except Exception as e:  # noqa: BLE001 - any failure is a failed check
                    check(False, f"{name}: reference ESDK opens {consumer}'s envelope with {key_name}", repr(e))


def main():
    cases = json.loads(Path(sys.argv[1]).read_text())
    spec = yaml.safe_load(Path(cases["openapi"]).read_text())
    try:
        validate(spec)
        check(True, "docs/openapi.yaml is valid OpenAPI")
    except Exception as e:  # noqa: BLE001
        check(False, "docs/openapi.yaml is valid OpenAPI", str(e)[:500])
    for case in cases["cases"]:
        run(case, spec, cases["keys"])
    # The served description is the shipped one.
    base = cases["cases"][0]["url"]
    served = requests.get(base + "/openapi.yaml", timeout=10, verify=cases["cases"][0].get("verify", True))
    check(served.status_code == 200 and yaml.safe_load(served.text) == spec, "GET /openapi.yaml serves docs/openapi.yaml")
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
