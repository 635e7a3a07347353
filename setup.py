"""Packaging for the TFX training pipeline for Keras classifiers.

Dependencies are pinned in requirements.lock (installed by `make setup`); the
ranges below only name what the code imports, so that installing the package
into an environment built from the lock never changes a pinned version.
"""

from setuptools import find_packages, setup

setup(
    name="tfx-keras-pipeline",
    version="0.1.0",
    description="A production TFX training pipeline for Keras classifiers.",
    python_requires=">=3.9,<3.11",
    packages=find_packages(
        include=[
            "pipeline",
            "pipeline.*",
            "components",
            "components.*",
            "kubeflow",
            "kubeflow.*",
        ]
    ),
    install_requires=[
        "tfx[kfp]==1.16.0",
        "apache-beam[gcp]==2.59.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "matplotlib",
        "PyYAML",
    ],
    entry_points={"console_scripts": ["kpipe=pipeline.cli:main"]},
)
