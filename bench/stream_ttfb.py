"""Time to first byte and to first frame of a stream: cold (magnet or .torrent just added), warm (second play),
after a preload, against nginx serving the completed file, same run.

daphne and `manage.py runengine` run as separate processes; an ffmpeg-made H.264/AAC MP4 (tests/streaming/
media.py, `moov` at the end by default, as most downloads have it: a player reads the tail before the first
frame) is seeded on the loopback swarm (downloads.swarm tracker + libtorrent seeder) at --seed-rate-kib
(1024 KiB/s: a modest swarm; the whole file's download time at that rate is printed beside the figures).
Every cold case is a torrent of its own (the same video under another name: another info-hash), so nothing of
it has been fetched. The clocks:
- first byte: from sending the add (`POST /api/v1/jobs/` with the magnet or the .torrent, or "play without
  downloading": `POST /api/v1/stream/play/` with the magnet, an ephemeral job; API key) — or, warm
  and for the references, from sending the stream request — to the first body byte of
  `GET /api/v1/stream/<job>` with `Range: bytes=0-`. Before the engine knows the file the endpoint answers
  404/409/503 at once; the client asks again every 50 ms, as a player page polling "ready" would;
- first frame: from the same start until `ffmpeg -i <stream URL> -frames:v 1 -f null -` exits having decoded one
  video frame (the API key in `-headers`). Cold, ffmpeg starts once a `HEAD` of the stream answers 200 (the
  engine holds the job and knows its files; HEAD waits for no piece), and the clock includes that wait;
- warm: the cold first-frame job played again right away (X-Stream-Source says whether the engine still had
  it or it was complete on disk by then);
- after a preload (if this tree has `POST /api/v1/ui/viewport`, else "not available"): a .torrent added and
  held by the engine, put in focus, the preload pass run (the worker's task streaming.tasks.preload, called in
  this process: it returns once the engine has the file's head and tail on disk), then played; the clock starts
  at the play request (the brief: focus an item, press Play within 2 s, the stream starts within 1 s), and the
  preload's own duration is printed beside it;
- references: nginx serving the completed file (the seeder's copy), daphne sending it from disk (a completed
  job with the file), and for a cold first byte a bare libtorrent session (in this process) adding the .torrent
  with a deadline on piece 0 until it has that piece: what the swarm itself allows.
Printed per round and as medians, against the brief's targets (< 2 s; < 1 s after a preload) and as ratios to
nginx's figure. Each measured job is let finish before the next case (no download of ours competes with it).
Options: --rounds (3), --preset (1080p30), --faststart, --seed-rate-kib, --piece-kib (libtorrent's choice).
"""

from __future__ import annotations

import argparse
import http.client
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import environment, load_note, setup_django, wait_for
from bench.stream_common import (
    API_KEY,
    ENGINE_ENV,
    LOOPBACK,
    MIB,
    auth,
    completed_file,
    daphne,
    direct_location,
    engine,
    make_user,
    median,
    nginx,
    viewport_available,
)

POLL = 0.05


@dataclass
class Sample:
    seconds: float
    note: str = ""


@dataclass
class Figures:
    byte: list[Sample] = field(default_factory=list)
    frame: list[Sample] = field(default_factory=list)


def first_byte(url: str, started: float, *, retry_until: float | None = None) -> Sample:
    """Seconds from `started` to the first body byte of a 2xx answer to `GET url` (Range: bytes=0-), on a new
    connection (http.client: no client set-up inside the clock). With `retry_until`, a 404/409/503 is asked
    again every POLL seconds (the file is not known yet)."""
    parts = urlsplit(url)
    tries = 0
    statuses: dict[int, int] = {}
    while True:
        tries += 1
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                         headers={**auth(), "Range": "bytes=0-"})
            response = conn.getresponse()
            if response.status in (200, 206):
                response.read1(16384)
                at = time.perf_counter() - started
                source = response.getheader("X-Stream-Source") or "disk"
                before = ", ".join(f"{code} x{n}" for code, n in sorted(statuses.items()))
                return Sample(at, source + (f"; before: {before}" if before else ""))
            statuses[response.status] = statuses.get(response.status, 0) + 1
        finally:
            conn.close()
        if retry_until is None or time.perf_counter() > retry_until:
            raise RuntimeError(f"GET {url}: HTTP {response.status} after {tries} tries")
        time.sleep(POLL)


