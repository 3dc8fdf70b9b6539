"""A Grafana HTTP API test double: the endpoints the sensorstack.iot Grafana modules use, with Grafana's behaviour.

No Grafana server can be installed where these tests run, so the modules are tested against this double by default
(and against a real Grafana when ``GRAFANA_URL`` is set; see ``docs/grafana-testing.md``). The double keeps its state in
memory (``GrafanaState.snapshot`` for a file, as the lab's stand-in image does), serves it over real HTTP on
loopback and records every request, so a test can assert that check mode sent no write. It is test infrastructure
and never shipped (``galaxy.yml`` ignores ``tests/``).
"""

from .client import JsonApi, basic_auth
from .proxy import InterleavingProxy, ProxiedRequest
from .server import GrafanaDouble, RecordedRequest

__all__ = ["GrafanaDouble", "InterleavingProxy", "JsonApi", "ProxiedRequest", "RecordedRequest", "basic_auth"]
