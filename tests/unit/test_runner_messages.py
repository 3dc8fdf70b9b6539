"""What the CLI tells an operator about a failure: the failed loop items' own messages, not just 'items failed'."""

from sensorstack.runner import failure_message


def test_a_looped_failure_names_each_failed_item() -> None:
    result = {
        "msg": "One or more items failed",
        "results": [
            {"item": "common", "failed": False, "msg": "ok"},
            {"item": "influxdb", "failed": True, "msg": "'telegraf_password' is undefined"},
        ],
    }
    assert failure_message(result) == "One or more items failed; influxdb: 'telegraf_password' is undefined"


def test_a_plain_failure_keeps_its_message() -> None:
    assert failure_message({"msg": "boom"}) == "boom"


def test_a_module_that_could_not_run_says_why_from_its_stderr() -> None:
    result = {
        "msg": "Module result deserialization failed: No start of json char found",
        "module_stderr": "Error response from daemon: No such container: sensorstack-lab-edge1\r\n",
        "module_stdout": "",
        "rc": 1,
    }
    assert failure_message(result) == (
        "Module result deserialization failed: No start of json char found: "
        "Error response from daemon: No such container: sensorstack-lab-edge1"
    )
