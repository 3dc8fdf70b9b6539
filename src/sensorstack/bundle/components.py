"""One build recipe per component of the cluster, all from sources the Go module proxy serves.

Versions come from ``roles/sensorstack/defaults/main/versions.yml``; etcd, CoreDNS and pause are not pinned there:
they are what the built kubeadm names (``kubeadm config images list``). Each build is cached under
``<cache>/build/<component>-<digest>/`` (see :mod:`sensorstack.bundle.gobuild`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorstack.bundle.gobuild import (
    BuiltComponent,
    GoRecipe,
    ModuleInfo,
    Produced,
    Replace,
    VersionCheck,
    build_go,
    cached_build,
    download_module,
    log,
    parse_replaces,
    verify_output,
)

# --- Kubernetes -----------------------------------------------------------------------------------------------

KUBERNETES_MODULE = "k8s.io/kubernetes"
KUBERNETES_COMMANDS = (
    "kubeadm",
    "kubelet",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
)
# The tags Kubernetes' own release build uses (hack/lib/golang.sh).
KUBERNETES_TAGS = ("selinux", "notest", "grpcnotrace")
KUBERNETES_VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
STAGING_PREFIX = "./staging/src/"


def staging_replaces(go_mod: str, version: str) -> tuple[Replace, ...]:
    """k8s.io/kubernetes' staging modules (``k8s.io/X => ./staging/src/k8s.io/X``) mapped to their published v0.Y.Z.

    The module zip does not carry ./staging, so a build outside the Kubernetes tree needs these replaces.
    """
    _, minor, patch = _release(version)
    replaces = tuple(
        Replace(replace.old, replace.old, f"v0.{minor}.{patch}")
        for replace in parse_replaces(go_mod)
        if replace.is_local and replace.new.startswith(STAGING_PREFIX)
    )
    if not replaces:
        raise ValueError(f"{KUBERNETES_MODULE} v{version}: its go.mod names no staging modules")
    return replaces


def kubernetes_ldflags(version: str, build_date: str) -> tuple[str, ...]:
    """-s -w and the version stamp Kubernetes' release build sets; kubeadm picks its image tags from it."""
    major, minor, _ = _release(version)
    flags = ["-s", "-w"]
    for package in KUBERNETES_VERSION_PACKAGES:
        for variable, value in (
            ("gitVersion", f"v{version}"),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
            ("buildDate", build_date),
        ):
            flags += ["-X", f"{package}.{variable}={value}"]
    return tuple(flags)


def kubernetes_recipe(version: str, module: ModuleInfo) -> GoRecipe:
    """All seven Kubernetes commands in one go build, so they share the compiled packages."""
    return GoRecipe(
        name="kubernetes",
        version=version,
        packages=tuple(f"{KUBERNETES_MODULE}/cmd/{command}" for command in KUBERNETES_COMMANDS),
        requires=((KUBERNETES_MODULE, f"v{version}"),),
        replaces=staging_replaces(module.go_mod, version),
        tags=KUBERNETES_TAGS,
        ldflags=kubernetes_ldflags(version, module.time),
        checks=(
            VersionCheck("kubeadm", ("version", "-o", "short"), f"v{version}"),
            VersionCheck("kubectl", ("version", "--client"), f"Client Version: v{version}"),
            VersionCheck("kubelet", ("--version",), f"Kubernetes v{version}"),
            VersionCheck("kube-apiserver", ("--version",), f"Kubernetes v{version}"),
        ),
    )


def build_kubernetes(version: str, cache_root: Path) -> BuiltComponent:
    module = download_module(KUBERNETES_MODULE, f"v{version}")
    return build_go(kubernetes_recipe(version, module), cache_root)


# --- the images kubeadm asks for ------------------------------------------------------------------------------


def parse_image_list(text: str) -> dict[str, str]:
    """``kubeadm config images list`` output -> {image name: tag}, e.g. registry.k8s.io/etcd -> 3.6.6-0."""
    images: dict[str, str] = {}
    for line in text.splitlines():
        reference = line.strip()
        if not reference:
            continue
        name, separator, tag = reference.rpartition(":")
        if not separator or "/" in tag or not name or " " in reference:
            raise ValueError(f"not an image reference: {reference!r}")
        images[name] = tag
    if not images:
        raise ValueError("kubeadm listed no images")
    return images


