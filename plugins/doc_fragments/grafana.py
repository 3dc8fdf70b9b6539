"""Connection options shared by the sensorstack.iot.grafana_* modules."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  url_username:
    description:
      - User to authenticate as with HTTP basic auth, for example the admin user. Use it or O(token).
    type: str
    aliases: [grafana_user]
  url_password:
    description:
      - Password of O(url_username). Never logged.
    type: str
    aliases: [grafana_password]
  token:
    description:
      - "A service-account token (or legacy API key), sent in the header C(Authorization: Bearer <token>).
        Never logged."
      - Mutually exclusive with O(url_username) and O(url_password).
    type: str
    aliases: [grafana_api_key]
  validate_certs:
    description:
      - Verify Grafana's TLS certificate when the server URL is https.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA that signed Grafana's certificate.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP response.
    type: int
    default: 10
  org_id:
    description:
      - Organization to act in, sent as the C(X-Grafana-Org-Id) header. Omitted, Grafana uses the user's current
        organization (a token's own organization).
      - The user or token must belong to it, otherwise Grafana answers 401.
    type: int
notes:
  - Speaks Grafana's HTTP API with Ansible's own HTTP client; nothing but Python is needed where the task runs.
  - Connection errors are retried up to three times with a short back-off; a write is retried only when the
    connection was refused, so a change is never sent twice.
  - Check mode sends only GET requests.
"""

    URL = r"""
options:
  url:
    description:
      - Base URL of Grafana (with its sub path when served under one), as seen from the host the task runs on.
    type: str
    required: true
    aliases: [grafana_url]
"""
