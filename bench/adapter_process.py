"""The department adapter host in its own process, for the benchmarks of the bus as deployed.

    python -m bench.adapter_process NATS_URL CODE... [--auth-dir DIR] [--concurrency N]

What ``unstuck adapters run`` does, with the benchmark adapters (they answer ``resolved`` at once
and are not installed packages, so ``adapters run`` cannot find them). With ``--auth-dir`` (a
directory ``unstuck nats-config`` wrote), each department gets its own host on its own connection
and its own credentials, as under ``serve --secure``. Prints ``serving`` when every department
answers, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from unstuck.adapters.host import AdapterHost
from unstuck.connection import Connection
from unstuck.natsconfig import CredentialStore, department_principal

from .peers import until_stopped
from .workload import bench_adapters


async def main(args: argparse.Namespace) -> None:
    conn = Connection(url=args.url)
    adapters = bench_adapters(args.codes)
    hosts: list[AdapterHost] = []
    if args.auth_dir:
        store = CredentialStore(Path(args.auth_dir))
        for adapter in adapters:
            code = adapter.department.code
            nc = await conn.connect(f"bench-adapter-{code}", auth=store.get(department_principal(code)))
            hosts.append(AdapterHost(nc, [adapter], concurrency=args.concurrency))
    else:
        nc = await conn.connect("bench-adapters")
        hosts.append(AdapterHost(nc, adapters, concurrency=args.concurrency))
    for host in hosts:
        await host.start()
    await until_stopped(f"serving {' '.join(args.codes)}")
    for host in hosts:
        await host.stop()
    await conn.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.adapter_process", description=__doc__)
    p.add_argument("url")
    p.add_argument("codes", nargs="+")
    p.add_argument("--auth-dir", help="credentials directory written by `unstuck nats-config`")
    p.add_argument("--concurrency", type=int, default=32, help="as `unstuck adapters run`")
    asyncio.run(main(p.parse_args()))