def kubeadm_image_list(kubeadm: Path, version: str) -> dict[str, str]:
    """The images (name -> tag) the given kubeadm uses for Kubernetes version (``1.35.4`` or ``v1.35.4``)."""
    command = [str(kubeadm), "config", "images", "list", "--kubernetes-version", f"v{version.removeprefix('v')}"]
    answer = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if answer.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {answer.stderr.strip()}")
    return parse_image_list(answer.stdout)


@dataclass(frozen=True)
class CompanionVersions:
    """The etcd, CoreDNS and pause releases a Kubernetes version runs with, as its kubeadm names them."""

    etcd: str
    coredns: str
    pause: str


def companion_versions(images: Mapping[str, str]) -> CompanionVersions:
    """Release versions from kubeadm's image tags: etcd ``3.6.6-0`` -> 3.6.6, coredns ``v1.13.1`` -> 1.13.1."""
    by_name = {name.rsplit("/", 1)[-1]: tag for name, tag in images.items()}
    missing = {"etcd", "coredns", "pause"} - by_name.keys()
    if missing:
        raise ValueError(f"kubeadm's image list names no {', '.join(sorted(missing))} image: {sorted(images)}")
    etcd = re.sub(r"-\d+$", "", by_name["etcd"])  # -0: the image's own revision of that etcd release
    return CompanionVersions(
        etcd=etcd.removeprefix("v"), coredns=by_name["coredns"].removeprefix("v"), pause=by_name["pause"]
    )


# --- etcd, CoreDNS, crictl, CNI plugins -----------------------------------------------------------------------

ETCD_MODULES = ("go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/etcdctl/v3", "go.etcd.io/etcd/etcdutl/v3")


def etcd_recipe(version: str, commit: str) -> GoRecipe:
    """etcd, etcdctl and etcdutl: each module's root package is its command (server/v3 is etcd)."""
    return GoRecipe(
        name="etcd",
        version=version,
        packages=ETCD_MODULES,
        requires=tuple((module, f"v{version}") for module in ETCD_MODULES),
        binary_names=(("go.etcd.io/etcd/server/v3", "etcd"),),
        ldflags=("-s", "-w", *commit_stamp("go.etcd.io/etcd/api/v3/version.GitSHA", commit)),
        checks=(
            VersionCheck("etcd", ("--version",), f"etcd Version: {version}"),
            VersionCheck("etcdctl", ("version",), f"etcdctl version: {version}"),
            VersionCheck("etcdutl", ("version",), f"etcdutl version: {version}"),
            *([VersionCheck("etcd", ("--version",), f"Git SHA: {commit[:7]}")] if commit else []),
        ),
    )


def commit_stamp(variable: str, commit: str) -> tuple[str, ...]:
    """-X variable=<short commit>, or nothing when the proxy did not say which commit it served (no Origin)."""
    return ("-X", f"{variable}={commit[:7]}") if commit else ()


def build_etcd(version: str, cache_root: Path) -> BuiltComponent:
    # The proxy records the tag's commit for some of the three modules only; they share one commit.
    modules = [download_module(module, f"v{version}") for module in ETCD_MODULES]
    commit = next((module.commit for module in modules if module.commit), "")
    return build_go(etcd_recipe(version, commit), cache_root)


COREDNS_MODULE = "github.com/coredns/coredns"


def coredns_recipe(version: str, commit: str) -> GoRecipe:
    return GoRecipe(
        name="coredns",
        version=version,
        packages=(COREDNS_MODULE,),
        requires=((COREDNS_MODULE, f"v{version}"),),
        ldflags=("-s", "-w", *commit_stamp(f"{COREDNS_MODULE}/coremain.GitCommit", commit)),
        checks=(
            VersionCheck("coredns", ("-version",), f"CoreDNS-{version}"),
            *([VersionCheck("coredns", ("-version",), commit[:7])] if commit else []),
        ),
    )


def build_coredns(version: str, cache_root: Path) -> BuiltComponent:
    module = download_module(COREDNS_MODULE, f"v{version}")
    return build_go(coredns_recipe(version, module.commit), cache_root)


CRI_TOOLS_MODULE = "sigs.k8s.io/cri-tools"  # not github.com/kubernetes-sigs/cri-tools: the proxy refuses that path


def cri_tools_recipe(version: str) -> GoRecipe:
    return GoRecipe(
        name="cri-tools",
        version=version,
        packages=(f"{CRI_TOOLS_MODULE}/cmd/crictl",),
        requires=((CRI_TOOLS_MODULE, f"v{version}"),),
        ldflags=("-s", "-w", "-X", f"{CRI_TOOLS_MODULE}/pkg/version.Version=v{version}"),
        checks=(VersionCheck("crictl", ("--version",), f"crictl version v{version}"),),
    )