def streamable(url: str, retry_until: float) -> None:
    """Wait until `HEAD url` answers 200/206: the stream has a file to send (HEAD waits for no piece)."""
    parts = urlsplit(url)
    while True:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            conn.request("HEAD", parts.path, headers=auth())
            if conn.getresponse().status in (200, 206):
                return
        finally:
            conn.close()
        if time.perf_counter() > retry_until:
            raise RuntimeError(f"HEAD {url} never answered 200")
        time.sleep(POLL)


def first_frame(url: str, started: float) -> Sample:
    """Seconds from `started` until ffmpeg has decoded the first video frame from `url`."""
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-headers", f"Authorization: Token {API_KEY}\r\n",
         "-i", url, "-frames:v", "1", "-f", "null", "-"], capture_output=True, text=True, timeout=120)
    at = time.perf_counter() - started
    if done.returncode != 0:
        return Sample(at, f"ffmpeg failed ({done.returncode}): {done.stderr.strip()[-200:]}")
    return Sample(at)


class Swarmed:
    """One video on the loopback swarm under a fresh name per cold case (a new info-hash each time)."""

    def __init__(self, swarm, video: Path, folder: Path, rate: int, piece: int | None) -> None:
        self.swarm, self.video, self.folder, self.rate, self.piece = swarm, video, folder, rate, piece
        self.count = 0
        self.piece_note = ""

    def publish(self):
        from downloads.swarm import make_torrent, torrent_meta

        self.count += 1
        name = f"film-{self.count}.mp4"
        (self.folder / name).hardlink_to(self.video)
        torrent = make_torrent(self.folder / name, [self.swarm.tracker.announce_url], self.piece)
        self.swarm.seeder.add(torrent, self.folder, upload_limit=self.rate or None)
        meta = torrent_meta(torrent)
        self.piece_note = f"{meta.num_pieces} pieces of {meta.piece_size // 1024} KiB"
        return torrent, meta


def add_job(base: str, *, magnet: str | None = None, torrent: bytes | None = None, play: bool = False) -> int:
    """`POST /api/v1/jobs/` (a download), or with `play` `POST /api/v1/stream/play/` (play without downloading:
    an ephemeral job)."""
    import httpx

    endpoint = "/api/v1/stream/play/" if play else "/api/v1/jobs/"
    with httpx.Client(base_url=base, headers=auth(), timeout=60) as client:
        if magnet:
            answer = client.post(endpoint, json={"magnet": magnet})
        else:
            answer = client.post(endpoint, files={"torrent": ("t.torrent", torrent)})
    if answer.status_code != 201:
        raise RuntimeError(f"adding the job: HTTP {answer.status_code} {answer.text[:300]}")
    return answer.json()["job"]["id"] if play else answer.json()["id"]


def cold(base: str, swarmed: Swarmed, how: str, what: str) -> tuple[Sample, int]:
    torrent, meta = swarmed.publish()
    source = {"torrent": torrent} if how == "torrent" else {"magnet": meta.magnet, "play": how == "play"}
    started = time.perf_counter()
    job_id = add_job(base, **source)
    url = f"{base}/api/v1/stream/{job_id}"
    if what == "byte":
        return first_byte(url, started, retry_until=started + 120), job_id
    streamable(url, started + 120)
    waited = time.perf_counter() - started
    sample = first_frame(url, started)
    sample.note = (sample.note + "; " if sample.note else "") + f"streamable after {waited:.2f} s"
    return sample, job_id


