"""Build the plugins.zip MWAA gets: the ``audio_pipeline`` package at the zip's root.

``python -m infra.plugins_zip --out dist/plugins.zip`` (``make plugins-zip``). MWAA
extracts it to /usr/local/airflow/plugins/, which Airflow puts on sys.path.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
_SKIP_DIRS = {"__pycache__", "tests", ".pytest_cache"}
_EPOCH = (1980, 1, 1, 0, 0, 0)


def build(out: Path, source: Path = PLUGINS) -> list[str]:
    """Write the zip (reproducibly: sorted entries, fixed timestamps); return its entries."""
    files = sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and not _SKIP_DIRS & set(p.relative_to(source).parts) and p.suffix not in (".pyc", ".pyo")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    names = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            name = path.relative_to(source).as_posix()
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
            names.append(name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dist/plugins.zip"))
    args = parser.parse_args()
    names = build(args.out)
    print(f"wrote {args.out} ({len(names)} files)")


if __name__ == "__main__":
    main()