def build_cri_tools(version: str, cache_root: Path) -> BuiltComponent:
    return build_go(cri_tools_recipe(version), cache_root)


CNI_PLUGINS_MODULE = "github.com/containernetworking/plugins"
CNI_PLUGIN_KINDS = ("main", "ipam", "meta")


def cni_plugin_packages(plugin_dirs: list[str]) -> tuple[str, ...]:
    """The plugins upstream's build_linux.sh builds (plugins/{main,ipam,meta}/*, not windows) from relative dirs."""
    packages = []
    for relative in sorted(plugin_dirs):
        kind, _, name = relative.removeprefix("plugins/").partition("/")
        if kind in CNI_PLUGIN_KINDS and name and "/" not in name and name != "windows":
            packages.append(f"{CNI_PLUGINS_MODULE}/plugins/{kind}/{name}")
    return tuple(packages)


def cni_plugins_recipe(version: str, plugin_dirs: list[str]) -> GoRecipe:
    """Every Linux plugin of the release tarball (what the kubernetes-cni package ships)."""
    return GoRecipe(
        name="cni-plugins",
        version=version,
        packages=cni_plugin_packages(plugin_dirs),
        requires=((CNI_PLUGINS_MODULE, f"v{version}"),),
        ldflags=("-s", "-w", "-X", f"{CNI_PLUGINS_MODULE}/pkg/utils/buildversion.BuildVersion=v{version}"),
        checks=(VersionCheck("bridge", (), f"v{version}"), VersionCheck("portmap", (), f"v{version}")),
    )


def build_cni_plugins(version: str, cache_root: Path) -> BuiltComponent:
    module = download_module(CNI_PLUGINS_MODULE, f"v{version}")
    plugin_dirs = [
        str(path.relative_to(module.directory))
        for kind in CNI_PLUGIN_KINDS
        for path in (module.directory / "plugins" / kind).iterdir()
        if path.is_dir()
    ]
    return build_go(cni_plugins_recipe(version, plugin_dirs), cache_root)


# --- pause ----------------------------------------------------------------------------------------------------

PAUSE_SOURCE = "build/pause/linux/pause.c"
PAUSE_MAKEFILE = "build/pause/Makefile"
PAUSE_CFLAGS = ("-Os", "-Wall", "-Werror", "-static")


def pause_makefile_tag(makefile: str) -> str:
    """The release (``TAG ?= 3.10.1``) that Kubernetes' build/pause/Makefile builds."""
    match = re.search(r"^TAG\s*\?=\s*(\S+)\s*$", makefile, re.MULTILINE)
    if match is None:
        raise ValueError(f"{PAUSE_MAKEFILE}: no TAG")
    return match.group(1)


def pause_version_define(pause_version: str, kubernetes_version: str) -> str:
    """Kubernetes stamps ``-DVERSION=v$(TAG)-$(REV)``, REV being ``git describe --contains`` of the tree: the tag."""
    return f"v{pause_version}-v{kubernetes_version}"


