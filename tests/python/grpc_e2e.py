#!/usr/bin/env python3
"""End-to-end check of reseal with clients that are not reseal's own.

The reference Python ESDK plays Amazon Connect (it writes the input: suite
0x0378, RSA OAEP-SHA512, provider ``AmazonConnect``, key name = the Connect key
id, frame length 4096), a grpcio client generated from ``proto/`` calls
``Reencrypt`` and ``ReencryptBatch``, and the reference ESDK opens every
envelope with each consumer's own private key.

Usage: grpc_e2e.py --stubs DIR --addr HOST:PORT --health HOST:PORT --keys DIR --connect-key-id ID
Prints one line per check and exits non-zero on the first failure.
"""
import argparse
import base64
import sys
from pathlib import Path

import aws_encryption_sdk
import grpc
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey
from grpc_health.v1 import health_pb2, health_pb2_grpc

CARD = b"4111111111111111"


def master_key(provider, key_id, pem, key_type, algorithm):
    return RawMasterKey(
        provider_id=provider,
        key_id=key_id.encode(),
        wrapping_key=WrappingKey(wrapping_algorithm=algorithm, wrapping_key=pem, wrapping_key_type=key_type),
    )


def check(cond, what):
    if not cond:
        print(f"FAIL {what}")
        sys.exit(1)
    print(f"ok   {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stubs", required=True)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--health", required=True)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--connect-key-id", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.stubs)
    from reseal.v1 import reseal_pb2, reseal_pb2_grpc  # noqa: E402

    keys = Path(args.keys)
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT)

    # Amazon Connect, played by the reference ESDK.
    connect = master_key(
        "AmazonConnect",
        args.connect_key_id,
        (keys / "connect-a.pub.pem").read_bytes(),
        EncryptionKeyType.PUBLIC,
        WrappingAlgorithm.RSA_OAEP_SHA512_MGF1,
    )
    ciphertext, _ = client.encrypt(
        source=CARD,
        key_provider=connect,
        algorithm=Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384,
        frame_length=4096,
    )

    with grpc.insecure_channel(args.addr) as ch:
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

        services = ProtoReflectionDescriptorDatabase(ch).get_services()
        check("reseal.v1.ReencryptService" in services, "server reflection lists reseal.v1.ReencryptService")
        check("grpc.health.v1.Health" in services, "server reflection lists grpc.health.v1.Health")

    with grpc.insecure_channel(args.health) as ch:
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="reseal.v1.ReencryptService"))
        check(status.status == health_pb2.HealthCheckResponse.SERVING, "health port reports SERVING")

    with grpc.insecure_channel(args.addr) as ch:
        stub = reseal_pb2_grpc.ReencryptServiceStub(ch)
        resp = stub.Reencrypt(
            reseal_pb2.ReencryptRequest(
                ciphertext_base64=base64.b64encode(ciphertext).decode(),
                route="card-capture",
                source_key_hint=args.connect_key_id,
            ),
            timeout=10,
        )
        check(resp.source_key_id == "connect-a", "opened by source key connect-a")
        check([r.consumer for r in resp.results] == ["payments", "fraud", "ledger"], "one result per consumer, in route order")
        for r in resp.results:
            check(not r.HasField("error"), f"{r.consumer}: no error")
            check(r.algorithm_suite == "0x0478", f"{r.consumer}: envelope suite 0x0478")
            # Every key the envelope is wrapped for opens it, in the consumer's own ESDK.
            for key_id in r.key_ids:
                file = {"payments-2026": "payments", "fraud-2026": "fraud"}.get(key_id, key_id)
                mk = master_key(
                    "reseal",
                    key_id,
                    (keys / f"{file}.pem").read_bytes(),
                    EncryptionKeyType.PRIVATE,
                    WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
                )
                strict = aws_encryption_sdk.EncryptionSDKClient(
                    commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
                )
                plaintext, header = strict.decrypt(source=r.ciphertext, key_provider=mk)
                check(plaintext == CARD, f"{r.consumer}: reference ESDK opens the envelope with {key_id}")
                if r.consumer == "payments":
                    ec = header.encryption_context
                    check(ec.get("reseal-consumer-id") == "payments", "payments: envelope context names the consumer")
                    check(ec.get("reseal-request-id") == resp.request_id, "payments: envelope context carries the request id")

        batch = stub.ReencryptBatch(
            reseal_pb2.ReencryptBatchRequest(
                items=[
                    reseal_pb2.ReencryptRequest(ciphertext=ciphertext, consumers=["fraud"]),
                    reseal_pb2.ReencryptRequest(ciphertext=b"\x02nonsense", consumers=["fraud"]),
                ]
            ),
            timeout=10,
        )
        check(batch.results[0].HasField("response") and not batch.results[1].HasField("response"), "batch: per-item results")
        check(batch.results[1].error.reason == "MALFORMED_CIPHERTEXT", "batch: item error carries its reason")

        try:
            stub.Reencrypt(reseal_pb2.ReencryptRequest(ciphertext=ciphertext, consumers=["nobody"]), timeout=10)
            check(False, "unknown consumer must fail")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, "unknown consumer: NOT_FOUND")
            details = dict(e.trailing_metadata() or ()).get("grpc-status-details-bin", b"")
            check(b"UNKNOWN_CONSUMER" in details and b"reseal.v1" in details, "unknown consumer: ErrorInfo reason in status details")
    print("all checks passed")


if __name__ == "__main__":
    main()
