"""The test server leaves nothing behind: stop() ends the server and the kernels it started (no browser needed)."""

from __future__ import annotations

import json
import urllib.request

import psutil

from .labserver import LabServer, frontend, write_settings


def test_settings_turn_off_news_and_windowing(tmp_path):
    write_settings(tmp_path)
    tracker = json.loads((tmp_path / "@jupyterlab/notebook-extension/tracker.jupyterlab-settings").read_text())
    news = json.loads((tmp_path / "@jupyterlab/apputils-extension/notification.jupyterlab-settings").read_text())
    assert tracker["windowingMode"] == "none" and news["fetchNews"] == "false"


def test_stop_ends_the_server_and_its_kernels(tmp_path):
    server = LabServer(tmp_path, notebooks=[], frontend=frontend())
    try:
        server.start()
        req = urllib.request.Request(f"{server.url}/api/kernels", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 201
        started = psutil.Process(server.proc.pid).children(recursive=True)
        assert started, "the kernel should be a child of the server"
        pid = server.proc.pid
    finally:
        server.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
