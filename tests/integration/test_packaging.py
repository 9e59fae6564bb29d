"""Operations files: `make install DESTDIR=…` lays out the binary, the systemd unit, the
sysusers entry and the commented config; `systemd-analyze verify` is clean on the installed
unit; the unit asks for what the daemon implements; the Dockerfile lints (hadolint) and builds
with the same make targets the tests run."""
import os
import pathlib
import re
import shutil
import stat
import subprocess
import sys

import pytest

from conftest import ROOT

UNIT = ROOT / "systemd" / "seekd.service"


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    subprocess.run(["make", "-s", "--no-print-directory", "install", f"DESTDIR={dest}",
                    "PREFIX=/usr/local"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return dest


def mode(p):
    return stat.S_IMODE(p.stat().st_mode)


def test_install_layout(staged):
    binary = staged / "usr/local/bin/seekd"
    unit = staged / "usr/local/lib/systemd/system/seekd.service"
    sysusers = staged / "usr/local/lib/sysusers.d/seekd.conf"
    conf = staged / "etc/seekd/seekd.yaml"
    env = staged / "etc/seekd/seekd.env"
    assert mode(binary) == 0o755 and os.access(binary, os.X_OK)
    assert mode(unit) == 0o644 and mode(sysusers) == 0o644 and mode(env) == 0o600
    assert conf.read_text() == (ROOT / "config" / "seekd.yaml").read_text()
    assert "ExecStart=/usr/local/bin/seekd serve --config /etc/seekd/seekd.yaml" in unit.read_text()
    assert re.search(r"^u seekd ", sysusers.read_text(), re.M)


def test_install_keeps_edited_config(tmp_path):
    conf = tmp_path / "etc/seekd/seekd.yaml"
    conf.parent.mkdir(parents=True)
    conf.write_text("port: 9000\n")
    subprocess.run(["make", "-s", "--no-print-directory", "install", f"DESTDIR={tmp_path}",
                    "PREFIX=/opt/seekd"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    assert conf.read_text() == "port: 9000\n"
    unit = (tmp_path / "opt/seekd/lib/systemd/system/seekd.service").read_text()
    assert "ExecStart=/opt/seekd/bin/seekd serve" in unit


def test_systemd_analyze_verify(staged):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing (make deps installs the systemd package)")
    # The unit names the binary where it will be installed; point it at the staged copy so that
    # verify can check that ExecStart is executable.
    unit = staged / "verify" / "seekd.service"
    unit.parent.mkdir(exist_ok=True)
    text = (staged / "usr/local/lib/systemd/system/seekd.service").read_text()
    unit.write_text(text.replace("/usr/local/bin/seekd", str(staged / "usr/local/bin/seekd")))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=30",
                        str(unit)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_sysusers_entry(staged):
    r = subprocess.run(["systemd-sysusers", "--dry-run", f"--root={staged}"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "Creating user 'seekd'" in r.stdout + r.stderr, r.stderr


def unit_settings():
    out = {}
    for line in UNIT.read_text().splitlines():
        m = re.match(r"^(\w+)=(.*)$", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def test_unit_asks_for_the_daemon_contract():
    s = unit_settings()
    expect = {"Type": "notify", "Restart": "on-failure", "NoNewPrivileges": "yes",
              "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
              "User": "seekd", "LimitMEMLOCK": "infinity"}
    for key, value in expect.items():
        assert s.get(key) == [value], key
    for key in ("WatchdogSec", "LimitNOFILE", "EnvironmentFile", "ReadOnlyPaths", "ExecReload"):
        assert key in s, key
    assert "-HUP" in s["ExecReload"][0]


def dockerfile_instructions():
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_hadolint():
    hadolint = shutil.which("hadolint") or str(pathlib.Path(sys.executable).parent / "hadolint")
    assert os.path.exists(hadolint), "hadolint missing: pip install -r tests/requirements.txt"
    r = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_contract():
    ins = dockerfile_instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) == 2
    assert re.match(r"nvidia/cuda:\$\{CUDA_VERSION\}-devel-\S+ AS build", froms[0])
    assert re.match(r"nvidia/cuda:\$\{CUDA_VERSION\}-runtime-\S+$", froms[1])
    assert any(w == "ARG" and r.startswith("CUDA_VERSION=13.") for w, r in ins)
    final = ins[[i for i, (w, _) in enumerate(ins) if w == "FROM"][1]:]
    user = [r for w, r in final if w == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "8000") in final
    assert any(w == "HEALTHCHECK" and "/health" in r for w, r in final)
    assert ("ENTRYPOINT", '["seekd", "serve"]') in final
    assert any(w == "VOLUME" and "/models" in r for w, r in final)
    assert any(w == "COPY" and r.endswith("/etc/seekd/seekd.yaml") for w, r in final)
    # The build uses the same make targets as the tests; each must exist.
    runs = " ".join(r for w, r in ins if w == "RUN")
    targets = set(re.findall(r"\bmake (?:-j\"\$\(nproc\)\" )?(?:[A-Z_]+=\S+ )*([\w-]+)", runs))
    assert {"seekd", "cuda-unit", "install"} <= targets, targets
    assert "make -j\"$(nproc)\" CUDA=1 seekd" in runs and "make install CUDA=1" in runs
    for t in targets:
        r = subprocess.run(["make", "-n", t], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
