# Source this on a GPU machine without network, from the repository root, after copying Python 3.12
# x86_64 wheels of the packages its image lacks into .whl/ (see BENCHMARKS.md for the list):
#   source benchmarks/gpu_env.sh
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=/tmp/site:$PWD
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and torch (nvdiffrast) share the GPU
export TORCH_CUDA_ARCH_LIST=9.0             # shorter nvdiffrast JIT build on Hopper
export PYTHONUNBUFFERED=1
