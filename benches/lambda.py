#!/usr/bin/env python3
"""The Lambda path measured: ``reseal lambda`` next to the seed's Python Lambda
pattern (``benches/lambda_python_function.py``), both as Lambda custom
runtimes driven by the same local Runtime API emulator with the same Amazon
Connect ``ContactFlowEvent``s.

What is measured, per fan-out (consumers per event):

* **cold start**: from the process's spawn (an event is already waiting) to
  its first answer arriving at the Runtime API: process start, imports or
  loading the binary, reading and checking the keys, building the client or
  the broker, the first invocation. Also the CPU the process used for all of
  it (``wait4`` rusage). ``--cold-runs`` fresh processes; medians.
* **warm invocation**: in a process that has already answered ``--warmup``
  events, ``--calls`` events one after the other (as Lambda hands them to an
  execution environment); per invocation the wall time from the event
  leaving ``/next`` to its answer arriving (what Lambda bills), and the CPU
  time of the whole process per invocation (every thread, from
  ``/proc/PID/task/*/schedstat``). ``--warm-runs`` processes; medians.

Both sides get the same keys (RSA-2048 Connect key, OAEP-SHA512; RSA-2048
consumer keys, OAEP-SHA256), the same 16-digit inputs written by the
reference Python ESDK as Amazon Connect writes them (0x0378, frame 4096), and
answer the same flat map of base64 0x0478 envelopes. reseal loads its
registry from a file (``file:`` keys) and writes its audit line per
invocation to stderr (JSON, as in production); the Python function logs
nothing.

Usage::

    cargo build --release --bin reseal
    .venv/bin/python benches/lambda.py --reseal target/release/reseal \\
        [--python .venv/bin/python] [--fan-out 1,3,10] [--cold-runs 15] \\
        [--warm-runs 5] [--warmup 20] [--calls 200] [--json out.json]

Needs ``aws-encryption-sdk`` (the test venv has it). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import queue
import secrets
import select
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent
CONNECT_KEY_ID = "6f1f2d3c-5a7b-4c8d-9e0f-1a2b3c4d5e6f"
NUM_INPUTS = 64


# --------------------------------------------------------------- keys, inputs


def write_key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.with_suffix(".pub.pem").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def setup(root: Path, fan_outs: list[int]) -> None:
    consumers = [f"c{i:03}" for i in range(max(fan_outs))]
    (root / "consumers").mkdir(parents=True)
    write_key(root / "connect.pem")
    for c in consumers:
        write_key(root / "consumers" / f"{c}.pem")
    routes = {f"fanout-{n}": consumers[:n] for n in fan_outs}
    (root / "bench.json").write_text(
        json.dumps({"connect_key_id": CONNECT_KEY_ID, "consumers": consumers, "routes": routes})
    )
    lines = [
        "server:",
        "  log_format: json",
        "sources:",
        "  connect:",
        "    type: raw-rsa",
        f"    key_name: {CONNECT_KEY_ID}",
        "    private_key: file:connect.pem",
        "consumers:",
    ]
    for c in consumers:
        lines += [f"  {c}:", "    keys:", f"      {c}: {{type: rsa-public, public_key: file:consumers/{c}.pub.pem}}"]
    lines.append("routes:")
    for name, members in routes.items():
        lines.append(f"  {name}: [{', '.join(members)}]")
    (root / "reseal.yaml").write_text("\n".join(lines) + "\n")


def connect_inputs(root: Path) -> list[bytes]:
    """Card numbers encrypted the way Amazon Connect does (0x0378, OAEP-SHA512)."""
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT)
    mk = RawMasterKey(
        provider_id="AmazonConnect",
        key_id=CONNECT_KEY_ID.encode(),
        wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.RSA_OAEP_SHA512_MGF1,
            wrapping_key=(root / "connect.pub.pem").read_bytes(),
            wrapping_key_type=EncryptionKeyType.PUBLIC,
        ),
    )
    out = []
    for _ in range(NUM_INPUTS):
        card = "".join(secrets.choice(string.digits) for _ in range(16)).encode()
        ct, _ = client.encrypt(
            source=card,
            key_provider=mk,
            algorithm=Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384,
            frame_length=4096,
        )
        out.append(ct)
    return out


def contact_flow_event(ciphertext: bytes, route: str) -> bytes:
    contact = str(uuid.uuid4())
    return json.dumps(
        {
            "Details": {
                "ContactData": {
                    "Attributes": {},
                    "Channel": "VOICE",
                    "ContactId": contact,
                    "CustomerEndpoint": {"Address": "+1234567890", "Type": "TELEPHONE_NUMBER"},
                    "InitialContactId": contact,
                    "InitiationMethod": "INBOUND",
                    "InstanceARN": "arn:aws:connect:us-east-1:111122223333:instance/c8c0e68d-2200-4265-82c0-0123456789ab",
                    "SystemEndpoint": {"Address": "+1234567890", "Type": "TELEPHONE_NUMBER"},
                },
                "Parameters": {
                    "my-secret-string": base64.b64encode(ciphertext).decode(),
                    "key-id": CONNECT_KEY_ID,
                    "route": route,
                },
            },
            "Name": "ContactFlowEvent",
        }
    ).encode()


# ------------------------------------------------------- Runtime API emulator


class RuntimeApi:
    """GET /invocation/next hands out queued events; /response and /error are
    recorded with the time they arrived (time.perf_counter_ns)."""

    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.handed: dict[str, int] = {}
        self.done: dict[str, tuple[int, int, bytes]] = {}  # id -> (arrived ns, status, body)
        self.cond = threading.Condition(self.lock)
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def reply(self, status: int, body: bytes = b'{"status":"OK"}', headers=()):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self.reply(404, b"{}")
                # A runtime killed while it waited here leaves this poll behind:
                # it must not take the next process's event, so it watches its
                # socket and gives up when the peer has gone.
                while True:
                    try:
                        request_id, body = api.events.get(timeout=0.02)
                        break
                    except queue.Empty:
                        if self.peer_gone():
                            return
                with api.lock:
                    api.handed[request_id] = time.perf_counter_ns()
                deadline = str(int(time.time() * 1000) + 30_000)
                try:
                    self.reply(
                        200,
                        body,
                        [
                            ("Lambda-Runtime-Aws-Request-Id", request_id),
                            ("Lambda-Runtime-Deadline-Ms", deadline),
                            ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:111122223333:function:bench"),
                            ("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=0"),
                        ],
                    )
                except OSError:
                    api.events.put((request_id, body))  # for the next runtime
                    self.close_connection = True

            def peer_gone(self) -> bool:
                readable, _, _ = select.select([self.connection], [], [], 0)
                if not readable:
                    return False
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def do_POST(self):
                now = time.perf_counter_ns()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                parts = self.path.split("/")
                # /2018-06-01/runtime/invocation/{id}/{response|error} or .../init/error
                if self.path == "/2018-06-01/runtime/init/error":
                    with api.cond:
                        api.done["init"] = (now, 500, body)
                        api.cond.notify_all()
                    return self.reply(202)
                if len(parts) == 6 and parts[3] == "invocation" and parts[5] in ("response", "error"):
                    with api.cond:
                        api.done[parts[4]] = (now, 200 if parts[5] == "response" else 500, body)
                        api.cond.notify_all()
                    return self.reply(202)
                self.reply(404, b"{}")

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # A runtime killed between runs resets its connections: expected.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def invoke(self, body: bytes) -> str:
        request_id = str(uuid.uuid4())
        self.events.put((request_id, body))
        return request_id

    def wait(self, request_id: str, timeout: float = 60.0) -> tuple[int, int, bytes]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while request_id not in self.done and "init" not in self.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer for {request_id}")
                self.cond.wait(left)
            if "init" in self.done:
                raise RuntimeError(f"init error: {self.done['init'][2]!r}")
            return self.done.pop(request_id)

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()


# ------------------------------------------------------------------ processes


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of a process, in ns."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def spawn(kind: str, args, api: RuntimeApi, root: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "LAMBDA_TASK_ROOT": str(root),
            "BENCH_DIR": str(root),
        }
    )
    env.pop("RESEAL_CONFIG", None)
    env.pop("RUST_LOG", None)
    if kind == "reseal":
        cmd = [args.reseal, "lambda", "--config", str(root / "reseal.yaml")]
    else:
        cmd = [args.python, str(HERE / "lambda_python_function.py")]
    # stderr (reseal's audit lines) goes to a file: kept for a look when a run fails.
    log = open(root / f"{kind}.stderr", "ab")
    try:
        return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    finally:
        log.close()


def stop(proc: subprocess.Popen) -> float:
    """Kills the process; the CPU seconds it used in all."""
    proc.send_signal(signal.SIGKILL)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = -9
    return usage.ru_utime + usage.ru_stime


def check_answer(body: bytes, fan_out: int) -> None:
    answer = json.loads(body)
    envelopes = [k for k in answer if k.startswith("c") and len(k) == 4]
    if answer.get("status") != "OK" or len(envelopes) != fan_out:
        raise RuntimeError(f"unexpected answer: {body[:300]!r}")


def cold(kind: str, args, api: RuntimeApi, root: Path, inputs, fan_out: int) -> tuple[float, float]:
    api.drain()
    request_id = api.invoke(contact_flow_event(secrets.choice(inputs), f"fanout-{fan_out}"))
    started = time.perf_counter_ns()
    proc = spawn(kind, args, api, root)
    arrived, status, body = api.wait(request_id)
    if status != 200:
        raise RuntimeError(f"{kind}: first invocation failed: {body!r}")
    check_answer(body, fan_out)
    cpu = stop(proc)
    return (arrived - started) / 1e6, cpu * 1e3


def warm(kind: str, args, api: RuntimeApi, root: Path, inputs, fan_out: int) -> tuple[float, float]:
    api.drain()
    proc = spawn(kind, args, api, root)
    route = f"fanout-{fan_out}"
    try:
        for i in range(args.warmup):
            _, status, body = api.wait(api.invoke(contact_flow_event(inputs[i % len(inputs)], route)))
            if status != 200:
                raise RuntimeError(f"{kind}: warm-up failed: {body!r}")
        walls = []
        cpu_before = cpu_ns(proc.pid)
        for i in range(args.calls):
            request_id = api.invoke(contact_flow_event(inputs[i % len(inputs)], route))
            arrived, status, body = api.wait(request_id)
            if status != 200:
                raise RuntimeError(f"{kind}: invocation failed: {body!r}")
            walls.append((arrived - api.handed.pop(request_id)) / 1e6)
        cpu_after = cpu_ns(proc.pid)
        check_answer(body, fan_out)
    finally:
        stop(proc)
    return statistics.median(walls), (cpu_after - cpu_before) / args.calls / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reseal", required=True, help="the reseal binary (a release build)")
    ap.add_argument("--python", default=sys.executable, help="the Python with the reference ESDK")
    ap.add_argument("--fan-out", default="1,3,10")
    ap.add_argument("--cold-runs", type=int, default=15)
    ap.add_argument("--warm-runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--keep", help="work in this directory and keep it (keys, registry, each side's stderr)")
    args = ap.parse_args()
    fan_outs = [int(x) for x in args.fan_out.split(",")]
    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory() as d:
        root = Path(args.keep or d)
        root.mkdir(parents=True, exist_ok=True)
        setup(root, fan_outs)
        inputs = connect_inputs(root)
        api = RuntimeApi()
        for fan_out in fan_outs:
            for kind in ("reseal", "python"):
                colds = [cold(kind, args, api, root, inputs, fan_out) for _ in range(args.cold_runs)]
                warms = [warm(kind, args, api, root, inputs, fan_out) for _ in range(args.warm_runs)]
                row = {
                    "impl": kind,
                    "fan_out": fan_out,
                    "cold_start_ms": statistics.median(c[0] for c in colds),
                    "cold_start_cpu_ms": statistics.median(c[1] for c in colds),
                    "warm_wall_ms": statistics.median(w[0] for w in warms),
                    "warm_cpu_ms": statistics.median(w[1] for w in warms),
                    "cold_start_ms_all": [round(c[0], 2) for c in colds],
                    "warm_wall_ms_runs": [round(w[0], 3) for w in warms],
                    "warm_cpu_ms_runs": [round(w[1], 3) for w in warms],
                }
                results.append(row)
                print(
                    f"{kind:7} fan-out {fan_out:3}: cold {row['cold_start_ms']:8.1f} ms "
                    f"(cpu {row['cold_start_cpu_ms']:7.1f} ms)  warm {row['warm_wall_ms']:7.3f} ms wall, "
                    f"{row['warm_cpu_ms']:7.3f} ms cpu",
                    file=sys.stderr,
                )
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "python": platform.python_version(),
        "esdk": aws_encryption_sdk.__version__,
        "args": {k: v for k, v in vars(args).items() if k not in ("reseal", "python")},
    }
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print("| fan-out | implementation | cold start (wall) | cold start (CPU) | warm invocation (wall) | warm invocation (CPU) |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in results:
        name = "reseal lambda" if r["impl"] == "reseal" else "Python + reference ESDK"
        print(
            f"| {r['fan_out']} | {name} | {r['cold_start_ms']:.1f} ms | {r['cold_start_cpu_ms']:.1f} ms "
            f"| {r['warm_wall_ms']:.3f} ms | {r['warm_cpu_ms']:.3f} ms |"
        )
    print(
        f"\n{meta['cpus']} CPUs, load average {load_before[0]:.1f} before, {meta['load_after'][0]:.1f} after; "
        f"Python {meta['python']}, aws-encryption-sdk {meta['esdk']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
