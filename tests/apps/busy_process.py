"""A process with a known shape for process-metric tests: its name, threads and resident memory.

    python busy_process.py NAME THREADS MEGABYTES TOKEN

Sets its comm to NAME, starts THREADS-1 extra threads, touches MEGABYTES of memory, prints
"ready" and waits until stdin closes. TOKEN only makes its command line unique.
"""

import sys
import threading

name, threads, megabytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open("/proc/self/comm", "w") as fh:
    fh.write(name)
blob = bytearray(megabytes * 1024 * 1024)
for i in range(0, len(blob), 4096):
    blob[i] = 1  # touch every page, or it is not resident
done = threading.Event()
for _ in range(threads - 1):
    threading.Thread(target=done.wait, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
done.set()
