"""What each image of the cluster contains, laid out as its upstream Dockerfile lays it out.

Facts taken from upstream (paths, users, entrypoints, file capabilities, labels): Kubernetes' build/server-image and
build/pause, cluster/images/etcd, CoreDNS' Dockerfile, Calico's node/Dockerfile.amd64, cni-plugin/Dockerfile and
kube-controllers/Dockerfile, and the image names of Calico's manifests/calico-vxlan.yaml. Static binaries go on
``scratch`` (pause) or on a small static base (what distroless/static and calico/base give: users, CA bundle, /tmp);
kube-proxy and calico/node on the Debian base with the packet-filter tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sensorstack.bundle.image_names import ImageName
from sensorstack.bundle.oci_layout import Entry, ImageConfig

IMAGE_FILES = Path(__file__).parent / "image_files"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Base = Literal["scratch", "static", "debian"]


@dataclass(frozen=True)
class ImageFile:
    """A binary of the bundle placed in an image: ``binary`` is its name in the binaries mapping."""

    path: str
    binary: str
    mode: int = 0o755
    capabilities: tuple[str, ...] = ()
    optional: bool = False


@dataclass(frozen=True)
class ImageSpec:
    name: ImageName
    base: Base
    files: tuple[ImageFile, ...]
    config: ImageConfig
    # Fixed content besides the binaries: scripts, configuration, directories, links.
    extra: tuple[Entry, ...] = ()
    # Used when an optional file's binary is missing, e.g. calico/kube-controllers without its restart wrapper.
    fallback_config: ImageConfig | None = None

    @property
    def slug(self) -> str:
        return f"{self.name.path.replace('/', '-')}-{self.name.tag}"


def _labels(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _static(path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path, mode=mode, uid=uid, gid=gid, data=data)


def _kubernetes_image(name: ImageName) -> ImageSpec:
    """kube-apiserver, -controller-manager, -scheduler (go-runner base) and kube-proxy (distroless-iptables).

    Upstream puts the binary in /usr/local/bin (build/server-image/Dockerfile); kubeadm's static pods and kube-proxy
    DaemonSet call it by name or that path. kube-apiserver gets cap_net_bind_service like upstream's setcap stage.
    """
    command = name.path.rsplit("/", 1)[-1]
    capabilities = ("cap_net_bind_service",) if command == "kube-apiserver" else ()
    return ImageSpec(
        name=name,
        base="debian" if command == "kube-proxy" else "static",
        files=(ImageFile(f"/usr/local/bin/{command}", command, capabilities=capabilities),),
        config=ImageConfig(entrypoint=(f"/usr/local/bin/{command}",)),
    )


def _etcd_image(name: ImageName) -> ImageSpec:
    """cluster/images/etcd: etcd, etcdctl and etcdutl in /usr/local/bin, the ports it exposes, no entrypoint."""
    return ImageSpec(
        name=name,
        base="static",
        files=(
            ImageFile("/usr/local/bin/etcd", "etcd"),
            ImageFile("/usr/local/bin/etcdctl", "etcdctl", optional=True),
            ImageFile("/usr/local/bin/etcdutl", "etcdutl", optional=True),
        ),
        config=ImageConfig(working_dir="/", exposed_ports=("2379/tcp", "2380/tcp", "4001/tcp", "7001/tcp")),
    )


def _coredns_image(name: ImageName) -> ImageSpec:
    """coredns' Dockerfile: /coredns with cap_net_bind_service, user nonroot (65532), port 53."""
    return ImageSpec(
        name=name,
        base="static",
        files=(ImageFile("/coredns", "coredns", capabilities=("cap_net_bind_service",)),),
        # Numeric: kubelet can check runAsNonRoot against it without reading the image's passwd.
        config=ImageConfig(
            entrypoint=("/coredns",), user="65532:65532", working_dir="/", exposed_ports=("53/tcp", "53/udp")
        ),
    )


def _pause_image(name: ImageName) -> ImageSpec:
    """build/pause/Dockerfile: scratch, /pause, user 65535."""
    return ImageSpec(
        name=name,
        base="scratch",
        files=(ImageFile("/pause", "pause"),),
        config=ImageConfig(entrypoint=("/pause",), user="65535:65535"),
    )


