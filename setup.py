"""nhp_jax: noise-robust local patch descriptors (denoiser + L2-Net) in JAX/Flax."""

import os

import setuptools

# The ranges resolve together on Python 3.11, 3.12 and 3.13 (BUILD.md has the
# install matrix: what each Python resolves to, and what was installed and run).
# Clean install tested on Python 3.11 (CPU): jax 0.10.2, flax 0.12.8,
# optax 0.2.8, orbax-checkpoint 0.12.8, tensorflow-cpu 2.21.0,
# tensorflow-datasets 4.9.10. Upper bounds keep the stack resolvable together.
#
# JAX-only part: models, inference, checkpoints, the evaluator and the
# descriptor export. BUILD.md lists it for `pip install --no-deps` installs;
# keep the two in step.
CORE_REQUIRES = [
    "jax>=0.10.0,<0.13",
    "flax>=0.12.0,<0.13",
    "optax>=0.2.5,<0.3",
    "orbax-checkpoint>=0.12.0,<0.13",
    "numpy>=2.0,<3",
    "absl-py>=2.1,<3",
    "ml_collections>=1.0,<2",
    "scikit-image>=0.25,<0.27",
    "pillow>=10,<14",
    "scipy>=1.13,<2",
    "matplotlib>=3.9,<4",
    "tqdm>=4.66,<5",
]

# Training only: the TensorFlow input pipeline (always on the CPU) and the
# metric writers (clu's writers need TensorFlow).
TRAIN_REQUIRES = [
    "tensorflow-cpu>=2.20,<2.22",
    "tensorboard>=2.20,<2.22",
    "tensorflow-datasets>=4.9.8,<5",
    "clu>=0.0.12,<0.1",
]

# NHP_JAX_ONLY=1 installs the JAX-only part (for a machine whose image has JAX
# and no TensorFlow); training then needs TRAIN_REQUIRES as well.
JAX_ONLY = os.environ.get("NHP_JAX_ONLY", "").strip().lower() in ("1", "true", "yes")
INSTALL_REQUIRES = CORE_REQUIRES + ([] if JAX_ONLY else TRAIN_REQUIRES)

_JAX = ">=0.10.0,<0.13"
EXTRAS = {
    "test": ["pytest>=8,<10", "pytest-xdist>=3.6,<4", "hypothesis>=6.100,<7"],
    # jaxlib's CUDA plugins: CUDA and cuDNN come as wheels. TensorFlow stays on
    # the CPU (tensorflow-cpu).
    "cuda12": [f"jax[cuda12]{_JAX}"],
    "cuda13": [f"jax[cuda13]{_JAX}"],
    "cuda": [f"jax[cuda12]{_JAX}"],  # older name of cuda12
    "tpu": [f"jax[tpu]{_JAX}"],
    "train": TRAIN_REQUIRES,  # the training part on top of a NHP_JAX_ONLY=1 install
}

setuptools.setup(
    name="nhp_jax",
    version="0.1.0",
    description="Noise-robust HPatches descriptors: denoisers, L2-Net and the "
                "HPatches benchmarks in JAX/Flax.",
    python_requires=">=3.11,<3.14",
    # Namespace packages too: the resources folders (data files, no __init__.py).
    packages=setuptools.find_namespace_packages(
        include=["nhp_jax", "nhp_jax.*", "experiments", "experiments.*"],
        exclude=["*.__pycache__"]),
    package_data={"nhp_jax.data.resources": ["*"], "nhp_jax.evaluation.resources": ["*"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    license="MIT",
)
