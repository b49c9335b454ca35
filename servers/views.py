"""The servers page: your servers with their live status (add, edit, test, delete) and the torrents on all of
them in one list. The page renders the servers on the server; static/js/servers.js does the rest over the API."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from accounts.decorators import policy_required
from servers.models import DEFAULT_PATHS, ServerType, TorrentServer, Transport
from servers.serializers import ServerSerializer

DEFAULT_PORTS = {ServerType.TRANSMISSION: 9091, ServerType.RTORRENT: 5000, ServerType.QBITTORRENT: 8080}


@policy_required
@ensure_csrf_cookie
def server_list(request: HttpRequest) -> HttpResponse:
    servers = TorrentServer.objects.for_user(request.user).select_related("owner")
    rows = ServerSerializer(servers, many=True).data
    config = {
        "apiServers": reverse("server-list"),
        "apiTorrents": reverse("torrent-list"),
        "jobUrl": reverse("downloads:job_detail", args=[0]),
        "defaultPorts": {str(k): v for k, v in DEFAULT_PORTS.items()},
        "typeLabels": dict(ServerType.choices),
        "defaultPaths": {str(k): v for k, v in DEFAULT_PATHS.items()},
        "refreshSeconds": 10,
    }
    return render(request, "servers/list.html", {
        "nav": "servers",
        "servers": rows,
        "types": ServerType.choices,
        "transports": Transport.choices,
        "config": config,
        "servers_json": list(rows),
    })
