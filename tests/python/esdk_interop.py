#!/usr/bin/env python3
"""Reference-implementation side of the reseal <-> AWS Encryption SDK interop test.

This script drives the reference Python ESDK (``aws-encryption-sdk``, legacy
master-key API only) and speaks the public ESDK test-vector formats of
awslabs/aws-crypto-tools-test-vector-framework: keys manifest v3,
``awses-encrypt`` v2 and ``awses-decrypt`` v2 (v4 is read by ``check``).

Commands
--------
``keys OUTDIR``
    Generates fresh key material (AES-128/192/256, RSA-2048, RSA-4096 and its
    public half, and an Amazon-Connect-style RSA-2048 key whose key id is a
    UUID) into ``OUTDIR/keys.json``, plus ``OUTDIR/encrypt-manifest.json``, an
    ``awses-encrypt`` manifest covering all 11 algorithm suites x every raw key
    kind (AES-128/192/256, RSA PKCS#1, RSA OAEP-MGF1 SHA-1/256/384/512) spread
    over frame sizes 0 (non-framed), 1, 512 and 4096, several plaintexts and
    encryption contexts (empty, ASCII, non-ASCII), multi-key tests and an
    Amazon-Connect-shaped message. Feed it to ``reseal vectors encrypt``.

``write KEYS_JSON OUTDIR``
    The reference ESDK writes messages for reseal to open: the same matrix,
    encrypted with the Python ESDK, as an ``awses-decrypt`` v2 manifest in
    ``OUTDIR`` (manifest.json, keys.json, plaintexts/, ciphertexts/), plus
    negative tests (bit flip, truncation, trailing byte, wrong key) that must
    fail. Feed ``OUTDIR/manifest.json`` to ``reseal vectors decrypt``.
    The Python ESDK only accepts frame lengths that are multiples of 128, so
    frame size 1 becomes 128 here. (The Python ESDK itself ignores bytes after
    the end of a message, so ``check`` on this output reports the two
    trailing-byte tests as failures; reseal must reject them.)

``check MANIFEST``
    The reference ESDK opens what reseal wrote: decrypts every test of an
    ``awses-decrypt`` manifest (v2 to v4) and compares the plaintext (or
    expects an error). Prints ``FAIL name: reason`` per failure, then
    ``N passed, M failed, K skipped``; exits 1 if anything failed or nothing
    passed.
"""
import argparse
import base64
import json
import logging
import os
import shutil
import sys
import uuid
from pathlib import Path

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROVIDER_ID = "aws-raw-vectors-persistant"  # sic: the framework's spelling
CONNECT_PROVIDER_ID = "AmazonConnect"
SUITES = ("0014", "0046", "0078", "0114", "0146", "0178", "0214", "0346", "0378", "0478", "0578")
COMMITTING_SUITES = {"0478", "0578"}
FRAMES = (0, 1, 512, 4096)
PYTHON_FRAMES = (0, 128, 512, 4096)  # the Python ESDK rejects frame lengths not divisible by 128
PLAINTEXT_SIZES = {"empty": 0, "tiny": 16, "small": 10240, "card": 16}
CARD_NUMBER = b"4111111111111111"
CONTEXTS = {
    "ec0": {},
    "ec2": {"key1": "val1", "key2": "val2"},
    "ecu": {"clé": "välue", "日本": "😀"},
}
# (label, encryption-algorithm, padding-algorithm, padding-hash)
KEY_KINDS = (
    ("aes-128", "aes", None, None),
    ("aes-192", "aes", None, None),
    ("aes-256", "aes", None, None),
    ("rsa-pkcs1", "rsa", "pkcs1", None),
    ("rsa-oaep-sha1", "rsa", "oaep-mgf1", "sha1"),
    ("rsa-oaep-sha256", "rsa", "oaep-mgf1", "sha256"),
    ("rsa-oaep-sha384", "rsa", "oaep-mgf1", "sha384"),
    ("rsa-oaep-sha512", "rsa", "oaep-mgf1", "sha512"),
)
AES_WRAPPING = {
    16: WrappingAlgorithm.AES_128_GCM_IV12_TAG16_NO_PADDING,
    24: WrappingAlgorithm.AES_192_GCM_IV12_TAG16_NO_PADDING,
    32: WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
}
RSA_WRAPPING = {
    ("pkcs1", None): WrappingAlgorithm.RSA_PKCS1,
    ("oaep-mgf1", "sha1"): WrappingAlgorithm.RSA_OAEP_SHA1_MGF1,
    ("oaep-mgf1", "sha256"): WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
    ("oaep-mgf1", "sha384"): WrappingAlgorithm.RSA_OAEP_SHA384_MGF1,
    ("oaep-mgf1", "sha512"): WrappingAlgorithm.RSA_OAEP_SHA512_MGF1,
}