def preloaded(base: str, swarmed: Swarmed, what: str) -> tuple[Sample, int]:
    """A .torrent added and held by the engine, put in focus (`POST /api/v1/ui/viewport`), the preload pass run
    (the worker's task, here in this process: it returns once the engine has the head and tail on disk), then
    played: the clock starts at the play request."""
    import httpx

    from downloads.models import Job, JobFile, PreloadItem
    from streaming import tasks

    torrent, _ = swarmed.publish()
    job_id = add_job(base, torrent=torrent)
    wait_for(lambda: Job.objects.filter(pk=job_id).exclude(claimed_by="").exists(),
             "the engine holds the job", 60)
    began = time.perf_counter()
    answer = httpx.post(f"{base}/api/v1/ui/viewport", json={"items": [{"job": job_id, "priority": "focused"}]},
                        headers=auth(), timeout=60)
    if answer.status_code != 200 or answer.json().get("queued") != [job_id]:
        raise RuntimeError(f"viewport: HTTP {answer.status_code} {answer.text[:300]}")
    tasks.preload()
    took = time.perf_counter() - began
    state = PreloadItem.objects.filter(job_id=job_id).values_list("state", flat=True).first()
    on_disk = JobFile.objects.filter(job_id=job_id).values_list("completed_bytes", flat=True).first() or 0
    url = f"{base}/api/v1/stream/{job_id}"
    started = time.perf_counter()
    sample = first_byte(url, started) if what == "byte" else first_frame(url, started)
    note = f"preload {state} in {took:.2f} s, {on_disk / MIB:.1f} MiB downloaded then"
    sample.note = f"{sample.note}; {note}" if sample.note else note
    return sample, job_id


class PlainLibtorrent:
    """The reference for a cold first byte: a bare libtorrent session (this process, TCP only, as the engine)
    adds the .torrent, puts a deadline on piece 0 and waits until it has it."""

    def __init__(self, directory: Path) -> None:
        import libtorrent as lt

        self.lt, self.directory = lt, directory
        self.session = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                                   "enable_upnp": False, "enable_natpmp": False, **LOOPBACK})

    def first_piece(self, swarmed: Swarmed) -> Sample:
        torrent, _ = swarmed.publish()
        params = self.lt.add_torrent_params()
        params.ti = self.lt.torrent_info(torrent)
        params.save_path = str(self.directory)
        started = time.perf_counter()
        handle = self.session.add_torrent(params)
        handle.set_piece_deadline(0, 0)
        while not handle.have_piece(0):
            self.session.wait_for_alert(5)
            self.session.pop_alerts()
            if time.perf_counter() - started > 120:
                raise RuntimeError("plain libtorrent: no piece 0 in 120 s")
        at = time.perf_counter() - started
        self.session.remove_torrent(handle, self.lt.session.delete_files)
        return Sample(at, "piece 0 verified")

    def __enter__(self) -> PlainLibtorrent:
        return self

    def __exit__(self, *exc: object) -> None:
        from downloads.swarm.seeder import quiesce_session

        quiesce_session(self.session)


