#!/usr/bin/env python3
"""Baseline: the reference Python AWS Encryption SDK doing an Amazon Connect Lambda's job.

What is measured
----------------
Amazon Connect encrypts sensitive input (e.g. a card number captured by an IVR
"Store customer input" block) with the AWS Encryption SDK: algorithm suite
0x0378 (AES-256-GCM, HKDF-SHA384, ECDSA P-384 signature), frame length 4096, a
raw RSA-2048 key wrapped with OAEP-SHA512/MGF1-SHA512, provider id
"AmazonConnect". The usual consumer is a Lambda written with the Python ESDK
(``aws-encryption-sdk`` on PyPI) that

1. decrypts that message with the Connect private key, and then
2. re-encrypts the plaintext once per downstream consumer, each with that
   consumer's own RSA-2048 public key (OAEP-SHA256/MGF1-SHA256), suite 0x0478
   (AES-256-GCM, HKDF-SHA512, key commitment, unsigned), frame length 4096.

One *operation* here is exactly that: one decrypt plus F single-recipient
encrypts (F = fan-out; F = 0 means decrypt only). The script reports, per
fan-out, throughput (ops/s, in total and per process), the CPU time the
workers themselves spent per operation, and the mean wall time per operation.

With ``--cold`` it also measures the common Lambda pattern that builds its key
provider inside the handler: every operation reads the private-key PEM, parses
it, builds the master key and the client afresh, then decrypts (fan-out 0).

Why the comparison is fair
--------------------------
* Warm providers: like a warm Lambda container, every worker loads its keys,
  builds its master keys and its client once, before the timed loop. Only
  the per-message work is timed. (The cold pattern is reported separately,
  in rows marked ``"mode": "cold"``.)
* Same work as the system under comparison: the same algorithm suites
  (0x0378 in, 0x0478 out), same frame length (4096), same RSA-2048 keys and
  OAEP paddings, same payload size, empty caller encryption context.
* No caching: the master keys are passed directly as ``key_provider``, so the
  SDK builds a plain ``DefaultCryptoMaterialsManager`` for every call; no
  ``CachingCryptoMaterialsManager`` / key cache is involved, so every decrypt
  really does an RSA private-key operation and every encrypt a fresh data key
  and an RSA public-key wrap.
* All cores: Python's GIL makes threads useless for CPU-bound crypto, so one
  worker *process* per core is started (fork), each with its own warm state.
  Workers start together on a barrier, warm up for ``--warmup`` seconds
  (not counted), then measure for ``--seconds`` seconds.
* 64 distinct input messages are pre-generated in the parent and cycled, so
  no result can be memoised by accident.

Inputs (``--dir DIR``)
----------------------
* ``DIR/bench.json``: ``{"connect_key_id": "...", "connect_provider_id":
  "AmazonConnect", "consumers": ["c000", "c001", ...]}``
* ``DIR/connect.pem`` (PKCS#8 PEM private key), ``DIR/connect.pub.pem`` (SPKI PEM)
* ``DIR/consumers/<name>.pub.pem`` for each consumer (SPKI PEM)

Example::

    python benches/python_esdk.py --dir DIR --fan-out 0,1,10,100 \\
        --seconds 10 --warmup 2 --json python-esdk.json --cold

Requires Python 3.11 and ``pip install aws-encryption-sdk`` (which pulls in
``cryptography``). Exits non-zero if any worker fails.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import queue
import secrets
import string
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import aws_encryption_sdk
import cryptography
from aws_encryption_sdk.identifiers import (
    Algorithm,
    CommitmentPolicy,
    EncryptionKeyType,
    WrappingAlgorithm,
)
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey
from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend

# Algorithm suites and message parameters (see the module docstring).
CONNECT_SUITE = Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384  # 0x0378
ENVELOPE_SUITE = Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY  # 0x0478
CONNECT_WRAPPING = WrappingAlgorithm.RSA_OAEP_SHA512_MGF1
ENVELOPE_WRAPPING = WrappingAlgorithm.RSA_OAEP_SHA256_MGF1
FRAME_LENGTH = 4096
ENVELOPE_PROVIDER_ID = "reseal"
NUM_INPUTS = 64

# How long the parent waits for workers beyond the nominal warm-up + measure
# time (covers process start, key loading and the one-off correctness check).
WORKER_GRACE_SECONDS = 300.0


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchDir:
    """Everything read from ``--dir``: key material paths and names."""

    root: Path
    connect_key_id: str
    connect_provider_id: str
    consumers: list[str]

    @classmethod
    def load(cls, root: Path) -> "BenchDir":
        spec = json.loads((root / "bench.json").read_text())
        consumers = spec["consumers"]
        if not isinstance(consumers, list) or not all(isinstance(c, str) for c in consumers):
            raise ValueError("bench.json: 'consumers' must be a list of strings")
        return cls(
            root=root,
            connect_key_id=str(spec["connect_key_id"]),
            connect_provider_id=str(spec["connect_provider_id"]),
            consumers=consumers,
        )

    @property
    def connect_private_pem(self) -> Path:
        return self.root / "connect.pem"

    @property
    def connect_public_pem(self) -> Path:
        return self.root / "connect.pub.pem"

    def consumer_public_pem(self, name: str) -> Path:
        return self.root / "consumers" / f"{name}.pub.pem"


@dataclass(frozen=True)
class ConnectInput:
    """One pre-generated Amazon Connect-shaped message and its plaintext."""

    plaintext: bytes
    ciphertext: bytes


def connect_master_key(bench: BenchDir, pem: bytes, key_type: EncryptionKeyType) -> RawMasterKey:
    """The Connect raw RSA master key (public half to encrypt, private half to decrypt)."""
    return RawMasterKey(
        provider_id=bench.connect_provider_id,
        key_id=bench.connect_key_id,
        wrapping_key=WrappingKey(
            wrapping_algorithm=CONNECT_WRAPPING,
            wrapping_key=pem,
            wrapping_key_type=key_type,
        ),
    )


def make_inputs(bench: BenchDir, payload_bytes: int) -> list[ConnectInput]:
    """Encrypt NUM_INPUTS distinct digit strings the way Amazon Connect does.

    0x0378 is a non-committing suite, so this *encrypting* client must use
    FORBID_ENCRYPT_ALLOW_DECRYPT (the SDK's default policy,
    REQUIRE_ENCRYPT_REQUIRE_DECRYPT, refuses to encrypt with it).
    """
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
    )
    master_key = connect_master_key(
        bench, bench.connect_public_pem.read_bytes(), EncryptionKeyType.PUBLIC
    )
    inputs = []
    for _ in range(NUM_INPUTS):
        plaintext = "".join(secrets.choice(string.digits) for _ in range(payload_bytes)).encode()
        ciphertext, header = client.encrypt(
            source=plaintext,
            key_provider=master_key,
            algorithm=CONNECT_SUITE,
            frame_length=FRAME_LENGTH,
            encryption_context={},
        )
        assert header.algorithm is CONNECT_SUITE and header.frame_length == FRAME_LENGTH
        inputs.append(ConnectInput(plaintext=plaintext, ciphertext=ciphertext))
    return inputs


# --------------------------------------------------------------------------
# Worker state and the measured operations
# --------------------------------------------------------------------------


@dataclass
class WarmState:
    """What a warm Lambda keeps between invocations."""

    client: aws_encryption_sdk.EncryptionSDKClient
    decrypt_key: RawMasterKey
    consumer_keys: list[RawMasterKey]


def build_warm_state(bench: BenchDir, fan_out: int) -> WarmState:
    """Load keys and build master keys and the client once, outside the timed loop.

    REQUIRE_ENCRYPT_ALLOW_DECRYPT: the envelopes use a committing suite (0x0478),
    while the Connect input uses a non-committing one (0x0378) that the default
    REQUIRE_ENCRYPT_REQUIRE_DECRYPT policy would refuse to decrypt.
    """
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
    )
    decrypt_key = connect_master_key(
        bench, bench.connect_private_pem.read_bytes(), EncryptionKeyType.PRIVATE
    )
    consumer_keys = [
        RawMasterKey(
            provider_id=ENVELOPE_PROVIDER_ID,
            key_id=name,
            wrapping_key=WrappingKey(
                wrapping_algorithm=ENVELOPE_WRAPPING,
                wrapping_key=bench.consumer_public_pem(name).read_bytes(),
                wrapping_key_type=EncryptionKeyType.PUBLIC,
            ),
        )
        for name in bench.consumers[:fan_out]
    ]
    return WarmState(client=client, decrypt_key=decrypt_key, consumer_keys=consumer_keys)


def warm_operation(state: WarmState, ciphertext: bytes) -> tuple[bytes, list[bytes]]:
    """One warm operation: decrypt the Connect message, re-encrypt once per consumer.

    The master key objects are passed as ``key_provider`` directly, so each
    call gets a fresh DefaultCryptoMaterialsManager: no materials caching.
    Each encrypt has exactly one recipient (that consumer's key alone).
    """
    plaintext, _header = state.client.decrypt(source=ciphertext, key_provider=state.decrypt_key)
    envelopes = [seal_envelope(state, key, plaintext)[0] for key in state.consumer_keys]
    return plaintext, envelopes


def seal_envelope(state: WarmState, key, plaintext: bytes):
    """One consumer's envelope: its key alone, 0x0478, frame 4096, empty context."""
    return state.client.encrypt(
        source=plaintext,
        key_provider=key,
        algorithm=ENVELOPE_SUITE,
        frame_length=FRAME_LENGTH,
        encryption_context={},
    )


def cold_operation(bench: BenchDir, ciphertext: bytes) -> bytes:
    """One cold operation: the handler reads the PEM and builds provider + client per call."""
    pem = bench.connect_private_pem.read_bytes()
    decrypt_key = connect_master_key(bench, pem, EncryptionKeyType.PRIVATE)
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
    )
    plaintext, _header = client.decrypt(source=ciphertext, key_provider=decrypt_key)
    return plaintext