# ---------------------------------------------------------------- manifests


def aes_spec(key):
    return {"type": "raw", "key": key, "provider-id": PROVIDER_ID, "encryption-algorithm": "aes"}


def rsa_spec(key, padding, padding_hash=None, provider_id=PROVIDER_ID):
    spec = {
        "type": "raw",
        "key": key,
        "provider-id": provider_id,
        "encryption-algorithm": "rsa",
        "padding-algorithm": padding,
    }
    if padding_hash:
        spec["padding-hash"] = padding_hash
    return spec


def make_test(suite, frame, plaintext, ec, master_keys):
    """One awses-encrypt test; ``ec`` names an entry of CONTEXTS."""
    return {
        "plaintext": plaintext,
        "algorithm": suite,
        "frame-size": frame,
        "encryption-context": CONTEXTS[ec],
        "master-keys": master_keys,
    }


def interop_matrix(frames):
    """Returns {name: awses-encrypt test} for the interop matrix.

    ``frames`` are the four frame sizes to spread the tests over (the Python
    ESDK cannot write frame size 1, so ``write`` passes PYTHON_FRAMES).
    """
    tests = {}

    def add(suite, label, frame, plaintext, ec, master_keys):
        tests[f"{suite}-{label}-f{frame}-{plaintext}-{ec}"] = make_test(suite, frame, plaintext, ec, master_keys)

    for s, suite in enumerate(SUITES):
        rsa_key = "rsa-2048-private" if s % 2 == 0 else "rsa-4096-private"
        for k, (label, algorithm, padding, padding_hash) in enumerate(KEY_KINDS):
            frame = frames[(s + k) % len(frames)]
            plaintext = ("empty", "tiny", "small")[(2 * s + k) % 3]
            ec = ("ec2", "ecu", "ec0")[(s + 2 * k) % 3]
            spec = aes_spec(label) if algorithm == "aes" else rsa_spec(rsa_key, padding, padding_hash)
            add(suite, label, frame, plaintext, ec, [spec])

    two_rsa = [
        rsa_spec("rsa-4096-private", "oaep-mgf1", "sha256"),
        rsa_spec("rsa-4096-public", "oaep-mgf1", "sha512"),
    ]
    add("0178", "rsa4096-priv-pub", frames[2], "small", "ec2", two_rsa)
    add("0378", "rsa4096-priv-pub", frames[0], "tiny", "ecu", two_rsa)
    add("0578", "rsa4096-priv-pub", frames[3], "small", "ec0", two_rsa)
    add("0478", "aes256-rsa2048", frames[1], "small", "ec2",
        [aes_spec("aes-256"), rsa_spec("rsa-2048-private", "pkcs1")])
    # Shaped like an Amazon Connect encrypted-input message.
    add("0378", "connect-oaep-sha512", 4096, "card", "ec0",
        [rsa_spec("connect-2048-private", "oaep-mgf1", "sha512", CONNECT_PROVIDER_ID)])
    return tests


def write_json(path, value):
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- keys


def rsa_entries(name, bits, key_id, with_public=False):
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    entries = {
        name: {
            "key-id": key_id,
            "encrypt": True,
            "decrypt": True,
            "algorithm": "rsa",
            "type": "private",
            "bits": bits,
            "encoding": "pem",
            "material": private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
        }
    }
    if with_public:
        public_name = name.replace("-private", "-public")
        entries[public_name] = {
            "key-id": public_name,
            "encrypt": True,
            "decrypt": False,
            "algorithm": "rsa",
            "type": "public",
            "bits": bits,
            "encoding": "pem",
            "material": private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode(),
        }
    return entries