KUBEADM_IMAGES = {
    "kube-apiserver": _kubernetes_image,
    "kube-controller-manager": _kubernetes_image,
    "kube-scheduler": _kubernetes_image,
    "kube-proxy": _kubernetes_image,
    "etcd": _etcd_image,
    "coredns": _coredns_image,
    "pause": _pause_image,
}


def _calico_labels(title: str, description: str, version: str) -> tuple[tuple[str, str], ...]:
    return _labels(
        **{
            "org.opencontainers.image.description": description,
            "org.opencontainers.image.authors": "maintainers@tigera.io",
            "org.opencontainers.image.source": "https://github.com/projectcalico/calico",
            "org.opencontainers.image.title": title,
            "org.opencontainers.image.vendor": "Project Calico",
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.licenses": "Apache-2.0",
        }
    )


# calico/node's runit services for the vxlan and none backends (upstream node/filesystem/etc/service/available).
CALICO_NODE_SERVICES = {
    "complete-startup": "-complete-startup",
    "felix": "-felix",
    "monitor-addresses": "-monitor-addresses",
    "allocate-tunnel-addrs": "-allocate-tunnel-addrs",
    "node-status-reporter": "-status-reporter",
    "cni": "-monitor-token",
}
# Upstream's /etc/calico/felix.cfg: no log file, no metadata server (Felix's defaults would want both).
FELIX_CFG = b"[global]\nMetadataAddr = None\nLogFilePath = None\nLogSeverityFile = None\nLogSeveritySys = None\n"
# CNI plugins calico/cni ships next to its own (cni-plugin/Makefile CN_FILES, plus bandwidth which kubelet's
# traffic shaping uses); `install` copies whatever is in /opt/cni/bin to the node.
CNI_PLUGINS = ("bandwidth", "host-local", "loopback", "portmap", "tuning")


def _calico_node_image(name: ImageName) -> ImageSpec:
    """node/Dockerfile.amd64: calico-node (setuid) in /bin, runit services, CMD start_runit; SVDIR set."""
    services = tuple(
        _static(
            f"/etc/service/available/{service}/run", f"#!/bin/sh\nexec 2>&1\nexec calico-node {flag}\n".encode(), 0o755
        )
        for service, flag in sorted(CALICO_NODE_SERVICES.items())
    )
    start = (IMAGE_FILES / "calico-node/start_runit").read_bytes()
    return ImageSpec(
        name=name,
        base="debian",
        # /bin is a link to usr/bin in Debian's merged /usr: a layer must not replace it with a directory.
        files=(
            ImageFile("/usr/bin/calico-node", "calico-node", mode=0o4755),
            ImageFile("/usr/bin/mountns", "mountns", mode=0o4755, optional=True),
        ),
        extra=(
            _static("/usr/sbin/start_runit", start, 0o755),
            _static("/etc/calico/felix.cfg", FELIX_CFG),
            # /var/run/calico is a hostPath mount; /var/run itself is Debian's link to /run.
            Entry("/var/lib/calico"),
            Entry("/var/log/calico"),
            *services,
        ),
        config=ImageConfig(
            cmd=("start_runit",),
            # calico-node is built without cgo, so its eBPF support is a stub: Felix's start-up clean-up of
            # conntrack BPF maps would hit the stub and crash-loop. Nothing here uses the eBPF dataplane.
            env=(f"PATH={DEFAULT_PATH}", "SVDIR=/etc/service/enabled", "FELIX_DebugSkipCTLBCleanup=true"),
            labels=_calico_labels("Calico node", "Calico node handles networking and policy for Calico", name.tag),
        ),
    )


def _calico_cni_image(name: ImageName) -> ImageSpec:
    """cni-plugin/Dockerfile: everything in /opt/cni/bin (calico-ipam is calico), CMD /opt/cni/bin/install."""
    plugins = tuple(ImageFile(f"/opt/cni/bin/{plugin}", plugin, optional=True) for plugin in CNI_PLUGINS)
    return ImageSpec(
        name=name,
        base="static",
        files=(ImageFile("/opt/cni/bin/install", "install"), ImageFile("/opt/cni/bin/calico", "calico"), *plugins),
        extra=(Entry("/opt/cni/bin/calico-ipam", link_target="calico"),),
        config=ImageConfig(
            cmd=("/opt/cni/bin/install",),
            env=(f"PATH=/opt/cni/bin:{DEFAULT_PATH}",),
            working_dir="/opt/cni/bin",
            labels=_calico_labels(
                "Calico Networking for CNI",
                "Calico Networking for CNI includes a CNI networking plugin and CNI IPAM plugin",
                name.tag,
            ),
        ),
    )


