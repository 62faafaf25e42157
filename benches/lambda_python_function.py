#!/usr/bin/env python3
"""The seed's Python Lambda pattern, as a Lambda custom runtime: what every
Amazon Connect customer writes today, measured next to ``reseal lambda``.

A Lambda-runtime-style loop (``GET /2018-06-01/runtime/invocation/next``,
``POST .../invocation/{id}/response``) around a handler that does the Connect
Lambda's job with the reference Python ESDK: decrypt the Connect ciphertext
from ``Details.Parameters`` (0x0378, raw RSA OAEP-SHA512, provider
``AmazonConnect``) with the Connect private key, then encrypt the plaintext once
per consumer of the event's route (0x0478, the consumer's RSA-2048 public key,
OAEP-SHA256, frame length 4096), and answer a flat map of base64 envelopes.

As a warm Lambda keeps them, the keys are loaded and the master keys and the
client built once, at init (outside the handler): its best case. Nothing is
logged per invocation.

Environment: ``AWS_LAMBDA_RUNTIME_API`` (host:port), ``BENCH_DIR`` (written by
``benches/lambda.py``: ``bench.json``, ``connect.pem``,
``consumers/<name>.pub.pem``).
"""
import base64
import json
import os
import sys
import urllib.request
from pathlib import Path

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey

ENVELOPE_SUITE = Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY  # 0x0478
FRAME_LENGTH = 4096


def master_key(provider, key_id, pem, key_type, wrapping):
    return RawMasterKey(
        provider_id=provider,
        key_id=key_id.encode() if isinstance(key_id, str) else key_id,
        wrapping_key=WrappingKey(wrapping_algorithm=wrapping, wrapping_key=pem, wrapping_key_type=key_type),
    )


# ---- init: keys, master keys, client (once per execution environment)
ROOT = Path(os.environ["BENCH_DIR"])
SPEC = json.loads((ROOT / "bench.json").read_text())
CONNECT = master_key(
    "AmazonConnect",
    SPEC["connect_key_id"],
    (ROOT / "connect.pem").read_bytes(),
    EncryptionKeyType.PRIVATE,
    WrappingAlgorithm.RSA_OAEP_SHA512_MGF1,
)
CONSUMERS = {
    name: master_key(
        "reseal",
        name,
        (ROOT / "consumers" / f"{name}.pub.pem").read_bytes(),
        EncryptionKeyType.PUBLIC,
        WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
    )
    for name in SPEC["consumers"]
}
ROUTES = SPEC["routes"]
# Decrypts Connect's non-committed 0x0378, encrypts committed 0x0478.
CLIENT = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT)


def handler(event):
    params = event["Details"]["Parameters"]
    ciphertext = base64.b64decode(params["my-secret-string"])
    plaintext, _header = CLIENT.decrypt(source=ciphertext, key_provider=CONNECT)
    answer = {"status": "OK", "requestId": event["Details"]["ContactData"]["ContactId"]}
    for name in ROUTES[params["route"]]:
        envelope, _ = CLIENT.encrypt(
            source=plaintext,
            key_provider=CONSUMERS[name],
            algorithm=ENVELOPE_SUITE,
            frame_length=FRAME_LENGTH,
        )
        answer[name] = base64.b64encode(envelope).decode()
    return answer


def main():
    api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
    while True:
        with urllib.request.urlopen(api + "/invocation/next") as r:
            request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(r.read())
        try:
            body, path = json.dumps(handler(event)).encode(), f"/invocation/{request_id}/response"
        except Exception as e:  # noqa: BLE001 - the runtime reports any failure
            body = json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}).encode()
            path = f"/invocation/{request_id}/error"
        req = urllib.request.Request(api + path, data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        urllib.request.urlopen(req).read()


if __name__ == "__main__":
    sys.exit(main())
