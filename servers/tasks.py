"""django-q2 entry points of the servers app: none of its own any more.

Bringing a finished server download home is the spine's bring-home runner (`downloads.tasks.bring_home`,
which calls `ServerBackend.bring_home`); syncing is the spine's poller.
"""
