"""Connection options shared by the sensorstack.iot.influxdb_* modules."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Base URL of the InfluxDB 1.x HTTP API, as seen from the host the task runs on.
    type: str
    default: http://localhost:8086
  username:
    description:
      - User to authenticate as (HTTP basic auth). Omit when the server has authentication off.
      - Schema changes need an admin user.
    type: str
    aliases: [login_username]
  password:
    description:
      - Password of O(username). Never logged.
    type: str
    aliases: [login_password]
  validate_certs:
    description:
      - Verify the server's TLS certificate when O(url) is https.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA that signed the server's certificate.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP response.
    type: int
    default: 10
  retries:
    description:
      - How many times to retry a request that could not connect, with a short back-off, before failing.
    type: int
    default: 3
notes:
  - Speaks the HTTP API with Ansible's own HTTP client; nothing but Python is needed on the target.
  - Every statement that changes state is sent with POST, and every statement's error is checked.
"""
