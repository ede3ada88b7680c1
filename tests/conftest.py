import os

# Tests run on 2-core machines; one BLAS/torch thread per process avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")
