#!/usr/bin/env python3
"""JWE consumers end to end, checked by clients that are not reseal's own.

The reference Python ESDK writes the input (Amazon Connect's shape: suite
0x0378, RSA OAEP-SHA512, provider ``AmazonConnect``; with an encryption
context, as Genesys Cloud writes one), a grpcio client generated from
``proto/`` calls ``Reencrypt``, and two JOSE libraries that share no code with
reseal or with each other, ``jwcrypto`` and ``joserfc``, open every JWE result
with every key of its consumer, and a third, ``authlib``, every one it can
(compact, and JSON whose recipients share one ``alg``). Driven by ``tests/broker/python.rs``, which
writes the spec (consumers, keys, what each consumer's context holds).

Checked for every consumer, payload size and key, by each library: the
plaintext, ``format`` in the response (JWE_COMPACT / JWE_JSON as configured),
``key_ids``, ``enc`` = A256GCM, ``cty``, the recipient's ``kid``, ``alg`` (from
the key type) and ``x5t#S256`` (recomputed here from the certificate), and the
protected header's ``reseal_context`` against what the configuration asks
(consumer id, source key id, request id, source message id, static pairs,
propagated input pairs), computed here independently. Then every part of one
envelope per consumer is tampered with (each base64url part, the encrypted
key and ``epk`` of each recipient, a value of ``reseal_context``) and every
library must refuse each copy. Finally a mixed route (ESDK and JWE
consumers, one with an expired certificate): the expired one has its error,
every other consumer its envelope (ESDK ones opened by the reference ESDK).

Usage: jwe_e2e.py --stubs DIR --addr HOST:PORT --spec FILE
Prints FAIL lines, then ``N passed, M failed, K skipped``, and exits 1 if
anything failed.
"""
import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path

import aws_encryption_sdk
import grpc
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey
from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).parent))
import jwe_interop as interop  # noqa: E402

ALG_OF_KIND = {"RSA": "RSA-OAEP-256", "EC": "ECDH-ES+A256KW", "oct": "A256KW"}


def master_key(provider, key_id, pem, key_type, algorithm):
    return RawMasterKey(
        provider_id=provider,
        key_id=key_id.encode(),
        wrapping_key=WrappingKey(wrapping_algorithm=algorithm, wrapping_key=pem, wrapping_key_type=key_type),
    )


def expected_context(consumer, resp, input_context):
    ctx = {}
    for p in consumer["propagate"]:
        for k, v in input_context.items():
            if p == "*" or p == k:
                ctx[k] = v
    ctx.update(consumer["static"])
    fields = {
        "consumer_id": ("reseal-consumer-id", consumer["id"]),
        "source_key_id": ("reseal-source-key-id", resp.source_key_id),
        "request_id": ("reseal-request-id", resp.request_id),
        "source_message_id": ("reseal-source-message-id", resp.message_id),
    }
    for a in consumer["add"]:
        k, v = fields[a]
        ctx[k] = v
    return ctx


