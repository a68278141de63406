"""Every module of the library and the command line imports, so the quick test loop
(`pytest -m "not slow"`) catches a broken import even in a module only slow tests exercise."""

import importlib
import pkgutil

import pytest

import slic_cli
import stages


def every_module() -> list[str]:
    names = []
    for package in (stages, slic_cli):
        names.append(package.__name__)
        for found in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            names.append(found.name)
    return sorted(names)


def test_both_packages_are_walked():
    names = every_module()
    assert {"stages.pretrain", "stages.training.slic_step", "slic_cli.app"} <= set(names)


@pytest.mark.parametrize("name", every_module())
def test_module_imports(name):
    module = importlib.import_module(name)
    assert module.__name__ == name
