"""Seedr transfer home: throughput from the fake Seedr's file link against `curl` on the same link, and peak
memory while transferring a 1 GiB file.

    .venv/bin/python bench/seedr_transfer.py [--size-mib 1024] [--runs 2]

1. Starts the fake Seedr (tests/fakes/seedr_fake.py) in its own process with one finished download of
   `--size-mib` MiB, and asks it for a signed `ff_get` link, as `fetch_file` would.
2. Downloads that link with `curl -o <file>` (the reference) and with the code the Seedr backend uses
   (`seedr.transfer.stream_file`, in a fresh process), alternating, `--runs` times each, into files on the
   same disk. Prints MB/s of each, the ratio (ours / curl), and our process's peak RSS (ru_maxrss) before
   and after the transfer: streamed, it stays flat whatever the size.
3. Checks both files have the fake's sha256 (a fast transfer of wrong bytes would be worthless).
Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
HASH = "be" * 20


def serve(size: int) -> None:
    """Child: the fake Seedr with one finished download; prints its signed file link, then serves."""
    sys.path.insert(0, str(ROOT))
    import threading

    from tests.fakes.seedr_fake import FakeSeedr

    fake = FakeSeedr(progress_step=100).serve()
    account = fake.add_account("bench@seedr.test", "pw", space_max=size * 2)
    fake.define(HASH, "Bench", [("bench.bin", size)])
    with fake.lock:  # the same resource functions seedrcc's calls reach: add, list (done at once), fetch_file
        fake.r_add_torrent(account, {"torrent_magnet": f"magnet:?xt=urn:btih:{HASH}"}, {})
        fake.r_list_contents(account, {"content_id": "0"}, {})
        ffid = next(iter(account.files))
        _status, body = fake.r_fetch_file(account, {"folder_file_id": str(ffid)}, {})
    print(json.dumps({"url": body["url"]}), flush=True)
    threading.Event().wait()


def ours(url: str, dest: str, size: int) -> None:
    """Child: one transfer with the backend's streaming code; prints seconds and peak RSS before/after."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DATA_DIR", str(Path(dest).parent / "data"))
    import django

    django.setup()
    from seedr import transfer

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    with transfer.http_client() as http:
        transfer.stream_file(http, url, Path(dest), size, lambda _position: None)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_before_mib": before, "rss_after_mib": after}), flush=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is needed for the reference measurement (apt-get install curl).")
    size = args.size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="flotilla-seedr-bench-"))
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(size)], stdout=subprocess.PIPE, text=True)
    try:
        url = json.loads(server.stdout.readline())["url"]
        sys.path.insert(0, str(ROOT))
        from tests.fakes.seedr_fake import file_sha256

        expected = file_sha256(HASH, "bench.bin", size)
        print(f"# {args.size_mib} MiB from the fake Seedr's ff_get link on 127.0.0.1, {args.runs} runs each")
        curl_s, ours_s, peaks = [], [], []
        for _run in range(args.runs):
            target = work / "curl.bin"
            started = time.perf_counter()
            subprocess.run(["curl", "-sS", "-f", "-o", str(target), url], check=True)
            curl_s.append(time.perf_counter() - started)
            curl_ok = sha256(target) == expected
            target.unlink()

            target = work / "ours.bin"
            child = subprocess.run([sys.executable, __file__, "--ours", url, str(target), str(size)],
                                   capture_output=True, text=True)
            if child.returncode:
                sys.exit(f"the transfer process failed:\n{child.stderr[-3000:]}")
            out = child.stdout
            result = json.loads(out.strip().splitlines()[-1])
            ours_s.append(result["seconds"])
            peaks.append((result["rss_before_mib"], result["rss_after_mib"]))
            ours_ok = sha256(target) == expected
            target.unlink()
        best_curl, best_ours = min(curl_s), min(ours_s)
        mbps = lambda seconds: size / seconds / 1e6  # noqa: E731
        print(f"curl:     best {mbps(best_curl):7.1f} MB/s  ({', '.join(f'{s:.2f} s' for s in curl_s)})  "
              f"sha256 {'ok' if curl_ok else 'WRONG'}")
        print(f"flotilla: best {mbps(best_ours):7.1f} MB/s  ({', '.join(f'{s:.2f} s' for s in ours_s)})  "
              f"sha256 {'ok' if ours_ok else 'WRONG'}")
        print(f"ratio flotilla/curl (throughput): {best_curl / best_ours:.2f}")
        for before, after in peaks:
            print(f"flotilla peak RSS: {before:.1f} MiB before the transfer, {after:.1f} MiB after "
                  f"(+{after - before:.1f} MiB for {args.size_mib} MiB streamed)")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--ours":
        ours(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
