"""A qBittorrent Web API v2 adapter (the version qbittorrent-nox 4.5.2 speaks), mounted under /qbittorrent/.

Sonarr, Radarr, Readarr, Lidarr, AudioBookRequest and the `qbittorrent-api` library know how to hand
downloads to qBittorrent; this package lets them hand them to Flotilla instead. A "torrent" is one of the
user's jobs; everything that changes state goes through `downloads.services` (quotas, blocklist, the
acceptable-use gate, audit). Names, types, status codes and plain-text bodies follow qBittorrent exactly
(captured from a real qbittorrent-nox 4.5.2, tested side by side in tests/qbittorrent_api).
"""
