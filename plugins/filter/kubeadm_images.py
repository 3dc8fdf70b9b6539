"""The images a kubeadm deploys, from ``kubeadm config images list --output json`` (the ``output.kubeadm.k8s.io``
``Images`` document).

``sensorstack.iot.kubeadm_images(output)`` maps each image's component name (the last path segment without its
tag: ``pause``, ``kube-apiserver``, ``coredns``) to the whole image reference. The kubernetes_packages role gives
containerd its sandbox image from it, so the pause image always matches the installed kubeadm. A pure function, run
on the controller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

KIND = "Images"


def _component(image: str) -> str:
    """registry.k8s.io/coredns/coredns:v1.12.1 -> coredns; a digest or tag after the name is dropped."""
    name = image.rsplit("/", 1)[-1]
    return name.split("@", 1)[0].split(":", 1)[0]


def kubeadm_images(output: Any) -> dict[str, str]:
    """Component -> image of kubeadm's Images document (JSON text or already parsed)."""
    expected = "kubeadm_images: expected the Images document of `kubeadm config images list --output json`"
    document = output
    if isinstance(output, str):
        try:
            document = json.loads(output)
        except ValueError as error:
            raise AnsibleFilterError(f"{expected}, got {output[:120]!r}") from error
    if not isinstance(document, Mapping) or document.get("kind") != KIND:
        raise AnsibleFilterError(f"{expected}, got {str(output)[:120]!r}")
    images = document.get("images")
    if not isinstance(images, list) or not all(isinstance(image, str) and image for image in images):
        raise AnsibleFilterError(f"{expected}: its images are not a list of image names: {images!r}")
    return {_component(image): image for image in images}


class FilterModule:
    """The images of the installed kubeadm, exposed as sensorstack.iot.kubeadm_images."""

    def filters(self) -> dict[str, Any]:
        return {"kubeadm_images": kubeadm_images}