def thumbprint(cert_pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return interop.b64u(hashlib.sha256(der).digest())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stubs", required=True)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--spec", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.stubs)
    from reseal.v1 import reseal_pb2, reseal_pb2_grpc  # noqa: E402

    spec = json.loads(Path(args.spec).read_text())
    keys_dir = Path(spec["dir"])
    tally = interop.Tally()
    formats = {
        "JWE_COMPACT": reseal_pb2.ENVELOPE_FORMAT_JWE_COMPACT,
        "JWE_JSON": reseal_pb2.ENVELOPE_FORMAT_JWE_JSON,
    }

    # Every key, in both libraries' forms.
    keys = {}
    for name, k in spec["keys"].items():
        data = (keys_dir / k["private"]).read_bytes()
        keys[name] = {
            "kind": k["kind"],
            "x5t": thumbprint((keys_dir / k["certificate"]).read_bytes()) if k.get("certificate") else None,
            "libs": {lib.name: lib.key(k["kind"], data) for lib in interop.OPENERS},
        }

    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT)
    connect = master_key(
        "AmazonConnect",
        spec["connect_key_id"],
        (keys_dir / "connect-a.pub.pem").read_bytes(),
        EncryptionKeyType.PUBLIC,
        WrappingAlgorithm.RSA_OAEP_SHA512_MGF1,
    )

    def connect_input(plaintext: bytes) -> bytes:
        ct, _ = client.encrypt(
            source=plaintext,
            key_provider=connect,
            algorithm=Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384,
            frame_length=4096,
            encryption_context=spec["input_context"],
        )
        return ct

    def check_consumer(consumer, r, resp, plaintext, tamper):
        cid = consumer["id"]
        tally.check(not r.HasField("error"), f"{cid}: no error ({r.error.reason if r.HasField('error') else ''})")
        if r.HasField("error"):
            return
        tally.check(r.format == formats[consumer["format"]], f"{cid}: format {r.format} is {consumer['format']}")
        tally.check(r.algorithm_suite == "", f"{cid}: no ESDK suite")
        tally.check(list(r.key_ids) == [k["kid"] for k in consumer["keys"]], f"{cid}: key_ids {list(r.key_ids)}")
        text = r.ciphertext.decode()
        tally.check(text.startswith("{") == (consumer["format"] == "JWE_JSON"), f"{cid}: serialization")
        context = expected_context(consumer, resp, spec["input_context"])
        openers = interop.openers_for(text)
        tally.skipped += len(interop.OPENERS) - len(openers)
        for index, k in enumerate(consumer["keys"]):
            key = keys[k["key"]]
            for lib in openers:
                what = f"{cid} [{lib.name}, {k['kid']}, {len(plaintext)} B]"
                try:
                    opened, protected, headers = lib.open(text, key["libs"][lib.name])
                except Exception as error:  # report, count, go on
                    tally.check(False, f"{what}: {type(error).__name__}: {error}")
                    continue
                mine = [h for h in headers if h.get("kid") == k["kid"]]
                problems = []
                if opened != plaintext:
                    problems.append("plaintext differs")
                if protected.get("reseal_context") != context:
                    problems.append(f"reseal_context {protected.get('reseal_context')!r} != {context!r}")
                if protected.get("enc") != "A256GCM":
                    problems.append(f"enc {protected.get('enc')!r}")
                if protected.get("cty") != consumer["content_type"]:
                    problems.append(f"cty {protected.get('cty')!r}")
                if len(mine) != 1:
                    problems.append(f"{len(mine)} recipients with kid {k['kid']}")
                else:
                    if mine[0].get("alg") != ALG_OF_KIND[key["kind"]]:
                        problems.append(f"alg {mine[0].get('alg')!r}")
                    if mine[0].get("x5t#S256") != key["x5t"]:
                        problems.append(f"x5t#S256 {mine[0].get('x5t#S256')!r}, expected {key['x5t']!r}")
                tally.check(not problems, f"{what}: {'; '.join(problems)}")
            if tamper:
                for part, changed in interop.tampered(text, index):
                    for lib in openers:
                        tally.check(
                            interop.refuses(lib, changed, key["libs"][lib.name]),
                            f"{cid} [{lib.name}, {k['kid']}]: tampered {part} still opens",
                        )

    with grpc.insecure_channel(args.addr, options=[("grpc.max_receive_message_length", 16 << 20)]) as ch:
        stub = reseal_pb2_grpc.ReencryptServiceStub(ch)
        for size in spec["sizes"]:
            plaintext = bytes((i * 7 + 3) % 256 for i in range(size))
            resp = stub.Reencrypt(
                reseal_pb2.ReencryptRequest(ciphertext=connect_input(plaintext), route="jwe-all", request_id=f"py-jwe-{size}"),
                timeout=30,
            )
            tally.check(resp.source_key_id == "connect-a", f"{size} B: opened by connect-a")
            tally.check(
                [r.consumer for r in resp.results] == [c["id"] for c in spec["consumers"]],
                f"{size} B: one result per consumer, in route order",
            )
            for consumer, r in zip(spec["consumers"], resp.results):
                check_consumer(consumer, r, resp, plaintext, tamper=size == 16)

        # A mixed route, one consumer failing (an expired certificate).
        card = b"4111111111111111"
        resp = stub.Reencrypt(reseal_pb2.ReencryptRequest(ciphertext=connect_input(card), route="mixed"), timeout=30)
        by_id = {c["id"]: c for c in spec["consumers"]}
        for r in resp.results:
            if r.consumer == "j-expired":
                tally.check(r.HasField("error") and r.error.reason == "KEY_EXPIRED", "mixed: j-expired has KEY_EXPIRED")
                tally.check(r.format == reseal_pb2.ENVELOPE_FORMAT_UNSPECIFIED and not r.ciphertext, "mixed: no envelope")
            elif r.consumer in by_id:
                check_consumer(by_id[r.consumer], r, resp, card, tamper=False)
            else:
                esdk = spec["esdk_consumers"][r.consumer]
                tally.check(r.format == reseal_pb2.ENVELOPE_FORMAT_ESDK and r.algorithm_suite == "0x0478", f"mixed: {r.consumer} ESDK")
                mk = master_key(
                    "reseal",
                    esdk["kid"],
                    (keys_dir / esdk["private"]).read_bytes(),
                    EncryptionKeyType.PRIVATE,
                    WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
                )
                strict = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
                opened, _ = strict.decrypt(source=r.ciphertext, key_provider=mk)
                tally.check(opened == card, f"mixed: reference ESDK opens {r.consumer}'s envelope")
    code = tally.summary()
    if code == 0:
        print("all checks passed")
    return code


if __name__ == "__main__":
    sys.exit(main())
