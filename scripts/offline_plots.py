"""Write .dvc/plots/offline.html: DVC's page for `dvc plots show/diff` with Vega inlined.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN and stays blank offline.
This page carries the three minified builds (the versions dvc-render asks the CDN for), so the
page DVC writes opens anywhere without a network. .dvc/config names it (plots.html_template).
The output is committed; rerun this script (it needs npm) only to change the versions.

    python scripts/offline_plots.py
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# package, version, the minified build inside its npm tarball
PACKAGES = (
    ("vega", "5.20.2", "package/build/vega.min.js"),
    ("vega-lite", "5.2.0", "package/build/vega-lite.min.js"),
    ("vega-embed", "6.18.2", "package/build/vega-embed.min.js"),
)
OUT = Path(__file__).resolve().parents[1] / ".dvc" / "plots" / "offline.html"

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC plots: predictive_scoring</title>
{scripts}
    <style>
        body {{ font-family: sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def _build(package: str, version: str, member: str, workdir: Path) -> str:
    """The minified build of one npm package, fetched with `npm pack`."""
    subprocess.run(
        ["npm", "pack", "--silent", f"{package}@{version}"],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    with tarfile.open(workdir / f"{package}-{version}.tgz") as tar:
        extracted = tar.extractfile(member)
        if extracted is None:
            raise FileNotFoundError(f"{member} is not in {package}@{version}")
        return extracted.read().decode("utf-8")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        scripts = []
        for package, version, member in PACKAGES:
            code = _build(package, version, member, Path(tmp))
            # a literal "</script>" inside the code would end the element early
            code = code.replace("</script", "<\\/script")
            scripts.append(
                f"    <!-- {package}@{version} (BSD-3-Clause) -->\n<script>{code}</script>"
            )
    # {{ and }} stay literal for str.format; DVC fills {plot_divs} and {refresh_tag} itself
    page = PAGE.format(
        refresh_tag="{refresh_tag}", scripts="\n".join(scripts), plot_divs="{plot_divs}"
    )
    OUT.write_text(page, encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
