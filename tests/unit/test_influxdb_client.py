"""The InfluxDB client's retries: a read is sent again, a change that may have reached the server is not."""

from __future__ import annotations

from typing import Any
from urllib.error import URLError

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils import influxdb_client
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_client import InfluxDBClient, InfluxDBError


@pytest.mark.parametrize(
    ("change", "failure", "sent"),
    [
        (False, TimeoutError("timed out"), 4),
        (True, TimeoutError("timed out"), 1),
        (True, ConnectionRefusedError(111, "refused"), 4),
    ],
)
def test_a_change_that_timed_out_is_not_sent_again(
    monkeypatch: pytest.MonkeyPatch, change: bool, failure: Exception, sent: int
) -> None:
    requests: list[str] = []

    class FailingRequest:
        def open(self, method: str, url: str, **_options: Any) -> None:
            requests.append(method)
            raise URLError(failure)

    monkeypatch.setattr(influxdb_client, "Request", FailingRequest)
    monkeypatch.setattr(influxdb_client.time, "sleep", lambda _seconds: None)
    client = InfluxDBClient("http://127.0.0.1:8086", retries=3)
    with pytest.raises(InfluxDBError, match=r"cannot reach InfluxDB at http://127\.0\.0\.1:8086"):
        client.query('DROP CONTINUOUS QUERY "q" ON "t"', change=change)
    assert len(requests) == sent


@pytest.mark.parametrize("body", [b"<!doctype html><html>Grafana</html>", b"[1, 2]"])
def test_an_answer_that_is_not_influxdbs_json_is_named(monkeypatch: pytest.MonkeyPatch, body: bytes) -> None:
    class Answer:
        def read(self) -> bytes:
            return body

    class HtmlRequest:
        def open(self, _method: str, _url: str, **_options: Any) -> Answer:
            return Answer()

    monkeypatch.setattr(influxdb_client, "Request", HtmlRequest)
    client = InfluxDBClient("http://127.0.0.1:3000")
    with pytest.raises(InfluxDBError, match=r"http://127\.0\.0\.1:3000/query answered with something other than"):
        client.query("SHOW DATABASES")