def check_once(bench: BenchDir, state: WarmState, item: ConnectInput) -> None:
    """Outside the timed loop: the decrypt is right and the envelopes look right.

    Only consumers' public keys are available here, so the envelopes cannot be
    decrypted; check they are non-empty and that their headers carry the
    expected suite, frame length and a single EDK for that consumer.
    """
    plaintext, header = state.client.decrypt(source=item.ciphertext, key_provider=state.decrypt_key)
    if plaintext != item.plaintext:
        raise AssertionError("decrypted plaintext does not match the generated input")
    if header.algorithm is not CONNECT_SUITE:
        raise AssertionError(f"input suite is {header.algorithm}, expected {CONNECT_SUITE}")
    for name, key in zip(bench.consumers, state.consumer_keys):
        envelope, env_header = seal_envelope(state, key, plaintext)
        if not envelope:
            raise AssertionError(f"empty envelope for consumer {name}")
        edks = list(env_header.encrypted_data_keys)
        if (
            env_header.algorithm is not ENVELOPE_SUITE
            or env_header.frame_length != FRAME_LENGTH
            or len(edks) != 1
            or edks[0].key_provider.provider_id != ENVELOPE_PROVIDER_ID
            or edks[0].key_provider.key_info != name.encode()
        ):
            raise AssertionError(f"unexpected envelope header for consumer {name}: {env_header}")
    # The full warm operation must agree as well.
    plaintext2, envelopes = warm_operation(state, item.ciphertext)
    if plaintext2 != item.plaintext or len(envelopes) != len(state.consumer_keys):
        raise AssertionError("warm_operation returned unexpected results")
    if not all(envelopes):
        raise AssertionError("warm_operation returned an empty envelope")
    if cold_operation(bench, item.ciphertext) != item.plaintext:
        raise AssertionError("cold_operation returned the wrong plaintext")


