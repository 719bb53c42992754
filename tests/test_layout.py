"""Model packages and the shared package import without Ray, so they train and test anywhere."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "package",
    [
        "models.lrurec",
        "models.verbalizer",
        "models.dpr",
        "models.kobart",
        "tandem.settings",
        "tandem.assets",
        "db.server",
        "db.pool",
    ],
)
def test_imports_without_ray(package: str) -> None:
    code = f"import sys, {package}; assert 'ray' not in sys.modules, 'imports ray'"
    subprocess.run([sys.executable, "-c", code], check=True)
