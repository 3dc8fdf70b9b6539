"""kubeadm_images: the component -> image map the kubernetes_packages role reads containerd's pause image from."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.kubeadm_images import kubeadm_images

# As kubeadm 1.35 prints it (`kubeadm config images list --output json --kubernetes-version v1.35.4`).
LISTING = {
    "kind": "Images",
    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
    "images": [
        "registry.k8s.io/kube-apiserver:v1.35.4",
        "registry.k8s.io/kube-controller-manager:v1.35.4",
        "registry.k8s.io/kube-scheduler:v1.35.4",
        "registry.k8s.io/kube-proxy:v1.35.4",
        "registry.k8s.io/coredns/coredns:v1.13.1",
        "registry.k8s.io/pause:3.10.1",
        "registry.k8s.io/etcd:3.6.6-0",
    ],
}


def test_each_component_names_its_whole_image() -> None:
    images = kubeadm_images(json.dumps(LISTING))
    assert images["pause"] == "registry.k8s.io/pause:3.10.1"
    assert images["coredns"] == "registry.k8s.io/coredns/coredns:v1.13.1"
    assert images["etcd"] == "registry.k8s.io/etcd:3.6.6-0"
    assert len(images) == 7


def test_a_mirror_registry_with_a_port_and_a_digest_keeps_the_component_name() -> None:
    listing = {"kind": "Images", "images": ["mirror.lab:5000/k8s/pause@sha256:" + "0" * 64]}
    assert list(kubeadm_images(listing)) == ["pause"]


@pytest.mark.parametrize(
    "output",
    ["stand-in kubeadm\n", "", json.dumps({"kind": "Other", "images": []}), json.dumps({"kind": "Images"})],
)
def test_anything_but_the_images_document_is_refused_with_what_was_read(output: str) -> None:
    with pytest.raises(AnsibleFilterError, match="kubeadm config images list"):
        kubeadm_images(output)