def build_pause(pause_version: str, kubernetes_version: str, cache_root: Path) -> BuiltComponent:
    """pause from the k8s.io/kubernetes module zip, compiled static with the host's gcc as upstream does."""
    module = download_module(KUBERNETES_MODULE, f"v{kubernetes_version}")
    tag = pause_makefile_tag((module.directory / PAUSE_MAKEFILE).read_text())
    if tag != pause_version:
        raise RuntimeError(f"kubeadm asks for pause {pause_version}, Kubernetes v{kubernetes_version} carries {tag}")
    source = module.directory / PAUSE_SOURCE
    gcc, strip = shutil.which("gcc"), shutil.which("strip")
    if gcc is None or strip is None:
        raise RuntimeError("building pause needs gcc and a static libc: apt-get install gcc libc6-dev")
    compiler = subprocess.run([gcc, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    define = pause_version_define(pause_version, kubernetes_version)
    flags = [*PAUSE_CFLAGS, f"-DVERSION={define}"]
    recipe: dict[str, Any] = {
        "builder": "gcc-static/1",
        "source": f"{KUBERNETES_MODULE}@v{kubernetes_version}/{PAUSE_SOURCE}",
        "source_text": source.read_text(),
        "cflags": flags,
        "compiler": compiler,
    }

    def produce(folder: Path) -> Produced:
        binary = folder / "bin" / "pause"
        binary.parent.mkdir()
        started = time.monotonic()
        subprocess.run([gcc, *flags, "-o", str(binary), str(source)], check=True)
        subprocess.run([strip, str(binary)], check=True)
        verify_output(binary, ("-v",), f"pause.c {define}")
        return Produced({"pause": binary}, {"compile_seconds": round(time.monotonic() - started, 1)})

    return cached_build(cache_root, "pause", pause_version, recipe, produce)


# --- Calico ---------------------------------------------------------------------------------------------------

CALICO_MODULE = "github.com/projectcalico/calico"
CALICO_API_MODULE = "github.com/projectcalico/api"
CALICO_STD_MODULE = f"{CALICO_MODULE}/lib/std"
CALICO_HTTPMACHINERY_MODULE = f"{CALICO_MODULE}/lib/httpmachinery"
# The checksum database does not know Calico's pseudo-versions; go.sum lines below pin what was fetched first.
CALICO_GONOSUMDB = "github.com/projectcalico,github.com/tigera"
GO_SUMS = Path(__file__).with_name("gomod")


@dataclass(frozen=True)
class CalicoSource:
    """A Calico release as the proxy serves it: the monorepo's module path has no /v3, so tags are not versions."""

    commit_version: str  # the release tag's commit, as a pseudo-version of github.com/projectcalico/calico
    api_version: str  # github.com/projectcalico/api at the commit the monorepo's ./api was published from


CALICO_SOURCES: dict[str, CalicoSource] = {
    "3.31.0": CalicoSource(
        commit_version="v0.0.0-20251021213802-b1f3c43f8437",
        api_version="v0.0.0-20251022175904-f2ab03771208",
    ),
}

# package -> binary name; the comment says which image runs it and how (manifests/calico-vxlan.yaml).
CALICO_COMMANDS = (
    # calico/cni: the CNI plugin, installed by `install`; calico-ipam is the same program under another name.
    (f"{CALICO_MODULE}/cni-plugin/cmd/calico", "calico"),
    (f"{CALICO_MODULE}/cni-plugin/cmd/install", "install"),
    # calico/node: `calico-node -felix`, `-init -best-effort`, `-felix-ready`/`-felix-live` probes; mountns for -init.
    (f"{CALICO_MODULE}/node/cmd/calico-node", "calico-node"),
    (f"{CALICO_MODULE}/node/cmd/mountns", "mountns"),
    # calico/kube-controllers: entrypoint `wrapper kube-controllers`, probes `check-status -l` / `-r`.
    (f"{CALICO_MODULE}/kube-controllers/cmd/kube-controllers", "kube-controllers"),
    (f"{CALICO_MODULE}/kube-controllers/cmd/check-status", "check-status"),
    (f"{CALICO_MODULE}/kube-controllers/cmd/wrapper", "wrapper"),
)


def calico_source(version: str) -> CalicoSource:
    try:
        return CALICO_SOURCES[version]
    except KeyError:
        known = ", ".join(sorted(CALICO_SOURCES))
        raise ValueError(
            f"no source facts for Calico {version} (known: {known}); add its commit's pseudo-version to CALICO_SOURCES"
        ) from None


def calico_go_sum(version: str) -> str:
    """Checksums recorded at the first download (gomod/calico-<version>.go.sum): GONOSUMDB leaves trust to us."""
    return (GO_SUMS / f"calico-{version}.go.sum").read_text()


def calico_replaces(go_mod: str, source: CalicoSource) -> tuple[Replace, ...]:
    """Calico's own replaces for a build outside its tree: nested modules from the proxy, the rest copied."""
    nested = {
        CALICO_API_MODULE: Replace(CALICO_API_MODULE, CALICO_API_MODULE, source.api_version),
        CALICO_STD_MODULE: Replace(CALICO_STD_MODULE, CALICO_STD_MODULE, source.commit_version),
    }
    replaces = []
    for replace in parse_replaces(go_mod):
        if not replace.is_local:
            replaces.append(replace)
        elif replace.old in nested:
            replaces.append(nested[replace.old])
        elif replace.old != CALICO_HTTPMACHINERY_MODULE:  # stubbed: only whisker-backend imports it
            raise ValueError(f"Calico's go.mod replaces {replace.old} with {replace.new}: no published source known")
    return tuple(replaces)


def calico_ldflags(version: str, build_date: str, commit: str) -> tuple[str, ...]:
    """The buildinfo stamp of Calico's lib.Makefile, plus main.VERSION that install and check-status print."""
    stamp = {
        f"{CALICO_MODULE}/pkg/buildinfo.Version": f"v{version}",
        f"{CALICO_MODULE}/pkg/buildinfo.BuildDate": build_date,
        f"{CALICO_MODULE}/pkg/buildinfo.GitRevision": commit,
        "main.VERSION": f"v{version}",
    }
    flags = ["-s", "-w"]
    for variable, value in stamp.items():
        flags += ["-X", f"{variable}={value}"]
    return tuple(flags)


def calico_recipe(version: str, module: ModuleInfo, source: CalicoSource) -> GoRecipe:
    return GoRecipe(
        name="calico",
        version=version,
        packages=tuple(package for package, _ in CALICO_COMMANDS),
        requires=((CALICO_MODULE, source.commit_version),),
        replaces=calico_replaces(module.go_mod, source),
        binary_names=CALICO_COMMANDS,
        aliases=(("calico-ipam", "calico"),),
        ldflags=calico_ldflags(version, module.time, module.commit or source.commit_version.rsplit("-", 1)[-1]),
        env=(("CGO_ENABLED", "0"), ("GONOSUMDB", CALICO_GONOSUMDB)),
        stub_modules=(CALICO_HTTPMACHINERY_MODULE,),
        go_sum=calico_go_sum(version),
        checks=(
            VersionCheck("calico-node", ("-v",), f"v{version}"),
            VersionCheck("calico", ("-v",), f"v{version}"),
            VersionCheck("calico-ipam", ("-v",), f"v{version}"),
            VersionCheck("kube-controllers", ("-version",), f"v{version}"),
            VersionCheck("check-status", ("-v",), f"v{version}"),
        ),
    )


def build_calico(version: str, cache_root: Path) -> BuiltComponent:
    source = calico_source(version)
    module = download_module(CALICO_MODULE, source.commit_version, {"GONOSUMDB": CALICO_GONOSUMDB})
    return build_go(calico_recipe(version, module, source), cache_root)


# --- everything -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubernetesRelease:
    """Kubernetes at one version: its build, the images its kubeadm names, and the builds of those it brings."""

    version: str
    images: Mapping[str, str]  # kubeadm config images list: name -> tag
    components: Mapping[str, BuiltComponent]  # kubernetes, and pause, etcd, coredns unless shared


def own_images(images: Mapping[str, str], shared: Mapping[str, str]) -> dict[str, str]:
    """The images (name -> tag) that shared does not already name at the same tag."""
    return {name: tag for name, tag in images.items() if shared.get(name) != tag}


def build_kubernetes_release(
    version: str, cache_root: Path, shared_images: Mapping[str, str] | None = None
) -> KubernetesRelease:
    """Kubernetes at version, then the pause, etcd and CoreDNS its kubeadm names, except those whose image
    shared_images (another release's image list) already names at the same tag: that image serves both."""
    version = version.removeprefix("v")
    built = {"kubernetes": build_kubernetes(version, cache_root)}
    images = kubeadm_image_list(built["kubernetes"].binaries["kubeadm"], version)
    companions = companion_versions(images)
    log(f"kubeadm v{version} names etcd {companions.etcd}, CoreDNS {companions.coredns}, pause {companions.pause}")
    needed = {name.rsplit("/", 1)[-1] for name in own_images(images, shared_images or {})}
    if "pause" in needed:
        built["pause"] = build_pause(companions.pause, version, cache_root)
    if "etcd" in needed:
        built["etcd"] = build_etcd(companions.etcd, cache_root)
    if "coredns" in needed:
        built["coredns"] = build_coredns(companions.coredns, cache_root)
    return KubernetesRelease(version, images, built)


def build_all(versions: Mapping[str, Any], cache_root: Path) -> dict[str, BuiltComponent]:
    """Every component from source, one build at a time (each is CPU-bound); versions as load_versions() gives."""
    started = time.monotonic()
    built = dict(build_kubernetes_release(str(versions["sensorstack_kubernetes_version"]), cache_root).components)
    built["cri-tools"] = build_cri_tools(str(versions["sensorstack_cri_tools_version"]), cache_root)
    built["cni-plugins"] = build_cni_plugins(str(versions["sensorstack_cni_plugins_version"]), cache_root)
    built["calico"] = build_calico(str(versions["sensorstack_calico_version"]), cache_root)
    log(f"all components ready in {time.monotonic() - started:.0f} s")
    return built


def _release(version: str) -> tuple[str, str, str]:
    parts = version.removeprefix("v").split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ValueError(f"expected a release like 1.35.4, got {version!r}")
    return parts[0], parts[1], parts[2]
