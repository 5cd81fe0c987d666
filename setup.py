"""textclf-pipelines: Model Maker's text classifier as a reproducible Kubeflow/Vertex pipeline."""

from setuptools import find_packages, setup

TENSORFLOW = "~=2.21.0"  # one pin for the CPU wheel and the GPU extra

INSTALL_REQUIRES = [
    "tensorflow" + TENSORFLOW,
    "tensorflow-text~=2.21.0",
    "tensorflow-hub~=0.16.1",
    "tf-keras~=2.21.0",
    "kfp~=2.17.0",
    "apache-beam[gcp]~=2.77.0",
    "google-cloud-storage>=3.0,<4",
    "google-cloud-aiplatform>=1.60,<2",
    "ai-edge-litert>=2.0,<3",
    "safetensors>=0.4,<1",
    "flatbuffers>=24.3",
    "numpy>=1.26,<3",
    "pyyaml>=6,<7",
    "matplotlib>=3.8,<4",
    "markdown>=3.5,<4",
]

setup(
    name="textclf-pipelines",
    version="0.1.0",
    description="MediaPipe Model Maker's text classifier as a kfp pipeline for Vertex AI, Kubeflow and local runs",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["components", "components.*", "pipelines", "pipelines.*"]),
    # The built-in data set (`builtin:sst2/...`, the pipeline's default): in the wheel, so
    # `pip install .` and the component image carry it.
    package_data={"components": ["data/*/*.tsv.gz", "data/*/README.md"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # The GPU image (Dockerfile VARIANT=gpu): the same TensorFlow with its CUDA libraries from
        # pip; the plain wheel finds no CUDA in a slim image and silently trains on the CPU.
        "gpu": ["tensorflow[and-cuda]" + TENSORFLOW],
        # Vertex AI custom jobs for steps given a machine_type or replica_count
        # (pipelines/resources.py); only where the pipeline is compiled or submitted.
        "vertex": ["google-cloud-pipeline-components~=2.22.0"],
        "test": [
            "pytest>=8,<10",
            "gcp-storage-emulator>=2024.8",
            "mediapipe>=1.2,<1.3",
            "ruff==0.17.6",
            # tests/test_dask_runner.py: Beam's DaskRunner on a local two-worker cluster. Pinned
            # to the versions whose behaviour components/beam_runner.py works around.
            "apache-beam[dask]~=2.77.0",
            "dask~=2026.8.0",
            "distributed~=2026.8.0",
            "google-cloud-pipeline-components~=2.22.0",
        ],
        # Running the Beam steps on a Dask cluster (--runner=DaskRunner).
        "dask": [
            "apache-beam[dask]~=2.77.0",
            "dask~=2026.8.0",
            "distributed~=2026.8.0",
        ],
        # benchmarks/suite.py's baseline (TF-IDF + logistic regression); not needed to run or test.
        "bench": [
            "scikit-learn>=1.5,<2",
            "mediapipe>=1.2,<1.3",
        ],
    },
    entry_points={"console_scripts": ["textclf=pipelines.cli:main"]},
)
