"""The action of sensorstack.iot.apt_packages: ask dpkg first, run ansible.builtin.apt only when something is missing.

See plugins/modules/apt_packages.py for the documentation.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.sensorstack.iot.plugins.module_utils.apt_packages import (
    ARGUMENT_SPEC,
    InstalledPackage,
    PackageRequest,
    absent,
    dpkg_query_command,
    hold_command,
    parse_dpkg_query,
    parse_requests,
    to_hold,
    unknown_to_apt,
    unsatisfied,
)

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        self._supports_check_mode = True
        result = super().run(tmp, task_vars)
        _, arguments = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        names: list[str] = arguments.pop("name")
        hold_pinned: bool = arguments.pop("hold_pinned")
        try:
            requests = parse_requests(names)
            if requests is None:
                if hold_pinned:
                    result.update(failed=True, msg="hold_pinned needs every name as 'package' or 'package=version'")
                    return result
                result.update(self._apt(names, arguments, task_vars), missing=list(names), absent=[], held=[])
                return result
            installed = self._installed(requests)
            missing = unsatisfied(requests, installed)
            result.update(changed=False, apt_ran=False, missing=missing, absent=absent(requests, installed))
            if missing:
                result.update(self._apt(names, arguments, task_vars))
                if result.get("failed") and self._task.check_mode and unknown_to_apt(str(result.get("msg", ""))):
                    # Check mode refreshes no package lists, so a repository this run adds (or changes) is not read:
                    # what a real run would install from it is the change to report.
                    result.update(failed=False, changed=True, msg=f"would install {', '.join(missing)}")
                    display.warning(
                        f"check mode: apt's package lists do not hold {', '.join(missing)} yet (a repository this run "
                        "adds is read only by a real run); reported as a change"
                    )
                if result.get("failed"):
                    return result
                if hold_pinned and not self._task.check_mode:
                    # apt may drop a hold when it moves a held package (allow_change_held_packages): ask again.
                    installed = self._installed(requests)
            held = to_hold(requests, installed) if hold_pinned else []
            result["held"] = held
            if held:
                result["changed"] = True
                if not self._task.check_mode:
                    marked = self._low_level_execute_command(hold_command(held), sudoable=True)
                    if marked.get("rc") != 0:
                        result.update(failed=True, msg=f"apt-mark hold failed: {marked.get('stderr', '').strip()}")
                        return result
            if not missing:
                result["msg"] = "dpkg has every requested package installed" + (", now held" if held else "")
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _installed(self, requests: list[PackageRequest]) -> dict[str, InstalledPackage]:
        listing = self._low_level_execute_command(dpkg_query_command(requests), sudoable=True)
        return parse_dpkg_query(listing.get("stdout", ""))

    def _apt(self, names: list[str], arguments: dict[str, Any], task_vars: dict[str, Any] | None) -> dict[str, Any]:
        apt_arguments = {"name": names, "state": "present", **arguments}
        ran = self._execute_module(module_name="ansible.legacy.apt", module_args=apt_arguments, task_vars=task_vars)
        return {**ran, "apt_ran": True}
