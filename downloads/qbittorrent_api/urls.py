"""Mounted at /qbittorrent/ (config/urls.py): the *arr apps' "URL base" for a qBittorrent client."""

from __future__ import annotations

from django.urls import path, re_path

from downloads.qbittorrent_api import views as v

app_name = "qbittorrent"

_API = {
    "auth/login": v.login,
    "auth/logout": v.logout,
    "app/version": v.version,
    "app/webapiVersion": v.webapi_version,
    "app/buildInfo": v.build_info,
    "app/preferences": v.preferences,
    "app/defaultSavePath": v.default_save_path,
    "torrents/info": v.torrents_info,
    "torrents/properties": v.torrent_properties,
    "torrents/files": v.torrent_files,
    "torrents/trackers": v.torrent_trackers,
    "torrents/categories": v.categories,
    "torrents/tags": v.tags,
    "torrents/add": v.add,
    "torrents/delete": v.delete,
    "torrents/pause": v.pause,
    "torrents/stop": v.pause,  # qBittorrent 5's name
    "torrents/resume": v.resume,
    "torrents/start": v.resume,  # qBittorrent 5's name
    "torrents/setForceStart": v.set_force_start,
    "torrents/setCategory": v.set_category,
    "torrents/addTags": v.add_tags,
    "torrents/removeTags": v.remove_tags,
    "torrents/createTags": v.create_tags,
    "torrents/deleteTags": v.delete_tags,
    "torrents/createCategory": v.create_category,
    "torrents/editCategory": v.edit_category,
    "torrents/removeCategories": v.remove_categories,
    "torrents/setShareLimits": v.set_share_limits,
    "torrents/topPrio": v.queue_priority,
    "torrents/bottomPrio": v.queue_priority,
    "torrents/increasePrio": v.queue_priority,
    "torrents/decreasePrio": v.queue_priority,
    "torrents/toggleSequentialDownload": v.toggle_sequential,
    "torrents/toggleFirstLastPiecePrio": v.toggle_first_last,
    "sync/maindata": v.maindata,
    "transfer/info": v.transfer_info,
}

urlpatterns = [
    path("", v.settings_page, name="settings"),
    *[path(f"api/v2/{name}", view, name=name.replace("/", "-")) for name, view in _API.items()],
    re_path(r"^api/(?P<rest>.*)$", v.not_found),  # qBittorrent's plain 404, not the site's page
]