def _calico_kube_controllers_image(name: ImageName) -> ImageSpec:
    """kube-controllers/Dockerfile: binaries in /usr/bin, status and profile files owned by 999, USER 999."""
    labels = _calico_labels(
        "Calico Kubernetes controllers",
        "Calico Kubernetes controllers monitor the Kubernetes API and perform actions based on cluster state",
        name.tag,
    )
    config = ImageConfig(entrypoint=("/usr/bin/wrapper", "/usr/bin/kube-controllers"), user="999", labels=labels)
    return ImageSpec(
        name=name,
        base="static",
        files=(
            ImageFile("/usr/bin/kube-controllers", "kube-controllers"),
            ImageFile("/usr/bin/check-status", "check-status"),
            # Restarts kube-controllers when it exits to reload its configuration (exit code 129).
            ImageFile("/usr/bin/wrapper", "wrapper", optional=True),
        ),
        extra=(
            _static("/status/status.json", b"", uid=999),
            _static("/profiles/mem.pprof", b"", uid=999),
            _static("/profiles/cpu.pprof", b"", uid=999),
        ),
        config=config,
        fallback_config=ImageConfig(entrypoint=("/usr/bin/kube-controllers",), user="999", labels=labels),
    )


CALICO_IMAGES = {
    "node": _calico_node_image,
    "cni": _calico_cni_image,
    "kube-controllers": _calico_kube_controllers_image,
}


def kubeadm_images(images: Mapping[str, str]) -> list[ImageSpec]:
    """The images ``kubeadm config images list`` names ({name: tag}, as components.kubeadm_image_list returns)."""
    specs = []
    for repository, tag in sorted(images.items()):
        name = ImageName.parse(f"{repository}:{tag}")
        builder = KUBEADM_IMAGES.get(name.path.rsplit("/", 1)[-1])
        if builder is None:
            raise ValueError(f"kubeadm names an image sensorstack cannot build: {name}")
        specs.append(builder(name))
    return specs


def calico_images(version: str, registry: str = "quay.io") -> list[ImageSpec]:
    """calico/node, calico/cni and calico/kube-controllers as manifests/calico-vxlan.yaml names them."""
    return [
        builder(ImageName(registry, f"calico/{image}", f"v{version.removeprefix('v')}"))
        for image, builder in CALICO_IMAGES.items()
    ]


def cluster_images(versions: Mapping[str, Any], kubeadm_list: Mapping[str, str]) -> list[ImageSpec]:
    """Every image of the cluster for load_versions()' variables and the built kubeadm's image list."""
    calico = calico_images(
        str(versions["sensorstack_calico_version"]), str(versions.get("sensorstack_calico_image_registry", "quay.io"))
    )
    return kubeadm_images(kubeadm_list) + calico


# distroless/static's users and groups (root, nobody, nonroot) and Go's resolver order (build/nsswitch.conf).
STATIC_PASSWD = (
    b"root:x:0:0:root:/root:/sbin/nologin\n"
    b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
)
STATIC_GROUP = b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
NSSWITCH = b"hosts: files dns\n"


def static_base_entries(ca_certificates: Path) -> list[Entry]:
    """What distroless/static and calico/base give a static binary: users, CA bundle, /tmp."""
    return [
        _static("/etc/passwd", STATIC_PASSWD),
        _static("/etc/group", STATIC_GROUP),
        _static("/etc/nsswitch.conf", NSSWITCH),
        Entry("/etc/ssl/certs/ca-certificates.crt", mode=0o644, source=ca_certificates),
        Entry("/tmp", mode=0o1777),
        Entry("/root", mode=0o700),
        Entry("/home/nonroot", mode=0o700, uid=65532, gid=65532),
    ]
