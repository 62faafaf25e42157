#!/usr/bin/env python3
"""The reference Python ESDK against AWS KMS on moto, for reseal's AWS tests.

Commands:
  genesys-encrypt --key-arn ARN --org ORG --plaintext TEXT --out FILE
      Writes a Genesys Cloud-shaped message: data key wrapped by a KMS key,
      encryption context {"genesys-cloud-organization-id": ORG}.
  kms-decrypt --key-arn ARN --in FILE
      Opens an envelope with a KMS master key; prints the plaintext as hex.
  rsa-decrypt --key-file PEM --key-id ID [--provider-id P] --in FILE
      Opens an envelope with a raw RSA (OAEP-SHA256) private key; prints hex.
The AWS endpoint and credentials come from the environment (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION).
"""
import argparse
import sys
from pathlib import Path

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.kms import StrictAwsKmsMasterKeyProvider
from aws_encryption_sdk.key_providers.raw import RawMasterKey


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("genesys-encrypt")
    g.add_argument("--key-arn", required=True)
    g.add_argument("--org", required=True)
    g.add_argument("--plaintext", required=True)
    g.add_argument("--out", required=True)
    k = sub.add_parser("kms-decrypt")
    k.add_argument("--key-arn", required=True)
    k.add_argument("--in", dest="inp", required=True)
    r = sub.add_parser("rsa-decrypt")
    r.add_argument("--key-file", required=True)
    r.add_argument("--key-id", required=True)
    r.add_argument("--provider-id", default="reseal")
    r.add_argument("--in", dest="inp", required=True)
    args = ap.parse_args()

    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT)
    if args.cmd == "genesys-encrypt":
        provider = StrictAwsKmsMasterKeyProvider(key_ids=[args.key_arn])
        ct, _ = client.encrypt(
            source=args.plaintext.encode(),
            key_provider=provider,
            encryption_context={"genesys-cloud-organization-id": args.org},
        )
        Path(args.out).write_bytes(ct)
        print(f"wrote {len(ct)} bytes")
    elif args.cmd == "kms-decrypt":
        provider = StrictAwsKmsMasterKeyProvider(key_ids=[args.key_arn])
        pt, _ = client.decrypt(source=Path(args.inp).read_bytes(), key_provider=provider)
        print(pt.hex())
    else:
        mk = RawMasterKey(
            provider_id=args.provider_id,
            key_id=args.key_id.encode(),
            wrapping_key=WrappingKey(
                wrapping_algorithm=WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
                wrapping_key=Path(args.key_file).read_bytes(),
                wrapping_key_type=EncryptionKeyType.PRIVATE,
            ),
        )
        pt, _ = client.decrypt(source=Path(args.inp).read_bytes(), key_provider=mk)
        print(pt.hex())
    return 0


if __name__ == "__main__":
    sys.exit(main())
