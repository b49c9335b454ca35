"""Tracker compliance: a private tracker's rules (seeding time, ratio, unsatisfied limit, approved clients) kept
for the jobs grabbed from it. Rules are data (`TrackerRules`, MyAnonamouse shipped as a preset); seeding time is
accrued from the clients' own counters into `SeedingLedger`; grabs wait through a start guard registered with
the spine (`downloads.backends.register_guard`), so downloads never imports this package."""
