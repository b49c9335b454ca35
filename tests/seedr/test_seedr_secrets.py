"""A Seedr error never carries the access token: httpx quotes the request URL, and Seedr's takes it in the query."""

from __future__ import annotations

import httpx

from seedr.client import SeedrProblem, translate

TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def test_an_http_error_quoting_the_url_loses_the_access_token():
    request = httpx.Request("GET", f"https://www.seedr.cc/api/folder?access_token={TOKEN}")
    response = httpx.Response(502, request=request)
    error = httpx.HTTPStatusError(f"Server error '502 Bad Gateway' for url '{request.url}'", request=request,
                                  response=response)
    problem = translate(error)
    assert TOKEN in str(error), "the premise: httpx puts the token in its message"
    assert TOKEN not in problem.message and TOKEN not in str(problem)
    assert "access_token=***" in problem.message


def test_every_seedr_problem_is_masked():
    assert SeedrProblem(f"see https://www.seedr.cc/dl/{TOKEN}/file.bin").message == "see https://www.seedr.cc/dl/***/file.bin"
