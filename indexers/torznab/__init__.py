"""Torznab feeds, spoken by Flotilla (mounted at /torznab/): one per indexer and one across all of a user's
indexers, for Sonarr, Radarr, Readarr, LazyLibrarian. Thin adapters over `indexers.services`."""