def worker_main(
    worker_id: int,
    mode: str,
    fan_out: int,
    bench: BenchDir,
    inputs: list[ConnectInput],
    barrier,
    results,
    warmup_s: float,
    measure_s: float,
    max_ops: int,
) -> None:
    """Body of one worker process. Reports ("ok", dict) or ("err", text) on ``results``."""
    try:
        # ---- set-up (not timed): a warm Lambda has done this already ----
        state = build_warm_state(bench, fan_out if mode == "warm" else 0)
        check_once(bench, state, inputs[worker_id % len(inputs)])
        if mode == "warm":
            op = lambda ct: warm_operation(state, ct)  # noqa: E731
        else:
            op = lambda ct: cold_operation(bench, ct)  # noqa: E731
        ciphertexts = [item.ciphertext for item in inputs]
        n = len(ciphertexts)
        # Different workers start at different inputs (harmless, but avoids lock-step).
        i = (worker_id * 7) % n

        barrier.wait(timeout=WORKER_GRACE_SECONDS)

        # ---- warm-up (not counted) ----
        deadline = time.perf_counter() + warmup_s
        done = 0
        while done < max_ops and time.perf_counter() < deadline:
            op(ciphertexts[i])
            i = (i + 1) % n
            done += 1

        # ---- measured window ----
        ops = 0
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        deadline = t0 + measure_s
        while ops < max_ops:
            op(ciphertexts[i])
            i = (i + 1) % n
            ops += 1
            if time.perf_counter() >= deadline:
                break
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0

        results.put(("ok", {"worker": worker_id, "ops": ops, "wall": wall, "cpu": cpu}))
    except BaseException:  # report everything, including BrokenBarrierError
        try:
            barrier.abort()  # release the others instead of letting them wait
        except Exception:
            pass
        results.put(("err", f"worker {worker_id} ({mode}, fan-out {fan_out}):\n{traceback.format_exc()}"))
        sys.exit(1)


