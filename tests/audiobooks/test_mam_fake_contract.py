"""Contract test of the MyAnonamouse fake's snatch list (`/json/loadUserDetailsTorrents.php`) and of the client
that reads it. The real shape: research audiobooks.md §4 (the endpoint, its `uid`/`type`/`iteration` query, the
kinds of snatch_summary) and the fields a public MAM client decodes from the real answer (`{"rows": [...],
"success": true}`; ids, counters and flags arriving as numbers or numeric strings; author/narrator/series as
lists of objects). The fake must answer in that shape, and the client must read it (and the odd types the
real site sends) without trusting it."""

from __future__ import annotations

import time

import httpx
import pytest

from indexers.clients import ClientError
from indexers.clients.myanonamouse import MyAnonamouseClient
from tests.fakes.mam_fake import SNATCH_KINDS, UID, FakeMam

NUMBERS = {"category", "id", "comments", "browseFlags", "times_completed", "uploaded", "downloaded", "complete_unix",
           "seedtime", "leechtime", "last_action_unix", "start_unix", "to_go", "seeders", "leechers", "uploaderID"}
FLAGS = {"free", "vip", "OneToOne", "finished", "personalFree"}
TEXTS = {"catname", "catimg", "title", "last_seed", "size", "tags", "complete_date", "last_action", "start_date",
         "uploaderName", "cat", "dl", "to_go_pretty"}
LISTS = {"author", "series", "categories", "fileTypes", "narrator", "fileTypesDisabled"}
OPTIONAL = {"vip_expire": (int, str, type(None)), "STG": (str, type(None)), "percentDone": (int,)}


def fetch(mam: FakeMam, cookie: str, **query) -> httpx.Response:
    return httpx.get(f"{mam.base_url}/json/loadUserDetailsTorrents.php", params=query,
                     headers={"Cookie": f"mam_id={cookie}"}, timeout=10)


def number_like(value) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit())


def test_rows_have_the_real_fields_and_types(mam):
    tid = mam.add("Project Hail Mary")
    mam.snatches["unsat"] = [tid]
    answer = fetch(mam, mam.new_session(), uid=UID, type="unsat", iteration=0, cacheTime=1764496800)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    assert answer.headers["set-cookie"].startswith("mam_id=")  # rotated, as every authenticated answer
    body = answer.json()
    assert set(body) == {"rows", "success"} and body["success"] is True
    [row] = body["rows"]
    assert set(row) == NUMBERS | FLAGS | TEXTS | LISTS | set(OPTIONAL)
    assert all(number_like(row[k]) for k in NUMBERS), {k: row[k] for k in NUMBERS if not number_like(row[k])}
    assert all(row[k] in (0, 1, "0", "1", True, False) for k in FLAGS)
    assert all(isinstance(row[k], str) for k in TEXTS) and all(isinstance(row[k], list) for k in LISTS)
    assert all(isinstance(row[k], types) for k, types in OPTIONAL.items())
    assert all(set(entry) >= {"id", "name"} for k in ("author", "narrator", "fileTypes") for entry in row[k])
    assert row["id"] == str(tid) and row["title"] == "Project Hail Mary"


def test_pages_end_with_empty_rows_and_other_accounts_get_nothing(mam):
    mam.snatch_page_size, mam.snatches["sSat"] = 2, [1, 2, 3]
    pages = [fetch(mam, mam.new_session(), uid=UID, type="sSat", iteration=i).json() for i in range(3)]
    assert [[int(r["id"]) for r in page["rows"]] for page in pages] == [[1, 2], [3], []]
    assert fetch(mam, mam.new_session(), uid=UID + 1, type="unsat").json() == {"rows": [], "success": False}
    assert set(SNATCH_KINDS) >= {"unsat", "seedUnsat", "inactUnsat", "sSat", "inactSat", "seedHnr", "inactHnr"}
    signed_out = fetch(mam, "not-a-session", uid=UID, type="unsat")
    assert signed_out.status_code == 403 and signed_out.text.startswith("Error, you are not signed in")


def test_the_client_reads_the_fakes_rows_and_the_odd_types(mam, settings):
    settings.INDEXERS_ALLOW_INTERNAL = True
    tid = mam.add("Artemis")
    mam.snatches["unsat"] = [tid]
    client = MyAnonamouseClient(url=mam.base_url, secrets={"mam_id": mam.new_session()}, deadline=time.monotonic() + 10,
                                allow_internal=True, account_status={})
    assert client.account()["uid"] == UID
    [row] = client.snatch_page(UID, "unsat", 0)
    assert row == {"id": tid, "title": "Artemis", "seedtime": 3600, "finished": True}
    assert client.snatch_page(UID, "unsat", 1) == []
    assert client.updated_secrets["mam_id"] in mam.cookies  # the rotated cookie is kept


def test_the_client_refuses_an_answer_without_rows(mam, monkeypatch):
    monkeypatch.setattr(FakeMam, "_snatch_list", lambda self, params: {"error": "Nothing"})
    client = MyAnonamouseClient(url=mam.base_url, secrets={"mam_id": mam.new_session()}, deadline=time.monotonic() + 10,
                                allow_internal=True, account_status={})
    with pytest.raises(ClientError) as raised:
        client.snatch_page(UID)
    assert raised.value.code == "bad_response"
