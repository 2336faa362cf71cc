"""keras-introspect: classifiers that learn from their own explanations."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
TUTORIALS = ["nbclient", "nbformat", "ipykernel", "tensorboard", "tf-explain>=0.3.1", "opencv-python-headless"]
version = {}
exec((HERE / "keras_introspect" / "version.py").read_text(), version)

setup(
    name="keras-introspect",
    version=version["__version__"],
    description="Introspective learning for Keras 3: a classifier distils its own self-explanations.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["keras_introspect", "keras_introspect.*"]),
    python_requires=">=3.10",
    # TensorFlow itself is an extra: Colab ships `tensorflow`, CPU-only
    # machines want `tensorflow-cpu`; requiring one would pull the other.
    install_requires=[
        "keras>=3.12",
        "numpy",
        "matplotlib",
        "scikit-learn",
        "tensorflow-datasets",
    ],
    extras_require={
        "tf": ["tensorflow>=2.16"],
        "cpu": ["tensorflow-cpu>=2.16"],
        # What the notebooks use beyond the package (tf-explain, with OpenCV, is also the reference
        # the explainer tests compare against); the tests run the notebooks, so they need it all.
        "tutorials": TUTORIALS,
        # pytest-xdist: the suite runs in two processes (pytest.ini), which keeps CI on 2 cores under 30 minutes.
        # pytest 9.2 silently stops `--dist loadgroup` from grouping (pytest-dev/pytest-xdist#1386): each
        # process would build the costly module fixtures again (tests/test_pytest_setup.py checks the grouping).
        "test": ["pytest>=8,<9.2", "pytest-xdist>=3.2", *TUTORIALS],
        "mutation": ["mutmut>=3"],
    },
    entry_points={"console_scripts": ["keras-introspect=keras_introspect.cli.main:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Keras",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
