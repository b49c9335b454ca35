"""Seed a sample torrent on 127.0.0.1 (tracker + libtorrent seeder) so Flotilla can be tried offline."""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
from pathlib import Path

from django.core.management import BaseCommand, CommandError

MIB = 1 << 20
NAME = "flotilla-demo"


def split_sizes(total: int, count: int) -> list[int]:
    """`count` file sizes adding up to `total`, the first taking the remainder."""
    base = total // count
    return [base + total % count] + [base] * (count - 1)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(value)
    return number


def port_number(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = ("Create a sample payload and seed it on 127.0.0.1 (own tracker and libtorrent seeder) until "
            "Ctrl-C/SIGTERM; prints the magnet, the .torrent path and the files' sha256.")
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--size-mib", type=positive, default=64, help="Total payload size in MiB (default 64).")
        parser.add_argument("--files", type=positive, default=4,
                            help="Number of files; 1 makes a single-file torrent, more a folder (default 4).")
        parser.add_argument("--port", type=port_number, default=0, help="Seeder's peer port (default: any free).")
        parser.add_argument("--tracker-port", type=port_number, default=0, help="Tracker's port (default: any free).")
        parser.add_argument("--dir", help="Where the payload and .torrent go (kept). Default: a temporary folder "
                                          "removed on exit.")
        parser.add_argument("--rate-limit", type=positive, metavar="KIB",
                            help="Cap the seeder's upload at this many KiB/s, to watch progress live.")

    def handle(self, *args, size_mib: int, files: int, port: int, tracker_port: int, dir: str | None,
               rate_limit: int | None, **options):
        from downloads.swarm import Seeder, Swarm, Tracker  # libtorrent only when this command runs

        try:
            tracker = Tracker(port=tracker_port).start()
        except OSError as exc:
            raise CommandError(f"cannot listen on 127.0.0.1:{tracker_port} for the tracker: {exc}") from exc
        directory = Path(dir) if dir else Path(tempfile.mkdtemp(prefix="flotilla-demo-swarm-"))
        name = NAME + (".bin" if files == 1 else "")
        sizes = split_sizes(size_mib * MIB, files)
        spec = sizes[0] if files == 1 else {f"file-{i:02d}.bin": size for i, size in enumerate(sizes, 1)}
        stop = threading.Event()
        previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            if dir:  # a re-run with the same --dir: replace our own earlier payload (its files would join the torrent)
                remove_path(directory / "payload" / name)
            with Seeder(port=port) as seeder, Swarm(directory, tracker=tracker, seeder=seeder) as swarm:
                self.stdout.write("Creating the payload and its .torrent…")
                self.stdout.flush()
                record = swarm.publish(name, spec, upload_limit=rate_limit * 1024 if rate_limit else None)
                self._announce(record, tracker, seeder, port, rate_limit)
                self._serve(stop, seeder, record)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            tracker.stop()
            if not dir:
                shutil.rmtree(directory, ignore_errors=True)
        self.stdout.write("Stopped.")

    def _announce(self, record, tracker, seeder, port: int, rate_limit: int | None) -> None:
        out = self.stdout
        out.write(self.style.SUCCESS("Flotilla demo swarm: seeding on 127.0.0.1 (nothing leaves this machine)"))
        out.write(f"  tracker: {tracker.announce_url}")
        moved = f"  (port {port} was taken)" if port and seeder.port != port else ""
        out.write(f"  seeder:  127.0.0.1:{seeder.port}{moved}")
        if rate_limit:
            out.write(f"  upload limit: {rate_limit} KiB/s")
        out.write(f"  torrent: {record.torrent_path}")
        out.write(f"  magnet:  {record.magnet}")
        out.write(f"  files ({record.size / MIB:.1f} MiB):")
        for path, digest in record.files.items():
            out.write(f"    sha256 {digest}  {record.sizes[path]:>10}  {path}")
        out.write(self.style.WARNING(
            "Paste the magnet into Flotilla (engine backend) or upload the .torrent; Ctrl-C to stop."))
        out.flush()

    def _serve(self, stop: threading.Event, seeder, record) -> None:
        reported = 0
        while not stop.wait(5):
            uploaded = seeder.uploaded_bytes(record.info_hash)
            if uploaded != reported:  # a line only when something moved, so an idle demo stays quiet
                self.stdout.write(f"  uploaded {uploaded / MIB:.1f} MiB")
                self.stdout.flush()
                reported = uploaded
