"""A DNS server on loopback that a benchmark controls, and a network namespace that uses it.

Benchmarks that send attacker-chosen STS host names to a server must not let a single query
leave the machine. :func:`dns_namespace` makes a network namespace of its own (tests/e2e/netns.py:
only loopback, no route out) whose ``/etc/resolv.conf`` names ``127.0.0.1`` (``ip netns exec``
bind-mounts ``/etc/netns/<name>/resolv.conf`` and ``nsswitch.conf`` over the system's) and
starts this module's DNS server inside, on ``127.0.0.1:53``:

* names given with ``--answer`` (the STS front's names) get an A record ``127.0.0.1`` (and an
  empty answer for AAAA: the front listens on IPv4 only);
* names in the ``--overrides`` file (JSON ``{name: mode}``, re-read on SIGHUP, see
  :meth:`DnsNamespace.set_overrides`) get that mode, ahead of the rest: tests switch a name's
  answers at run time;
* every other name gets what ``--unknown`` says: ``nxdomain`` (at once), ``slow`` (NXDOMAIN
  after ``--delay`` seconds), ``drop`` (no answer ever) or ``mixed`` (half of the names, chosen
  by a stable hash of the name, ``slow``, the other half ``drop``).

On SIGTERM the server writes what it saw to ``--stats`` (JSON: query counts per outcome and the
distinct names asked for) and exits, so a benchmark can say which host names reached a resolver.

    with dns_namespace(answers=sts_host_names(), unknown="mixed", delay=2.0, stats=path) as dns:
        dns.ns.popen([...], env=...)   # a process that resolves names through the server
        ...
    dns.stats()                        # after the block: what the server saw

The server is plain stdlib asyncio over UDP (``python bench/netns_dns.py serve ...``), in a
process of its own so it shares no interpreter with a load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent

#: DNS record types and classes the server knows (RFC 1035, RFC 3596).
TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_NXDOMAIN = 3
#: A names answered with this address (the STS front inside the namespace).
LOOPBACK = "127.0.0.1"
#: TTL of the answers: short, like a real regional endpoint's.
ANSWER_TTL = 60
UNKNOWN_MODES = ("nxdomain", "slow", "drop", "mixed")
#: How long `dns_namespace` waits for the server to bind port 53.
START_SECONDS = 15.0
#: resolv.conf inside the namespace: glibc's defaults otherwise (5 s timeout, 2 attempts).
RESOLV_CONF = f"nameserver {LOOPBACK}\n"
#: Only the hosts file and DNS: nothing (systemd-resolved, mDNS) that could answer from outside.
NSSWITCH_CONF = "hosts: files dns\n"


# --- the wire format --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Question:
    ident: int
    flags: int
    name: str
    qtype: int
    qclass: int
    #: The question section as received (echoed in the answer).
    raw_question: bytes


def parse_query(packet: bytes) -> Question | None:
    """The first question of a DNS query, or None if the packet is not one we can answer."""
    if len(packet) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount < 1:  # an answer, or no question
        return None
    labels: list[str] = []
    offset = 12
    while True:
        if offset >= len(packet):
            return None
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length > 63 or offset + length > len(packet):  # no compression in a question
            return None
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack("!HH", packet[offset : offset + 4])
    return Question(
        ident=ident,
        flags=flags,
        name=".".join(labels).lower(),
        qtype=qtype,
        qclass=qclass,
        raw_question=packet[12 : offset + 4],
    )


def build_answer(question: Question, *, rcode: int, address: str | None = None) -> bytes:
    """A response to `question`: `rcode`, with one A record for `address` when given."""
    # QR=1, the query's opcode and RD, AA=1, RA=1.
    flags = 0x8000 | (question.flags & 0x7900) | 0x0400 | 0x0080 | rcode
    answers = b""
    if address is not None:
        rdata = bytes(int(part) for part in address.split("."))
        # The owner name is a pointer to the question's name at offset 12.
        answers = struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, ANSWER_TTL, len(rdata)) + rdata
    header = struct.pack("!HHHHHH", question.ident, flags, 1, 1 if answers else 0, 0, 0)
    return header + question.raw_question + answers


# --- the server -------------------------------------------------------------------------------


@dataclass
class Policy:
    """What the server answers; counts what it saw."""

    answers: frozenset[str]
    unknown: str = "nxdomain"
    delay: float = 2.0
    #: name -> mode, ahead of everything else (switched at run time: `--overrides`, SIGHUP).
    overrides: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)

    def decide(self, name: str) -> str:
        """``answer``, ``nxdomain``, ``slow`` or ``drop`` for a query for `name`."""
        if name in self.overrides:
            return self.overrides[name]
        if name in self.answers:
            return "answer"
        if self.unknown == "mixed":
            return "slow" if zlib.crc32(name.encode()) % 2 == 0 else "drop"
        return self.unknown

    def note(self, name: str, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.names.add(name)

    def snapshot(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "names": sorted(self.names)}


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        question = parse_query(data)
        if question is None:
            return
        if question.qclass != CLASS_IN:
            self._send(build_answer(question, rcode=RCODE_FORMERR), addr)
            return
        outcome = self.policy.decide(question.name)
        self.policy.note(question.name, outcome)
        if outcome == "answer":
            address = LOOPBACK if question.qtype == TYPE_A else None
            self._send(build_answer(question, rcode=RCODE_NOERROR, address=address), addr)
        elif outcome == "nxdomain":
            self._send(build_answer(question, rcode=RCODE_NXDOMAIN), addr)
        elif outcome == "slow":
            loop = asyncio.get_running_loop()
            answer = build_answer(question, rcode=RCODE_NXDOMAIN)
            loop.call_later(self.policy.delay, self._send, answer, addr)
        # drop: no answer at all

    def _send(self, payload: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(payload, addr)


def read_overrides(path: Path | None) -> dict[str, str]:
    """``{name: mode}`` from a JSON file (absent or None: no overrides)."""
    if path is None or not path.exists():
        return {}
    doc = json.loads(path.read_text())
    modes = (*UNKNOWN_MODES[:3], "answer")
    return {str(k).lower(): str(v) for k, v in doc.items() if v in modes}


async def serve(
    host: str, port: int, policy: Policy, stats: Path | None, overrides: Path | None = None
) -> None:
    """Answer on `host:port` until SIGTERM or SIGINT; then write `stats` (JSON). SIGHUP re-reads
    the `overrides` file."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    policy.overrides = read_overrides(overrides)

    def reload() -> None:
        policy.overrides = read_overrides(overrides)
        print(f"overrides: {json.dumps(policy.overrides, sort_keys=True)}", flush=True)

    loop.add_signal_handler(signal.SIGHUP, reload)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Protocol(policy), local_addr=(host, port)
    )
    print(f"listening on {host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        transport.close()
        if stats is not None:
            stats.write_text(json.dumps(policy.snapshot()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a loopback DNS server a benchmark controls")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve")
    run.add_argument("--listen", default=f"{LOOPBACK}:53")
    run.add_argument("--answer", action="append", default=[], help="name answered 127.0.0.1")
    run.add_argument("--answers-file", type=Path, help="names answered 127.0.0.1, one a line")
    run.add_argument("--unknown", choices=UNKNOWN_MODES, default="nxdomain")
    run.add_argument("--delay", type=float, default=2.0, help="seconds before a slow answer")
    run.add_argument("--stats", type=Path, help="JSON of what was asked, written at exit")
    run.add_argument("--overrides", type=Path, help="JSON {name: mode}, re-read on SIGHUP")
    args = parser.parse_args(argv)
    names = {n.lower().rstrip(".") for n in args.answer}
    if args.answers_file is not None:
        names |= {n.strip().lower() for n in args.answers_file.read_text().split() if n.strip()}
    host, _, port = args.listen.rpartition(":")
    policy = Policy(answers=frozenset(names), unknown=args.unknown, delay=args.delay)
    asyncio.run(serve(host, int(port), policy, args.stats, args.overrides))
    return 0


# --- the namespace ----------------------------------------------------------------------------


@dataclass
class DnsNamespace:
    """A network namespace whose resolver is the loopback DNS server (`ns` runs programs)."""

    ns: Any  # tests.e2e.netns.NetNamespace
    process: subprocess.Popen[str]
    stats_path: Path
    overrides_path: Path
    log_path: Path

    def set_overrides(self, overrides: dict[str, str]) -> None:
        """Answer these names this way from now on (``answer``, ``nxdomain``, ``slow``,
        ``drop``); returns once the server has read them."""
        self.overrides_path.write_text(json.dumps(overrides))
        expected = (
            f"overrides: {json.dumps({k.lower(): v for k, v in overrides.items()}, sort_keys=True)}"
        )
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + START_SECONDS
        while expected not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the DNS server did not take the overrides: {overrides}")
            time.sleep(0.02)

    def stats(self) -> dict[str, Any]:
        """What the server saw (after the `with` block, or after `stop_dns`)."""
        if not self.stats_path.exists():
            return {"counts": {}, "names": []}
        data: dict[str, Any] = json.loads(self.stats_path.read_text())
        return data

    def stop_dns(self) -> dict[str, Any]:
        """Stop the DNS server (it writes its stats) and return them."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        return self.stats()


@contextlib.contextmanager
def dns_namespace(
    *,
    answers: Iterable[str],
    unknown: str = "nxdomain",
    delay: float = 2.0,
    workdir: Path,
) -> Iterator[DnsNamespace]:
    """A namespace (loopback only) whose resolv.conf points at our DNS server on 127.0.0.1:53.

    The hosts file maps only ``localhost``: every other name is a DNS query to the server.
    Everything (server, namespace, ``/etc/netns/<name>``) is removed on exit.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.e2e.netns import network_namespace

    if unknown not in UNKNOWN_MODES:
        raise ValueError(f"unknown mode {unknown!r}: one of {', '.join(UNKNOWN_MODES)}")
    names_file = workdir / "dns-answers.txt"
    names_file.write_text("\n".join(answers) + "\n")
    stats = workdir / "dns-stats.json"
    overrides = workdir / "dns-overrides.json"
    log = workdir / "dns.log"
    with network_namespace(hosts=()) as ns:
        (ns.etc_dir / "resolv.conf").write_text(RESOLV_CONF)
        (ns.etc_dir / "nsswitch.conf").write_text(NSSWITCH_CONF)
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "serve",
            "--answers-file",
            str(names_file),
            "--unknown",
            unknown,
            "--delay",
            str(delay),
            "--stats",
            str(stats),
            "--overrides",
            str(overrides),
        ]
        with log.open("w") as handle:
            proc = ns.popen(argv, env={"PATH": "/usr/bin:/bin"}, stdout=handle, stderr=handle)
        deadline = time.monotonic() + START_SECONDS
        while "listening" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the loopback DNS server did not start: {log.read_text()}")
            time.sleep(0.05)
        dns = DnsNamespace(
            ns=ns, process=proc, stats_path=stats, overrides_path=overrides, log_path=log
        )
        try:
            yield dns
        finally:
            dns.stop_dns()


if __name__ == "__main__":
    raise SystemExit(main())