# --------------------------------------------------------------------------
# Parent: run one configuration on N processes and aggregate
# --------------------------------------------------------------------------


def run_config(args, bench: BenchDir, inputs: list[ConnectInput], mode: str, fan_out: int) -> dict:
    """Start N forked workers for one (mode, fan-out) and aggregate their numbers."""
    ctx = mp.get_context("fork")
    n = args.processes
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=worker_main,
            args=(w, mode, fan_out, bench, inputs, barrier, results,
                  args.warmup, args.seconds, args.max_ops),
            name=f"esdk-{mode}-f{fan_out}-w{w}",
        )
        for w in range(n)
    ]
    for p in procs:
        p.start()

    # Collect one message per worker. A worker that dies without reporting
    # (e.g. killed by the OOM killer) is noticed once no worker is alive.
    deadline = time.monotonic() + args.warmup + args.seconds + WORKER_GRACE_SECONDS
    oks, errors = [], []
    while len(oks) + len(errors) < n:
        all_exited = not any(p.is_alive() for p in procs)
        try:
            # After all have exited, anything still queued is already there.
            kind, payload = results.get(timeout=0.5 if all_exited else 1.0)
            (oks if kind == "ok" else errors).append(payload)
            continue
        except queue.Empty:
            pass
        if all_exited:
            reported = len(oks) + len(errors)
            errors.extend(f"{p.name} exited with code {p.exitcode}"
                          for p in procs if p.exitcode != 0)
            errors.append(f"only {reported} of {n} workers reported")
            break
        if time.monotonic() > deadline:
            errors.append("timed out waiting for workers")
            break

    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()  # only our own children
            p.join()
        if p.exitcode != 0 and not errors:
            errors.append(f"{p.name} exited with code {p.exitcode}")
    if errors:
        raise RuntimeError("worker failure:\n" + "\n".join(errors))

    ops = sum(r["ops"] for r in oks)
    walls = [r["wall"] for r in oks]
    cpu = sum(r["cpu"] for r in oks)
    # Throughput: each worker's own rate, summed (workers' windows differ by ~1 op).
    ops_per_s = sum(r["ops"] / r["wall"] for r in oks if r["wall"] > 0)
    return {
        "mode": mode,
        "fan_out": fan_out,
        "ops": ops,
        # Mean of the workers' measured windows (all are ~--seconds long).
        "seconds": sum(walls) / len(walls),
        "ops_per_s": ops_per_s,
        "ops_per_s_per_process": ops_per_s / n,
        "cpu_seconds": cpu,
        "cpu_ms_per_op": 1000.0 * cpu / ops if ops else None,
        # Wall time per operation as a single worker sees it (sum of windows / ops).
        "mean_ms_per_op": 1000.0 * sum(walls) / ops if ops else None,
    }


