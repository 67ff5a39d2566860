"""Build the optional C decoder; the package metadata lives in pyproject.toml.

``mentatlab._columnar`` (src/mentatlab/_columnar.c) is the columnar OTLP decoder of
``mentatlab.receivers.columnar``; ``optional=True`` lets an install without a compiler
finish, and the pure-Python fallback then runs.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "mentatlab._columnar",
    sources=["src/mentatlab/_columnar.c"],
    extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
    optional=True,
)])
