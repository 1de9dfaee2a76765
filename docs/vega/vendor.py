"""Rebuild `docs/vega/plots.html`, the offline HTML template of `dvc plots show`, from npm packages.

    cd /tmp && npm pack vega@5 vega-lite@5 vega-embed@6 && for f in vega*.tgz; do mkdir -p ${f%.tgz};
        tar xzf $f -C ${f%.tgz}; done
    python docs/vega/vendor.py /tmp

DVC's own page loads vega from a CDN (blank offline); this one inlines the three minified builds
(BSD-3-Clause) and makes every plot an SVG without the actions menu.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGES = (("vega", "vega.min.js"), ("vega-lite", "vega-lite.min.js"), ("vega-embed", "vega-embed.min.js"))
EMBED_DEFAULTS = """(function () {
  var embed = window.vegaEmbed;
  window.vegaEmbed = function (el, spec, opt) {
    return embed(el, spec, Object.assign({renderer: "svg", actions: false}, opt || {}));
  };
})();"""
PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{refresh_tag}
<title>whale-reid plots</title>
<!-- The HTML template of `dvc plots show` (.dvc/config: plots.html_template), built by docs/vega/vendor.py:
     vega, vega-lite and vega-embed are inlined so the page draws offline. -->
@SCRIPTS@
<style>
body { font-family: sans-serif; margin: 1.5em; }
body > div { display: inline-block; vertical-align: top; margin: 0 2em 2em 0; }
</style>
</head>
<body>
<h1>whale-reid: dvc plots</h1>
{plot_divs}
</body>
</html>
"""


def build(npm_dir: Path) -> str:
    """The template's text from the unpacked `npm pack` folders (`<name>-<version>/package/build/*.min.js`)."""
    scripts = []
    for name, build_file in PACKAGES:
        (folder,) = sorted(npm_dir.glob(f"{name}-[0-9]*/package"))
        code = (folder / "build" / build_file).read_text(encoding="utf-8").strip()
        if "</script" in code or "{plot_divs}" in code:
            raise SystemExit(f"{name}: the build cannot be inlined as it is")
        scripts.append(f"<script>/* {folder.parent.name}, BSD-3-Clause, from npm */\n{code}\n</script>")
    scripts.append(f"<script>\n{EMBED_DEFAULTS}\n</script>")
    return PAGE.replace("@SCRIPTS@", "\n".join(scripts))


if __name__ == "__main__":
    out = Path(__file__).with_name("plots.html")
    out.write_text(build(Path(sys.argv[1])), encoding="utf-8")
    print(f"wrote {out}")