def cmd_keys(args):
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    keys = {}
    for bits in (128, 192, 256):
        keys[f"aes-{bits}"] = {
            "key-id": f"aes-{bits}",
            "encrypt": True,
            "decrypt": True,
            "algorithm": "aes",
            "type": "symmetric",
            "bits": bits,
            "encoding": "base64",
            "material": base64.b64encode(os.urandom(bits // 8)).decode(),
        }
    keys.update(rsa_entries("rsa-2048-private", 2048, "rsa-2048-private"))
    keys.update(rsa_entries("rsa-4096-private", 4096, "rsa-4096-private", with_public=True))
    keys.update(rsa_entries("connect-2048-private", 2048, str(uuid.uuid4())))
    write_json(out / "keys.json", {"manifest": {"type": "keys", "version": 3}, "keys": keys})
    tests = interop_matrix(FRAMES)
    write_json(out / "encrypt-manifest.json", {
        "manifest": {"type": "awses-encrypt", "version": 2},
        "keys": "file://keys.json",
        "plaintexts": PLAINTEXT_SIZES,
        "tests": tests,
    })
    print(f"wrote keys.json and {len(tests)} encrypt tests to {out}")
    return 0


# ---------------------------------------------------------------- master keys


def master_key(spec, keys, for_decrypt=False):
    """Builds the RawMasterKey a manifest spec describes.

    Returns None for the public half of an RSA key when ``for_decrypt`` (it
    cannot decrypt). Raises ValueError for specs we cannot build.
    """
    if spec.get("type") != "raw":
        raise ValueError(f"unsupported master key type {spec.get('type')!r}")
    key = keys.get(spec.get("key"))
    if key is None:
        raise ValueError(f"key {spec.get('key')!r} is not in the keys manifest")
    material = key["material"]
    if isinstance(material, list):  # older manifests split PEM into lines
        material = "".join(material)
    algorithm = spec.get("encryption-algorithm", key.get("algorithm"))
    if algorithm == "aes":
        raw = base64.b64decode(material)
        wrapping = WrappingKey(AES_WRAPPING[len(raw)], raw, EncryptionKeyType.SYMMETRIC)
    elif algorithm == "rsa":
        if key["type"] == "public" and for_decrypt:
            return None
        padding = (spec.get("padding-algorithm"), spec.get("padding-hash"))
        if padding not in RSA_WRAPPING:
            raise ValueError(f"unsupported RSA padding {padding}")
        key_type = EncryptionKeyType.PRIVATE if key["type"] == "private" else EncryptionKeyType.PUBLIC
        wrapping = WrappingKey(RSA_WRAPPING[padding], material.encode(), key_type)
    else:
        raise ValueError(f"unsupported raw key algorithm {algorithm!r}")
    # As in the test-vector framework: key id from the keys manifest, provider id from the spec.
    return RawMasterKey(provider_id=spec["provider-id"], key_id=key["key-id"], wrapping_key=wrapping)


def key_provider(specs, keys, for_decrypt=False):
    """One provider for all master keys of a test (the first, with the others added)."""
    master_keys = [mk for mk in (master_key(s, keys, for_decrypt) for s in specs) if mk is not None]
    if not master_keys:
        raise ValueError("no usable decrypt key" if for_decrypt else "no master keys")
    primary = master_keys[0]
    for other in master_keys[1:]:
        primary.add_master_key_provider(other)
    return primary


def encrypt(test, keys, plaintexts):
    suite = test["algorithm"]
    policy = (
        CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
        if suite in COMMITTING_SUITES
        else CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
    )
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=policy, max_encrypted_data_keys=None)
    ciphertext, _header = client.encrypt(
        source=plaintexts[test["plaintext"]],
        key_provider=key_provider(test["master-keys"], keys),
        encryption_context=dict(test["encryption-context"]),
        algorithm=Algorithm.get_by_id(int(suite, 16)),
        frame_length=test["frame-size"],  # 0 writes a non-framed message
    )
    return ciphertext


# ---------------------------------------------------------------- write


def negative_tests(keys, plaintexts):
    """Yields (name, ciphertext, master-keys, error-description) for messages that must not open."""

    def flip_middle(ct):  # the plaintext is 10 KiB, so the middle is frame ciphertext
        return ct[: len(ct) // 2] + bytes([ct[len(ct) // 2] ^ 0x01]) + ct[len(ct) // 2 + 1:]

    aes256 = [aes_spec("aes-256")]
    rsa2048 = [rsa_spec("rsa-2048-private", "oaep-mgf1", "sha256")]
    cases = (
        ("bitflip", "0178", 512, aes256, flip_middle, "one bit flipped in the body"),
        ("bitflip", "0378", 4096, rsa2048, flip_middle, "one bit flipped in the body"),
        ("truncated", "0014", 0, aes256, lambda ct: ct[:-1], "message truncated by one byte"),
        ("truncated", "0578", 4096, rsa2048, lambda ct: ct[:-1], "message truncated by one byte"),
        ("trailing-byte", "0078", 512, aes256, lambda ct: ct + b"\x00", "one extra byte after the message"),
        ("trailing-byte", "0378", 4096, rsa2048, lambda ct: ct + b"\x00", "one extra byte after the message"),
    )
    for kind, suite, frame, master_keys, mutate, why in cases:
        ciphertext = encrypt(make_test(suite, frame, "small", "ec2", master_keys), keys, plaintexts)
        yield f"neg-{kind}-{suite}-f{frame}", mutate(ciphertext), master_keys, why
    ciphertext = encrypt(make_test("0178", 512, "small", "ec2", aes256), keys, plaintexts)
    yield ("neg-wrong-key-0178-f512", ciphertext, [aes_spec("aes-128")],
           "encrypted to aes-256, the manifest names aes-128")


def cmd_write(args):
    keys_path, out = Path(args.keys_json), Path(args.outdir)
    keys = load_json(keys_path)["keys"]
    for sub in ("plaintexts", "ciphertexts"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    if keys_path.resolve() != (out / "keys.json").resolve():
        shutil.copyfile(keys_path, out / "keys.json")
    plaintexts = {pname: os.urandom(size) for pname, size in PLAINTEXT_SIZES.items()}
    plaintexts["card"] = CARD_NUMBER  # what Amazon Connect encrypts: a 16-digit card number
    for pname, data in plaintexts.items():
        (out / "plaintexts" / pname).write_bytes(data)

    tests = interop_matrix(PYTHON_FRAMES)
    entries = {}
    for name, test in tests.items():
        (out / "ciphertexts" / name).write_bytes(encrypt(test, keys, plaintexts))
        entries[name] = {
            "ciphertext": f"file://ciphertexts/{name}",
            "master-keys": test["master-keys"],
            "result": {"output": {"plaintext": f"file://plaintexts/{test['plaintext']}"}},
        }
    for name, ciphertext, master_keys, why in negative_tests(keys, plaintexts):
        (out / "ciphertexts" / name).write_bytes(ciphertext)
        entries[name] = {
            "ciphertext": f"file://ciphertexts/{name}",
            "master-keys": master_keys,
            "result": {"error": {"error-description": why}},
        }
    write_json(out / "manifest.json", {
        "manifest": {"type": "awses-decrypt", "version": 2},
        "client": {"name": "aws/aws-encryption-sdk-python", "version": aws_encryption_sdk.__version__},
        "keys": "file://keys.json",
        "tests": entries,
    })
    print(f"wrote {len(entries)} tests to {out}")
    return 0


# ---------------------------------------------------------------- check


class Skip(Exception):
    """The test cannot be run with this SDK (not a failure)."""


def resolve(base, uri):
    if not uri.startswith("file://"):
        raise ValueError(f"unsupported URI {uri!r}")
    return base / uri[len("file://"):]


def check_one(test, base, keys, client):
    """Runs one decrypt test; raises on failure, Skip if it cannot be run."""
    result = test["result"]
    expected = resolve(base, result["output"]["plaintext"]).read_bytes() if "output" in result else None
    ciphertext = resolve(base, test["ciphertext"]).read_bytes()
    kwargs = {"source": ciphertext, "key_provider": key_provider(test["master-keys"], keys, for_decrypt=True)}
    reproduced = test.get("encryption-context")
    if test.get("cmm") == "RequiredEncryptionContext":
        kwargs["encryption_context"] = dict(reproduced or {})
    try:
        plaintext, header = client.decrypt(**kwargs)
    except Exception as error:  # pylint: disable=broad-except
        if isinstance(error, TypeError) and "encryption_context" in kwargs:
            # Without the MPL's CMMs the legacy API cannot take a reproduced context.
            raise Skip(f"required encryption context is not supported by this SDK: {error}") from error
        if expected is None:
            return
        raise
    if expected is None:
        raise AssertionError(f"decrypted, but expected an error ({result['error'].get('error-description')})")
    if plaintext != expected:
        raise AssertionError("decrypted, but the plaintext differs from the expected one")
    for k, v in (reproduced or {}).items():
        if header.encryption_context.get(k) != v:
            raise AssertionError(f"encryption context pair {k!r} does not match the message")


def cmd_check(args):
    manifest_path = Path(args.manifest)
    manifest, base = load_json(manifest_path), manifest_path.parent
    kind, version = manifest["manifest"]["type"], manifest["manifest"]["version"]
    if kind != "awses-decrypt" or version not in (2, 3, 4):
        print(f"unsupported manifest: {kind} version {version}", file=sys.stderr)
        return 2
    keys = load_json(resolve(base, manifest["keys"]))["keys"]
    logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)  # failures are reported below
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT, max_encrypted_data_keys=None
    )
    passed = failed = skipped = 0
    for name, test in manifest["tests"].items():
        try:
            check_one(test, base, keys, client)
            passed += 1
        except Skip as why:
            skipped += 1
            if args.verbose:
                print(f"SKIP {name}: {why}")
        except Exception as error:  # pylint: disable=broad-except
            failed += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or not passed else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keys", help="generate keys.json and encrypt-manifest.json")
    keys.add_argument("outdir")
    keys.set_defaults(run=cmd_keys)
    write = commands.add_parser("write", help="encrypt the matrix with the Python ESDK")
    write.add_argument("keys_json")
    write.add_argument("outdir")
    write.set_defaults(run=cmd_write)
    check = commands.add_parser("check", help="decrypt an awses-decrypt manifest with the Python ESDK")
    check.add_argument("manifest")
    check.add_argument("--verbose", action="store_true", help="also list skipped tests")
    check.set_defaults(run=cmd_check)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
