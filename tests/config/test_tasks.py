"""config.tasks.enqueue: the one way to hand a task to django-q2 (after commit, with the request id, never
raising), and proof that nothing else calls django-q2's enqueue functions."""

from __future__ import annotations

import ast
import logging

import pytest
from django_q import tasks as django_q_tasks
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from config.logging import request_id_var
from config.tasks import enqueue
from tests.sources import ROOT, project_modules

pytestmark = pytest.mark.django_db


def queued() -> list[dict]:
    """The tasks waiting in the real broker (ORM or Redis, as configured), taken off the queue."""
    broker = get_broker()
    found = []
    while batch := broker.dequeue():
        for ack_id, payload in batch:
            found.append(SignedPackage.loads(payload))
            broker.acknowledge(ack_id)
    return found


@pytest.fixture
def request_id():
    token = request_id_var.set("req-enqueue-test")
    yield "req-enqueue-test"
    request_id_var.reset(token)


def test_enqueue_waits_for_the_commit_and_carries_the_request_id(request_id, django_capture_on_commit_callbacks):
    queued()  # start from an empty queue
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert enqueue("math.floor", 1.5, group="enqueue-test")
        assert queued() == []  # nothing leaves before the commit
    assert len(callbacks) == 1
    [package] = queued()
    assert (package["func"], package["args"], package["group"]) == ("math.floor", (1.5,), "enqueue-test")
    assert package["kwargs"] == {"request_id": request_id}


def test_enqueue_now_sends_at_once(request_id):
    queued()
    assert enqueue("math.floor", 2.5, group="enqueue-test", on_commit=False)
    [package] = queued()
    assert package["func"] == "math.floor" and package["kwargs"] == {"request_id": request_id}


def test_a_broker_failure_is_logged_not_raised(monkeypatch, caplog):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(django_q_tasks, "async_task", broker_down)
    with caplog.at_level(logging.WARNING, logger="config.tasks"):
        assert enqueue("math.floor", 1.5, group="enqueue-test", on_commit=False) is False
    [record] = [r for r in caplog.records if r.name == "config.tasks"]
    assert record.task == "math.floor" and record.exc_info[0] is ConnectionError


# --- nothing else enqueues ---------------------------------------------------------------------------

ENQUEUERS = {"async_task", "async_iter", "async_chain"}  # django-q2's enqueue functions


def enqueue_bypasses(modules) -> list[str]:
    """Every import of django_q.tasks and every use of django-q2's enqueue functions outside config/tasks.py."""
    found = []
    for module, path in modules.items():
        if module == "config.tasks":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            hit = (
                (isinstance(node, ast.ImportFrom) and node.module == "django_q.tasks")
                or (isinstance(node, ast.ImportFrom) and node.module == "django_q"
                    and any(alias.name == "tasks" for alias in node.names))
                or (isinstance(node, ast.Import) and any(alias.name == "django_q.tasks" for alias in node.names))
                or (isinstance(node, ast.Name) and node.id in ENQUEUERS)
                or (isinstance(node, ast.Attribute) and node.attr in ENQUEUERS)
            )
            if hit:
                found.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{node.lineno}")
    return found


def test_only_config_tasks_enqueues():
    bypasses = enqueue_bypasses(project_modules())
    assert not bypasses, "enqueue through config.tasks.enqueue, not django-q2 directly:\n" + "\n".join(bypasses)


def test_the_check_finds_every_way_around(tmp_path):
    sources = {
        "a.py": "from django_q.tasks import async_task\n",
        "b.py": "import django_q.tasks\n",
        "c.py": "from django_q import tasks\n",
        "d.py": "def f(q):\n    q.async_task('x')\n",
        "e.py": "from config.tasks import enqueue\nenqueue('x')\n",
    }
    modules = {}
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
        modules[name.removesuffix(".py")] = tmp_path / name
    assert enqueue_bypasses(modules) == ["a.py:1", "b.py:1", "c.py:1", "d.py:2"]
