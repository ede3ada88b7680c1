import os

# Tests run on 2-core machines; one BLAS/torch thread per process avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Training picks its thread count from the free cores, and results depend on it (CPU kernels
# reduce in a thread-count-dependent order): pin it so that two runs in a test match whatever
# the machine's load.
os.environ.setdefault("PATHOSYNTH_THREADS", "1")
