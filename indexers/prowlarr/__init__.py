"""Prowlarr's API v1, spoken by Flotilla (mounted at /prowlarr/): AudioBookRequest and other Prowlarr clients
use Flotilla as their indexer manager, unchanged. Thin adapters over `indexers.services`."""
