#!/usr/bin/env python3
"""Independent-implementation side of the reseal-jwe <-> JOSE interop test.

Two JOSE libraries that share no code with reseal (or with each other),
``jwcrypto`` and ``joserfc``, open what reseal-jwe seals and seal what it must
open. A third, ``authlib``, opens what reseal-jwe seals wherever it can: it
reads a JSON JWE's ``alg`` from the shared header only, so it opens every
compact JWE and every JSON JWE whose recipients share one ``alg`` (reseal
puts that ``alg`` in the protected header), and the JSON JWEs that mix
algorithms are counted as skipped for it. Driven by
``crates/jwe/tests/python_interop.rs``.

Commands
--------
``check DIR``
    Opens every JWE in ``DIR/manifest.json`` (written by reseal-jwe: RSA-2048,
    RSA-3072, P-256, P-384 and AES-256 keys, compact and general JSON,
    payloads 0 B to 64 KiB, two- and three-key rotations) with BOTH libraries,
    once per recipient key, and checks the plaintext, the recipient's ``kid``,
    ``alg`` and ``x5t#S256``, ``enc`` = A256GCM, ``cty``, and that the
    protected header's ``reseal_context`` equals the manifest's context. Then
    changes one byte of each part (protected header, each encrypted key, IV,
    ciphertext, tag; the ``epk`` of ECDH-ES recipients) and a value of
    ``reseal_context``, and asserts that both libraries refuse each copy.

``write DIR``
    Generates keys (RSA-2048, P-256, P-384, AES-256) with ``cryptography`` and
    seals JWEs with jwcrypto and with joserfc (RSA-OAEP-256, ECDH-ES+A256KW on
    P-256 and P-384, A256KW; compact, flattened JSON and general JSON, several
    recipients, an ``aad`` and a shared unprotected header, ECDH ``apu``/``apv``;
    payloads 0 B to 64 KiB) into ``DIR`` with a ``manifest.json`` for
    reseal-jwe to open.

Both print ``FAIL ...`` per failure, then ``N passed, M failed, K skipped``,
and exit 1 if anything failed or nothing passed.

Library settings a consumer needs (checked by ``check``; see
``crates/jwe/README.md``):

* joserfc refuses header parameters it does not know (``strict_check_header``),
  so ``reseal_context`` is registered in the ``JWERegistry``'s
  ``header_registry``; by default it decrypts *every* recipient of a JSON JWE
  with the one key given (``verify_all_recipients``), which a consumer holding
  one key of a rotation must turn off; and it refuses base64 ciphertext
  segments over 65536 characters (``max_ciphertext_length``, about 48 KiB of
  plaintext), raised here for the 64 KiB payloads.
* jwcrypto's ``JWE.decrypt`` raises after a successful decryption when the
  plaintext is empty (it tests ``if not self.plaintext``); for 0-byte payloads
  success is read from its decryption log instead (the GCM tag was verified:
  ``"Success"`` is logged only after ``enc.decrypt`` returned).
"""
import argparse
import base64
import contextlib
import copy
import hashlib
import io
import json
import secrets
import sys
import warnings
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwcrypto import jwe as jwc_jwe
from jwcrypto import jwk as jwc_jwk
from jwcrypto.common import json_encode
from joserfc import jwe as rfc_jwe
from joserfc.jwk import ECKey, OctKey, RSAKey
from joserfc.registry import HeaderParameter

# authlib.jose announces on import (to stderr, past any warnings filter: it
# sets its own) that joserfc succeeds it.
with contextlib.redirect_stderr(io.StringIO()):
    from authlib.jose import JsonWebEncryption as AuthlibJwe
    from authlib.jose import JsonWebKey as AuthlibJwk

