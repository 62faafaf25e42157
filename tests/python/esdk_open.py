#!/usr/bin/env python3
"""The reference Python ESDK opens envelopes reseal made, as each consumer would.

Usage: esdk_open.py CASES_JSON

CASES_JSON is a list of cases::

    [{"label": "connect payments",
      "envelope": "<base64 ESDK message>",
      "plaintext": "<base64 of the expected plaintext>",
      "keys": [{"name": "payments-2026", "pem": "/path/payments.pem"}],
      "context": {"reseal-consumer-id": "payments"}}]

Every case is opened with every key listed (raw RSA, provider ``reseal``, the
key name as key id, OAEP-SHA256/MGF1-SHA256, the reseal default), by a client
that requires key commitment; the plaintext must match, and so must the
encryption-context pairs given. Prints ``ok LABEL with KEY`` per success and
``FAIL ...`` for the first failure (exit 1).
"""
import base64
import json
import sys

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey


def master_key(key_name, pem):
    return RawMasterKey(
        provider_id="reseal",
        key_id=key_name.encode(),
        wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
            wrapping_key=pem,
            wrapping_key_type=EncryptionKeyType.PRIVATE,
        ),
    )


def main():
    cases = json.load(open(sys.argv[1]))
    if not cases:
        print("FAIL no cases")
        return 1
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    for case in cases:
        envelope = base64.b64decode(case["envelope"])
        expected = base64.b64decode(case["plaintext"])
        for key in case["keys"]:
            with open(key["pem"], "rb") as f:
                pem = f.read()
            try:
                plaintext, header = client.decrypt(source=envelope, key_provider=master_key(key["name"], pem))
            except Exception as e:  # noqa: BLE001 - report any refusal
                print(f"FAIL {case['label']} with {key['name']}: {type(e).__name__}: {e}")
                return 1
            if plaintext != expected:
                print(f"FAIL {case['label']} with {key['name']}: another plaintext")
                return 1
            for k, v in case.get("context", {}).items():
                if header.encryption_context.get(k) != v:
                    print(f"FAIL {case['label']}: context {k} is {header.encryption_context.get(k)!r}, not {v!r}")
                    return 1
            print(f"ok {case['label']} with {key['name']}")
    print(f"all {len(cases)} envelopes opened")
    return 0


if __name__ == "__main__":
    sys.exit(main())
