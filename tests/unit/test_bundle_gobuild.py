"""The source builds' recipes: wrapper go.mod, version stamps, image parsing, cache keys (no Go needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorstack.bundle import components
from sensorstack.bundle.gobuild import (
    GoRecipe,
    ModuleInfo,
    Produced,
    Replace,
    VersionCheck,
    cached_build,
    default_binary_name,
    is_compiled_package_line,
    parse_replaces,
    recipe_digest,
    tools_go,
    wrapper_go_mod,
)

KUBERNETES_GO_MOD = """module k8s.io/kubernetes

go 1.25.0

require (
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0 // indirect
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go // the client
	k8s.io/kubectl => ./staging/src/k8s.io/kubectl
)

replace github.com/example/fork v1.0.0 => github.com/example/fork v1.0.1
"""

CALICO_GO_MOD = """module github.com/projectcalico/calico

replace (
	github.com/projectcalico/api => ./api
	github.com/projectcalico/calico/lib/httpmachinery => ./lib/httpmachinery
	github.com/projectcalico/calico/lib/std => ./lib/std

	// Newer versions set the file mode on logs to 0600.
	gopkg.in/natefinch/lumberjack.v2 => gopkg.in/natefinch/lumberjack.v2 v2.0.0
	k8s.io/api => k8s.io/api v0.33.5
)
"""

KUBEADM_IMAGES = """registry.k8s.io/kube-apiserver:v1.35.4
registry.k8s.io/kube-controller-manager:v1.35.4
registry.k8s.io/kube-scheduler:v1.35.4
registry.k8s.io/kube-proxy:v1.35.4
registry.k8s.io/coredns/coredns:v1.13.1
registry.k8s.io/pause:3.10.1
registry.k8s.io/etcd:3.6.6-0
"""


def module(go_mod: str, time: str = "2026-04-15T18:01:22Z", commit: str = "") -> ModuleInfo:
    return ModuleInfo("example.org/m", "v1.0.0", Path("/nonexistent"), go_mod, time, commit)


def test_parse_replaces_reads_blocks_single_lines_comments_and_old_versions():
    replaces = parse_replaces(KUBERNETES_GO_MOD)
    assert replaces[0] == Replace("k8s.io/api", "./staging/src/k8s.io/api")
    assert replaces[1] == Replace("k8s.io/client-go", "./staging/src/k8s.io/client-go")
    assert replaces[-1] == Replace("github.com/example/fork", "github.com/example/fork", "v1.0.1", "v1.0.0")
    assert replaces[-1].directive() == "github.com/example/fork v1.0.0 => github.com/example/fork v1.0.1"
    assert len(replaces) == 4


def test_staging_modules_are_replaced_by_their_published_release_and_nothing_else():
    replaces = components.staging_replaces(KUBERNETES_GO_MOD, "1.35.4")
    assert [replace.directive() for replace in replaces] == [
        "k8s.io/api => k8s.io/api v0.35.4",
        "k8s.io/client-go => k8s.io/client-go v0.35.4",
        "k8s.io/kubectl => k8s.io/kubectl v0.35.4",
    ]


def test_a_go_mod_without_staging_modules_is_refused():
    with pytest.raises(ValueError, match="staging"):
        components.staging_replaces("module k8s.io/kubernetes\n", "1.35.4")


def test_kubernetes_is_stamped_for_component_base_and_client_go():
    flags = " ".join(components.kubernetes_ldflags("1.35.4", "2026-04-15T18:01:22Z"))
    assert flags.startswith("-s -w ")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.35.4" in flags
        assert f"-X {package}.gitMajor=1 -X {package}.gitMinor=35" in flags
        assert f"-X {package}.gitTreeState=clean -X {package}.buildDate=2026-04-15T18:01:22Z" in flags


def test_kubernetes_builds_all_seven_commands_in_one_recipe_with_the_release_tags():
    recipe = components.kubernetes_recipe("1.35.4", module(KUBERNETES_GO_MOD))
    assert {recipe.binary_name(package) for package in recipe.packages} == set(components.KUBERNETES_COMMANDS)
    assert recipe.requires == (("k8s.io/kubernetes", "v1.35.4"),)
    assert recipe.build_flags()[:3] == ["-trimpath", "-tags", "selinux,notest,grpcnotrace"]
    assert dict(recipe.env)["CGO_ENABLED"] == "0"
    assert recipe.go_directive == "1.25.0"
    assert recipe.wrapper_module_path == "sensorstack.local/kubernetes-build"


def test_wrapper_go_mod_requires_and_replaces():
    text = wrapper_go_mod(
        "sensorstack.local/x-build",
        "1.25.0",
        [("k8s.io/kubernetes", "v1.35.4")],
        [Replace("k8s.io/b", "k8s.io/b", "v0.35.4"), Replace("k8s.io/a", "./stub/a")],
    )
    assert text.splitlines()[:5] == [
        "module sensorstack.local/x-build",
        "",
        "go 1.25.0",
        "",
        "require k8s.io/kubernetes v1.35.4",
    ]
    assert "replace (\n\tk8s.io/a => ./stub/a\n\tk8s.io/b => k8s.io/b v0.35.4\n)\n" in text
    assert parse_replaces(text) == [Replace("k8s.io/a", "./stub/a"), Replace("k8s.io/b", "k8s.io/b", "v0.35.4")]


def test_tools_file_is_excluded_from_builds_but_imports_every_package():
    text = tools_go(["k8s.io/kubernetes/cmd/kubeadm", "k8s.io/kubernetes/cmd/kubelet"])
    assert text.startswith("//go:build tools\n")
    assert '\t_ "k8s.io/kubernetes/cmd/kubeadm"\n\t_ "k8s.io/kubernetes/cmd/kubelet"\n' in text


def test_binary_names_skip_the_major_version_suffix_and_can_be_renamed():
    assert default_binary_name("go.etcd.io/etcd/etcdctl/v3") == "etcdctl"
    assert default_binary_name("github.com/coredns/coredns") == "coredns"
    assert default_binary_name("example.org/v2") == "example.org"
    recipe = components.etcd_recipe("3.6.6", "d2809cf0019f84c2")
    assert sorted(recipe.binary_name(package) for package in recipe.packages) == ["etcd", "etcdctl", "etcdutl"]
    assert "-X go.etcd.io/etcd/api/v3/version.GitSHA=d2809cf" in " ".join(recipe.ldflags)


def test_an_unknown_commit_leaves_upstreams_placeholder_instead_of_an_empty_stamp():
    assert components.etcd_recipe("3.6.6", "").ldflags == ("-s", "-w")
    assert "GitCommit" not in " ".join(components.coredns_recipe("1.13.1", "").ldflags)


def test_kubeadm_image_list_is_parsed_to_names_and_tags():
    images = components.parse_image_list(KUBEADM_IMAGES)
    assert images["registry.k8s.io/etcd"] == "3.6.6-0"
    assert images["registry.k8s.io/coredns/coredns"] == "v1.13.1"
    assert images["registry.k8s.io/kube-apiserver"] == "v1.35.4"
    assert len(images) == 7


@pytest.mark.parametrize("text", ["", "W1202 some warning: a b\n", "registry.k8s.io/pause\n"])
def test_output_that_is_not_an_image_list_is_refused(text):
    with pytest.raises(ValueError):
        components.parse_image_list(text)


def test_etcd_coredns_and_pause_versions_are_derived_from_the_image_tags():
    versions = components.companion_versions(components.parse_image_list(KUBEADM_IMAGES))
    assert versions == components.CompanionVersions(etcd="3.6.6", coredns="1.13.1", pause="3.10.1")


def test_an_image_list_without_etcd_is_refused():
    with pytest.raises(ValueError, match="etcd"):
        components.companion_versions({"registry.k8s.io/pause": "3.10.1", "registry.k8s.io/coredns/coredns": "v1"})


def test_cni_plugins_are_every_linux_plugin_of_the_release():
    dirs = ["plugins/main/bridge", "plugins/main/windows", "plugins/ipam/host-local", "plugins/meta/portmap"]
    packages = components.cni_plugin_packages([*dirs, "plugins/sample", "plugins/main/bridge/testdata"])
    assert packages == (
        "github.com/containernetworking/plugins/plugins/ipam/host-local",
        "github.com/containernetworking/plugins/plugins/main/bridge",
        "github.com/containernetworking/plugins/plugins/meta/portmap",
    )


def test_calico_nested_modules_come_from_the_proxy_and_its_other_replaces_are_kept():
    source = components.calico_source("3.31.0")
    replaces = {replace.old: replace for replace in components.calico_replaces(CALICO_GO_MOD, source)}
    assert replaces["github.com/projectcalico/api"].new_version == source.api_version
    assert replaces["github.com/projectcalico/calico/lib/std"].new_version == source.commit_version
    assert replaces["k8s.io/api"].new_version == "v0.33.5"
    assert replaces["gopkg.in/natefinch/lumberjack.v2"].new_version == "v2.0.0"
    assert "github.com/projectcalico/calico/lib/httpmachinery" not in replaces  # a stub module instead
    assert all(not replace.is_local for replace in replaces.values())


def test_a_new_nested_calico_module_without_a_known_source_is_refused():
    go_mod = CALICO_GO_MOD.replace(")", "\tgithub.com/projectcalico/calico/lib/new => ./lib/new\n)")
    with pytest.raises(ValueError, match="lib/new"):
        components.calico_replaces(go_mod, components.calico_source("3.31.0"))


def test_an_unknown_calico_release_names_where_to_add_it():
    with pytest.raises(ValueError, match="CALICO_SOURCES"):
        components.calico_source("9.9.9")


def test_calico_recipe_stamps_buildinfo_and_installs_the_ipam_plugin_under_its_name():
    source = components.calico_source("3.31.0")
    recipe = components.calico_recipe("3.31.0", module(CALICO_GO_MOD, "2025-10-21T21:38:02Z", "b1f3c43f"), source)
    flags = " ".join(recipe.ldflags)
    assert "-X github.com/projectcalico/calico/pkg/buildinfo.Version=v3.31.0" in flags
    assert "-X github.com/projectcalico/calico/pkg/buildinfo.GitRevision=b1f3c43f" in flags
    assert ("calico-ipam", "calico") in recipe.aliases
    names = {recipe.binary_name(package) for package in recipe.packages}
    assert {"calico", "install", "calico-node", "kube-controllers", "check-status"} <= names
    assert dict(recipe.env)["GONOSUMDB"] == "github.com/projectcalico,github.com/tigera"


def test_pause_is_stamped_with_its_tag_and_the_kubernetes_release():
    makefile = "IMAGE = $(REGISTRY)/pause\nTAG ?= 3.10.1\nREV = $(shell git describe)\n"
    assert components.pause_makefile_tag(makefile) == "3.10.1"
    assert components.pause_version_define("3.10.1", "1.35.4") == "v3.10.1-v1.35.4"


def test_go_build_progress_counts_package_lines_not_errors():
    lines = ["k8s.io/api/core/v1", "# k8s.io/foo", "foo.go:12:3: undefined: bar", "go: downloading x v1", ""]
    assert [is_compiled_package_line(line) for line in lines] == [True, False, False, False, False]


def test_any_change_to_a_recipe_changes_its_cache_key():
    base = GoRecipe("x", "1.0.0", ("example.org/x",), (("example.org/x", "v1.0.0"),))
    changed = GoRecipe("x", "1.0.0", ("example.org/x",), (("example.org/x", "v1.0.0"),), tags=("netgo",))
    assert recipe_digest(base.document()) != recipe_digest(changed.document())
    checked = GoRecipe(
        "x", "1.0.0", ("example.org/x",), (("example.org/x", "v1.0.0"),), checks=(VersionCheck("x", (), "1.0.0"),)
    )
    assert recipe_digest(base.document()) == recipe_digest(checked.document())


def test_a_cached_build_is_reused_and_a_new_recipe_builds_again(tmp_path):
    calls: list[Path] = []

    def produce(folder: Path) -> Produced:
        calls.append(folder)
        binary = folder / "bin" / "tool"
        binary.parent.mkdir()
        binary.write_text("#!/bin/sh\n")
        return Produced({"tool": binary}, {"go_build_seconds": 1.0})

    first = cached_build(tmp_path, "tool", "1.0", {"version": "1.0"}, produce)
    again = cached_build(tmp_path, "tool", "1.0", {"version": "1.0"}, produce)
    other = cached_build(tmp_path, "tool", "1.1", {"version": "1.1"}, produce)
    assert len(calls) == 2
    assert again.folder == first.folder == tmp_path / "build" / f"tool-{first.digest}"
    assert again.binaries["tool"].read_text() == "#!/bin/sh\n"
    assert (first.folder / "build.json").is_file()
    assert first.details["timings"] == {"go_build_seconds": 1.0}
    assert other.folder != first.folder


def test_a_failed_build_leaves_nothing_in_the_cache(tmp_path):
    def produce(folder: Path) -> Produced:
        (folder / "half-written").write_text("x")
        raise RuntimeError("go build failed")

    with pytest.raises(RuntimeError, match="go build failed"):
        cached_build(tmp_path, "tool", "1.0", {"version": "1.0"}, produce)
    assert [path.name for path in (tmp_path / "build").iterdir() if not path.name.endswith(".lock")] == []
