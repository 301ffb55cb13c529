"""nhp_jax: noise-robust local patch descriptors (denoiser + L2-Net) in JAX/Flax."""

import setuptools

# Ranges tested together on Python 3.11 (clean install, CPU): jax 0.10.2,
# flax 0.12.8, optax 0.2.8, orbax-checkpoint 0.12.8, tensorflow-cpu 2.21.0,
# tensorflow-datasets 4.9.10. Upper bounds keep the stack resolvable together.
INSTALL_REQUIRES = [
    "jax>=0.10.0,<0.11",
    "flax>=0.12.0,<0.13",
    "optax>=0.2.5,<0.3",
    "orbax-checkpoint>=0.12.0,<0.13",
    "numpy>=2.0,<3",
    "tensorflow-cpu>=2.20,<2.22",
    "tensorboard>=2.20,<2.22",
    "tensorflow-datasets>=4.9.8,<5",
    "absl-py>=2.1,<3",
    "ml_collections>=1.0,<2",
    "clu>=0.0.12,<0.1",
    "scikit-image>=0.25,<0.27",
    "pillow>=10,<14",
    "scipy>=1.13,<2",
    "matplotlib>=3.9,<4",
    "tqdm>=4.66,<5",
]

EXTRAS = {
    "test": ["pytest>=8,<10", "pytest-xdist>=3.6,<4", "hypothesis>=6.100,<7"],
    # CUDA 12 wheels of jaxlib; TensorFlow stays on the CPU (tensorflow-cpu).
    "cuda": ["jax[cuda12]>=0.10.0,<0.11"],
    "tpu": ["jax[tpu]>=0.10.0,<0.11"],
}

setuptools.setup(
    name="nhp_jax",
    version="0.1.0",
    description="Noise-robust HPatches descriptors: denoisers, L2-Net and the "
                "HPatches benchmarks in JAX/Flax.",
    python_requires=">=3.11,<3.12",
    packages=setuptools.find_packages(include=["nhp_jax", "nhp_jax.*",
                                               "experiments", "experiments.*"]),
    package_data={"nhp_jax": ["data/resources/*", "evaluation/resources/*"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    license="MIT",
)