def show(label: str, figures: Figures, ref: Figures, target: float | None) -> None:
    def one(samples: list[Sample], refs: list[Sample]) -> str:
        if not samples:
            return f"{'-':>11}{'':>9}"
        value, base = median([s.seconds for s in samples]), median([s.seconds for s in refs])
        return f"{value * 1000:>8.0f} ms{value / base:>8.1f}x"

    goal = ""
    if target:
        verdict = {kind: "met" if samples and median([x.seconds for x in samples]) < target else "missed"
                   for kind, samples in (("byte", figures.byte), ("frame", figures.frame))}
        goal = f"< {target:g} s: byte {verdict['byte']}, frame {verdict['frame']}"
    print(f"{label:<30}{one(figures.byte, ref.byte)}{one(figures.frame, ref.frame)}  {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="1080p30")
    parser.add_argument("--faststart", action="store_true", help="moov at the front (default: at the end)")
    parser.add_argument("--seed-rate-kib", type=int, default=1024, help="0: unlimited")
    parser.add_argument("--piece-kib", type=int, default=0, help="0: libtorrent's choice")
    args = parser.parse_args()
    with environment(**ENGINE_ENV) as env, ExitStack() as stack:
        setup_django()
        from django.conf import settings

        from downloads.models import TERMINAL, Job
        from downloads.swarm import Swarm
        from tests.streaming.media import make_video

        work = Path(env["DATA_DIR"]) / "bench"
        (work / "seed").mkdir(parents=True)
        video = make_video(work / "videos", args.preset, faststart=args.faststart)
        size = video.stat().st_size
        user = make_user()
        done = completed_file(user, video, "film.mp4", "video/mp4")
        web = stack.enter_context(daphne(env))
        stack.enter_context(engine(env))
        swarm = stack.enter_context(Swarm(work / "swarm"))
        swarmed = Swarmed(swarm, video, work / "seed", args.seed_rate_kib * 1024, args.piece_kib * 1024 or None)
        ref_server = stack.enter_context(nginx(work, [direct_location("/v/", video.parent)]))
        nginx_url = f"{ref_server.url}/v/{video.name}"
        disk_url = f"{web.url}/api/v1/stream/{done.job_id}/{done.pk}"
        preload = viewport_available()
        plain = stack.enter_context(PlainLibtorrent(work / "plain"))

        rate = f"{args.seed_rate_kib} KiB/s" if args.seed_rate_kib else "unlimited"
        whole = f"{size / (args.seed_rate_kib * 1024):.1f} s" if args.seed_rate_kib else "-"
        print(f"# video {args.preset} {size / MIB:.1f} MiB, moov at the {'front' if args.faststart else 'end'}; "
              f"seeder {rate} (whole file at that rate: {whole}); ENGINE_POLL_INTERVAL "
              f"{settings.ENGINE_POLL_INTERVAL:g} s; STREAM_WINDOW_BYTES {settings.STREAM_WINDOW_BYTES}; "
              f"{args.rounds} rounds")
        print(f"# {load_note()}", flush=True)
        for url in (nginx_url, disk_url):  # warm-up: imports, first queries, ffmpeg's libraries in the page cache
            first_byte(url, time.perf_counter())
            first_frame(url, time.perf_counter())

        names = ["nginx, completed file", "daphne, completed file (disk)", "plain libtorrent, cold",
                 "cold, magnet", "cold, .torrent",
                 "cold, play a magnet", "warm (second play)", "after preload"]
        figures = {name: Figures() for name in names}
        def settle(job_id: int) -> None:
            """Let a measured job finish: no download of ours competes with the next case."""
            wait_for(lambda: Job.objects.filter(pk=job_id, status__in=TERMINAL).exists(),
                     f"job {job_id} to finish", 600, interval=0.2)

        for n in range(args.rounds):
            # The references first: nothing is downloading.
            for label, url in (("nginx, completed file", nginx_url), ("daphne, completed file (disk)", disk_url)):
                figures[label].byte.append(first_byte(url, time.perf_counter()))
                figures[label].frame.append(first_frame(url, time.perf_counter()))
            figures["plain libtorrent, cold"].byte.append(plain.first_piece(swarmed))
            for how, label in (("magnet", "cold, magnet"), ("torrent", "cold, .torrent"),
                               ("play", "cold, play a magnet")):
                sample, job_id = cold(web.url, swarmed, how, "byte")
                figures[label].byte.append(sample)
                settle(job_id)
                sample, job_id = cold(web.url, swarmed, how, "frame")
                figures[label].frame.append(sample)
                if how == "torrent":  # played again at once: warm
                    url = f"{web.url}/api/v1/stream/{job_id}"
                    figures["warm (second play)"].frame.append(first_frame(url, time.perf_counter()))
                    figures["warm (second play)"].byte.append(first_byte(url, time.perf_counter()))
                settle(job_id)
            if preload:
                for what in ("byte", "frame"):
                    sample, job_id = preloaded(web.url, swarmed, what)
                    getattr(figures["after preload"], what).append(sample)
                    settle(job_id)
            print(f"round {n + 1}: " + "; ".join(
                f"{name}: " + ", ".join(f"{kind} {samples[-1].seconds * 1000:.0f} ms"
                                        + (f" ({samples[-1].note})" if samples[-1].note else "")
                                        for kind, samples in (("byte", f.byte), ("frame", f.frame)) if samples)
                for name, f in figures.items() if f.byte), flush=True)

        print("\nmedians (ratio = this / nginx serving the completed file, same run):")
        print(f"{'case':<30}{'1st byte':>11}{'ratio':>9}{'1st frame':>11}{'ratio':>9}  target")
        reference = figures["nginx, completed file"]
        for name in names[:3]:
            show(name, figures[name], reference, None)
        for name in ("cold, magnet", "cold, .torrent", "cold, play a magnet", "warm (second play)"):
            show(name, figures[name], reference, 2.0)
        if preload:
            show("after preload", figures["after preload"], reference, 1.0)
        else:
            print("preload: not available (no POST /api/v1/ui/viewport in this tree)")
        print(f"# torrents: {swarmed.piece_note}; {load_note()}")


if __name__ == "__main__":
    main()