ALGS = ["RSA-OAEP-256", "ECDH-ES+A256KW", "A256KW", "A256GCM"]
SIZES = (0, 1, 16, 4096, 65536)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def check(self, ok: bool, what: str):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}", flush=True)

    def summary(self) -> int:
        print(f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped")
        return 1 if self.failed or not self.passed else 0


# ---------------------------------------------------------------- the libraries


def _is_context(value):
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("must be an object of strings")


def joserfc_registry():
    registry = rfc_jwe.JWERegistry(
        header_registry={"reseal_context": HeaderParameter("reseal encryption context", _is_context)},
        algorithms=ALGS,
        verify_all_recipients=False,
    )
    registry.max_ciphertext_length = 1 << 20
    return registry


class Jwcrypto:
    name = "jwcrypto"

    @staticmethod
    def key(kind: str, data: bytes):
        if kind == "oct":
            return jwc_jwk.JWK(kty="oct", k=b64u(data))
        return jwc_jwk.JWK.from_pem(data)

    @staticmethod
    def open(text: str, key):
        """(plaintext, protected header, list of per-recipient joint headers)."""
        token = jwc_jwe.JWE()
        token.allowed_algs = ALGS
        try:
            token.deserialize(text, key=key)
        except jwc_jwe.InvalidJWEData:
            # Empty plaintext: JWE.decrypt's `if not self.plaintext` turns a
            # verified decryption into an error. "Success" is logged only once
            # the tag has been verified (jwe.py, _unwrap_decrypt).
            if not (token.plaintext == b"" and "Success" in (token.decryptlog or [])):
                raise
        protected = json.loads(token.objects.get("protected", "{}"))
        headers = token.jose_header
        if isinstance(headers, dict):
            headers = [headers]
        return token.plaintext, protected, headers


class Joserfc:
    name = "joserfc"

    @staticmethod
    def key(kind: str, data: bytes):
        if kind == "oct":
            return OctKey.import_key(data)
        if kind == "RSA":
            return RSAKey.import_key(data)
        return ECKey.import_key(data)

    @staticmethod
    def open(text: str, key):
        registry = joserfc_registry()
        if text.lstrip().startswith("{"):
            obj = rfc_jwe.decrypt_json(json.loads(text), key, registry=registry)
            headers = [r.headers() for r in obj.recipients]
        else:
            obj = rfc_jwe.decrypt_compact(text, key, registry=registry)
            headers = [obj.headers()]
        return obj.plaintext, dict(obj.protected), headers


class Authlib:
    name = "authlib"

    @staticmethod
    def key(kind: str, data: bytes):
        if kind == "oct":
            return AuthlibJwk.import_key({"kty": "oct", "k": b64u(data)})
        return AuthlibJwk.import_key(data)

    @staticmethod
    def supports(text: str) -> bool:
        """authlib takes a JSON JWE's ``alg`` from the shared header only."""
        if not text.lstrip().startswith("{"):
            return True
        return "alg" in json.loads(unb64u(json.loads(text)["protected"]))

    @staticmethod
    def open(text: str, key):
        token = AuthlibJwe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if text.lstrip().startswith("{"):
                out = token.deserialize_json(json.loads(text), key)
                header = out["header"]
                protected = dict(header["protected"])
                shared = {**protected, **(header.get("unprotected") or {})}
                headers = [{**shared, **(r.get("header") or {})} for r in header["recipients"]]
            else:
                out = token.deserialize_compact(text, key)
                protected = dict(out["header"])
                headers = [protected]
        return out["payload"], protected, headers


# The libraries that seal for reseal (`write`) and open everything it seals.
LIBRARIES = (Jwcrypto, Joserfc)
# The libraries that open reseal's JWEs (`check`, tests/python/jwe_e2e.py).
OPENERS = (Jwcrypto, Joserfc, Authlib)


def openers_for(text: str):
    """The OPENERS that can open this JWE (authlib: not a JSON JWE whose
    recipients mix algorithms)."""
    return [lib for lib in OPENERS if getattr(lib, "supports", lambda _: True)(text)]


def refuses(lib, text: str, key) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plaintext, _, _ = lib.open(text, key)
    except Exception:  # any refusal counts; both libraries raise many kinds
        return True
    return plaintext is None


# ---------------------------------------------------------------- check


def flip_middle(text: str) -> str | None:
    data = bytearray(unb64u(text))
    if not data:
        return None
    data[len(data) // 2] ^= 0x01
    return b64u(bytes(data))


def changed_context(protected_b64: str) -> str:
    header = json.loads(unb64u(protected_b64))
    header["reseal_context"]["consumer"] = "someone-else"
    return b64u(json.dumps(header, separators=(",", ":")).encode())


def tampered(text: str, recipient_index: int):
    """(what, tampered text) pairs, each of which must be refused by the key of
    recipient `recipient_index`."""
    out = []
    if text.startswith("{"):
        doc = json.loads(text)
        for part in ("protected", "iv", "ciphertext", "tag"):
            changed = flip_middle(doc[part])
            if changed:
                t = copy.deepcopy(doc)
                t[part] = changed
                out.append((part, json.dumps(t)))
        t = copy.deepcopy(doc)
        t["protected"] = changed_context(doc["protected"])
        out.append(("reseal_context value", json.dumps(t)))
        rec = doc["recipients"][recipient_index]
        t = copy.deepcopy(doc)
        t["recipients"][recipient_index]["encrypted_key"] = flip_middle(rec["encrypted_key"])
        out.append((f"recipient {recipient_index} encrypted_key", json.dumps(t)))
        if "epk" in rec["header"]:
            for coordinate in ("x", "y"):
                t = copy.deepcopy(doc)
                epk = t["recipients"][recipient_index]["header"]["epk"]
                epk[coordinate] = flip_middle(epk[coordinate])
                out.append((f"recipient {recipient_index} epk.{coordinate}", json.dumps(t)))
    else:
        parts = text.split(".")
        names = ("protected header", "encrypted key", "IV", "ciphertext", "tag")
        for i, name in enumerate(names):
            changed = flip_middle(parts[i])
            if changed:
                t = list(parts)
                t[i] = changed
                out.append((name, ".".join(t)))
        t = list(parts)
        t[0] = changed_context(parts[0])
        out.append(("reseal_context value", ".".join(t)))
    return out


def check(directory: Path) -> int:
    tally = Tally()
    manifest = json.loads((directory / "manifest.json").read_text())
    context = manifest["context"]
    keys = {}
    for name, entry in manifest["keys"].items():
        data = (directory / (entry.get("pem") or entry["raw"])).read_bytes()
        keys[name] = {lib.name: lib.key(entry["kind"], data) for lib in OPENERS}
    for case in manifest["cases"]:
        name = case["name"]
        text = (directory / case["file"]).read_text()
        expected = (directory / case["plaintext"]).read_bytes()
        openers = openers_for(text)
        tally.skipped += len(OPENERS) - len(openers)
        for index, rec in enumerate(case["recipients"]):
            for lib in openers:
                what = f"{name} [{lib.name}, key {rec['key']}]"
                key = keys[rec["key"]][lib.name]
                try:
                    plaintext, protected, headers = lib.open(text, key)
                except Exception as error:  # report, count, go on
                    tally.check(False, f"{what}: {type(error).__name__}: {error}")
                    continue
                mine = [h for h in headers if h.get("kid") == rec["kid"]]
                problems = []
                if plaintext != expected:
                    problems.append("plaintext differs")
                if protected.get("reseal_context") != context:
                    problems.append(f"reseal_context {protected.get('reseal_context')!r}")
                if protected.get("enc") != "A256GCM":
                    problems.append(f"enc {protected.get('enc')!r}")
                if protected.get("cty") != case["cty"]:
                    problems.append(f"cty {protected.get('cty')!r}")
                if len(mine) != 1:
                    problems.append(f"{len(mine)} recipients with kid {rec['kid']}")
                else:
                    header = mine[0]
                    if header.get("alg") != rec["alg"]:
                        problems.append(f"alg {header.get('alg')!r}")
                    if header.get("enc") != "A256GCM":
                        problems.append("joint header enc")
                    x5t = rec.get("x5t#S256")
                    if x5t is not None:
                        cert = f"certificate of {rec['key']}".encode()
                        if x5t != b64u(hashlib.sha256(cert).digest()) or header.get("x5t#S256") != x5t:
                            problems.append(f"x5t#S256 {header.get('x5t#S256')!r}")
                    elif "x5t#S256" in header:
                        problems.append("unexpected x5t#S256")
                    if (rec["alg"] == "ECDH-ES+A256KW") != ("epk" in header):
                        problems.append("epk presence")
                tally.check(not problems, f"{what}: {', '.join(problems)}")
            # Tampering: every part, with this recipient's key, both libraries.
            for what, changed in tampered(text, index):
                for lib in openers:
                    key = keys[rec["key"]][lib.name]
                    tally.check(
                        refuses(lib, changed, key),
                        f"{name} [{lib.name}, key {rec['key']}]: tampered {what} still opens",
                    )
    return tally.summary()


# ---------------------------------------------------------------- write


def context_for(name: str) -> dict:
    return {"consumer": "orders", "request_id": f"req-{name}", "static": "é \"q\""}


def write(directory: Path) -> int:
    tally = Tally()
    (directory / "keys").mkdir(parents=True, exist_ok=True)
    (directory / "cases").mkdir(parents=True, exist_ok=True)
    generated = {
        "rsa2048": ("RSA", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "p256": ("EC", ec.generate_private_key(ec.SECP256R1())),
        "p384": ("EC", ec.generate_private_key(ec.SECP384R1())),
        "aes256": ("oct", secrets.token_bytes(32)),
    }
    alg_of = {"rsa2048": "RSA-OAEP-256", "p256": "ECDH-ES+A256KW", "p384": "ECDH-ES+A256KW", "aes256": "A256KW"}
    keys_manifest, jwc_keys, rfc_keys = {}, {}, {}
    for name, (kind, key) in generated.items():
        if kind == "oct":
            data = key
            jwc_keys[name] = jwc_jwk.JWK(kty="oct", k=b64u(key))
            rfc_keys[name] = OctKey.import_key(key)
        else:
            data = key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            jwc_keys[name] = jwc_jwk.JWK.from_pem(pem)
            rfc_keys[name] = (RSAKey if kind == "RSA" else ECKey).import_key(pem)
        (directory / "keys" / f"{name}.key").write_bytes(data)
        keys_manifest[name] = {"kind": kind, "file": f"keys/{name}.key"}

    cases = []

    def record(name, library, text, plaintext, members, context):
        (directory / "cases" / f"{name}.jwe").write_text(text)
        (directory / "cases" / f"{name}.plaintext").write_bytes(plaintext)
        cases.append(
            {
                "name": name,
                "library": library,
                "file": f"cases/{name}.jwe",
                "plaintext": f"cases/{name}.plaintext",
                "context": context,
                "recipients": [{"key": m, "kid": f"{m}-{name}", "alg": alg_of[m]} for m in members],
            }
        )

    def attempt(name, library, build, plaintext, members, context):
        try:
            text = build()
        except Exception as error:
            tally.check(False, f"{name} [{library}]: could not seal: {type(error).__name__}: {error}")
            return
        record(name, library, text, plaintext, members, context)
        tally.check(True, name)

    def jwc_compact(name, m, plaintext, context):
        protected = {"alg": alg_of[m], "enc": "A256GCM", "kid": f"{m}-{name}", "reseal_context": context}
        token = jwc_jwe.JWE(plaintext, protected=json_encode(protected))
        token.add_recipient(jwc_keys[m])
        return token.serialize(compact=True)

    def jwc_json(name, members, plaintext, context, flattened=False, extra=None, recipient_extra=None):
        extra = extra or {}
        token = jwc_jwe.JWE(
            plaintext,
            protected=json_encode({"enc": "A256GCM", "reseal_context": context}),
            unprotected=json_encode(extra["unprotected"]) if "unprotected" in extra else None,
            aad=extra.get("aad"),
            flattened=flattened,
        )
        for m in members:
            header = {"alg": alg_of[m], "kid": f"{m}-{name}", **(recipient_extra or {}).get(m, {})}
            token.add_recipient(jwc_keys[m], header=json_encode(header))
        return token.serialize()

    def rfc_compact(name, m, plaintext, context):
        protected = {"alg": alg_of[m], "enc": "A256GCM", "kid": f"{m}-{name}", "reseal_context": context}
        return rfc_jwe.encrypt_compact(protected, plaintext, rfc_keys[m], registry=joserfc_registry())

    def rfc_json(name, members, plaintext, context):
        obj = rfc_jwe.GeneralJSONEncryption({"enc": "A256GCM", "reseal_context": context}, plaintext)
        for m in members:
            obj.add_recipient({"alg": alg_of[m], "kid": f"{m}-{name}"}, rfc_keys[m])
        return json.dumps(rfc_jwe.encrypt_json(obj, None, registry=joserfc_registry()))

    for m in generated:
        for size in SIZES:
            plaintext = secrets.token_bytes(size)
            for library, compact, general in (
                ("jwcrypto", jwc_compact, lambda n, ms, p, c: jwc_json(n, ms, p, c)),
                ("joserfc", rfc_compact, rfc_json),
            ):
                name = f"{library}-compact-{m}-{size}"
                ctx = context_for(name)
                attempt(name, library, lambda: compact(name, m, plaintext, ctx), plaintext, [m], ctx)
                name = f"{library}-json-{m}-{size}"
                ctx = context_for(name)
                attempt(name, library, lambda: general(name, [m], plaintext, ctx), plaintext, [m], ctx)
            name = f"jwcrypto-flattened-{m}-{size}"
            ctx = context_for(name)
            attempt(
                name, "jwcrypto", lambda: jwc_json(name, [m], plaintext, ctx, flattened=True), plaintext, [m], ctx
            )

    rotations = (["rsa2048", "p256"], ["p256", "p384"], ["p384", "aes256", "rsa2048"])
    for members in rotations:
        for size in (0, 16, 65536):
            plaintext = secrets.token_bytes(size)
            tag = "-".join(members)
            name = f"jwcrypto-rotation-{tag}-{size}"
            ctx = context_for(name)
            attempt(name, "jwcrypto", lambda: jwc_json(name, members, plaintext, ctx), plaintext, members, ctx)
            name = f"joserfc-rotation-{tag}-{size}"
            ctx = context_for(name)
            attempt(name, "joserfc", lambda: rfc_json(name, members, plaintext, ctx), plaintext, members, ctx)

    # JSON features reseal does not write but must read: aad, a shared
    # unprotected header, ECDH-ES agreement PartyUInfo/PartyVInfo.
    plaintext = b"card 4111111111111111"
    name = "jwcrypto-json-aad-unprotected-p256-aes256"
    ctx = context_for(name)
    attempt(
        name,
        "jwcrypto",
        lambda: jwc_json(
            name,
            ["p256", "aes256"],
            plaintext,
            ctx,
            extra={"aad": b"additional data", "unprotected": {"x-note": "shared"}},
        ),
        plaintext,
        ["p256", "aes256"],
        ctx,
    )
    name = "jwcrypto-json-apu-apv-p384"
    ctx = context_for(name)
    attempt(
        name,
        "jwcrypto",
        lambda: jwc_json(
            name, ["p384"], plaintext, ctx, recipient_extra={"p384": {"apu": b64u(b"Alice"), "apv": b64u(b"Bob")}}
        ),
        plaintext,
        ["p384"],
        ctx,
    )

    manifest = {"keys": keys_manifest, "cases": cases}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return tally.summary()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check").add_argument("dir", type=Path)
    sub.add_parser("write").add_argument("dir", type=Path)
    args = parser.parse_args()
    if args.command == "check":
        return check(args.dir)
    return write(args.dir)


if __name__ == "__main__":
    sys.exit(main())
