"""The operator image three ways agree: the Dockerfile users build, the image the real node
gets (hack/controlplane/images.py, made without Docker) and what the chart runs.

Entrypoint, the two ports (health and metrics) and the non-root user id must match,
or `helm install` of an image built from the Dockerfile would not start, or not pass
its probes, or be refused by runAsNonRoot.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from controlplane import images

REPO = Path(__file__).resolve().parents[2]


def dockerfile() -> dict[str, Any]:
    text = (REPO / "Dockerfile").read_text()
    final = text.rsplit("\nFROM ", 1)[1]  # the runtime stage
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", final, re.MULTILINE).group(1))  # type: ignore[union-attr]
    ports = sorted(int(p) for p in re.search(r"^EXPOSE (.+)$", final, re.MULTILINE).group(1).split())  # type: ignore[union-attr]
    user = re.search(r"^USER (\S+)$", final, re.MULTILINE).group(1)  # type: ignore[union-attr]
    packages = re.findall(r"apt-get install -y --no-install-recommends ([^\\&\n]+)", final)
    return {"entrypoint": entrypoint, "ports": ports, "user": user, "packages": " ".join(packages).split()}


def chart(cluster: Any) -> dict[str, Any]:
    rendered = subprocess.run(
        [str(cluster.bin_dir / "helm"), "template", "kfl", str(REPO / "helm" / "kubeflowlite")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (deployment,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = pod["securityContext"]
    return {
        "entrypoint": container["command"],
        "ports": sorted(p["containerPort"] for p in container["ports"]),
        "user": f"{security['runAsUser']}:{security['runAsGroup']}",
        "image": container["image"],
    }


def test_dockerfile_node_image_and_chart_agree(cluster: Any) -> None:
    built = dockerfile()
    made = images.IMAGES["kubeflowlite"]
    deployed = chart(cluster)
    assert built["entrypoint"] == list(made.entrypoint) == deployed["entrypoint"]
    assert built["ports"] == sorted(made.ports) == deployed["ports"]
    assert built["user"] == made.user == deployed["user"]
    # What the Dockerfile adds to its Python base, the node's image has too (Graphviz for the UI).
    assert set(built["packages"]) <= set(images.OPERATOR_PACKAGES)
    # The image the node gets is the one the chart names by default.
    assert made.name.endswith(deployed["image"])
