"""The built-in libtorrent engine: Flotilla's default backend, run by `manage.py runengine`.

- `backend`  — the `Backend` registered as "engine" in every process. It never touches libtorrent: the job
               row is the command channel (pause/resume/cancel are status changes the engine sees).
- `claims`   — which jobs an engine takes, and requeueing the jobs of an engine that died.
- `config`   — libtorrent session settings built from Django settings.
- `resume`   — resume data on disk, one file per job, written atomically.
- `runner`   — the long-running loop: one libtorrent session, reconciled with the database twice a second.

Only `config` and `runner` import libtorrent, so the web process and the worker never load it.
"""