def print_table(rows: list[dict], processes: int, payload_bytes: int, versions: dict) -> None:
    print(
        f"python-esdk: {processes} processes, {payload_bytes}-byte payload, "
        f"aws-encryption-sdk {versions['aws-encryption-sdk']}, cryptography {versions['cryptography']}, "
        f"{versions['openssl']}, Python {versions['python']}"
    )
    header = ("mode", "fan_out", "ops", "seconds", "ops/s", "ops/s/proc", "cpu s", "cpu ms/op", "mean ms/op")
    fmt = "{:<5} {:>7} {:>9} {:>8} {:>10} {:>10} {:>8} {:>10} {:>10}"
    print(fmt.format(*header))
    print("-" * 85)

    def num(v, spec):
        return "-" if v is None else format(v, spec)

    for r in rows:
        print(fmt.format(
            r["mode"], r["fan_out"], r["ops"], num(r["seconds"], ".2f"),
            num(r["ops_per_s"], ".1f"), num(r["ops_per_s_per_process"], ".1f"),
            num(r["cpu_seconds"], ".2f"), num(r["cpu_ms_per_op"], ".3f"), num(r["mean_ms_per_op"], ".3f"),
        ))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", required=True, type=Path, help="input directory (bench.json, keys)")
    p.add_argument("--fan-out", default="0,1,10,100",
                   help="comma-separated fan-outs (consumers per message), default 0,1,10,100")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: os.cpu_count())")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per fan-out (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per fan-out (default 2)")
    p.add_argument("--payload-bytes", type=int, default=16, help="plaintext size in digits (default 16)")
    p.add_argument("--max-ops", type=int, default=10_000_000, help="cap on operations per process per loop")
    p.add_argument("--json", required=True, type=Path, help="write results as JSON here")
    p.add_argument("--cold", action="store_true",
                   help="also measure building the key provider + client per call (fan-out 0)")
    args = p.parse_args(argv)
    try:
        args.fan_outs = [int(x) for x in args.fan_out.split(",") if x.strip() != ""]
    except ValueError:
        p.error(f"--fan-out: not a comma-separated list of integers: {args.fan_out!r}")
    if not args.fan_outs or any(f < 0 for f in args.fan_outs):
        p.error("--fan-out: need one or more non-negative integers")
    if args.processes < 1 or args.payload_bytes < 1 or args.max_ops < 1:
        p.error("--processes, --payload-bytes and --max-ops must be positive")
    if args.seconds <= 0 or args.warmup < 0:
        p.error("--seconds must be positive and --warmup non-negative")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    bench = BenchDir.load(args.dir)
    if max(args.fan_outs) > len(bench.consumers):
        raise SystemExit(
            f"fan-out {max(args.fan_outs)} exceeds the {len(bench.consumers)} consumers in bench.json"
        )
    for name in bench.consumers[: max(args.fan_outs)]:
        if not bench.consumer_public_pem(name).is_file():
            raise SystemExit(f"missing {bench.consumer_public_pem(name)}")

    versions = {
        "python": platform.python_version(),
        "aws-encryption-sdk": aws_encryption_sdk.__version__,
        "cryptography": cryptography.__version__,
        "openssl": openssl_backend.openssl_version_text(),
    }

    inputs = make_inputs(bench, args.payload_bytes)

    rows = []
    plan = [("warm", f) for f in args.fan_outs] + ([("cold", 0)] if args.cold else [])
    try:
        for mode, fan_out in plan:
            print(f"running {mode} fan-out {fan_out} on {args.processes} processes "
                  f"({args.warmup:g} s warm-up + {args.seconds:g} s) ...", file=sys.stderr, flush=True)
            rows.append(run_config(args, bench, inputs, mode, fan_out))
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    print_table(rows, args.processes, args.payload_bytes, versions)
    out = {
        "tool": "python-esdk",
        "processes": args.processes,
        "payload_bytes": args.payload_bytes,
        "versions": versions,
        "results": rows,
    }
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
