"""Run a snippet in a separate Python that cannot import dlsuite: exported models must not need it."""

import json
import os
import subprocess
import sys

BLOCK_DLSUITE = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'dlsuite':
            raise ImportError('the exported model must not need ' + name)
sys.meta_path.insert(0, Block())
"""


def run_without_dlsuite(script: str, timeout: int = 240):
    """Runs `script` (which prints one JSON line last) and returns that JSON."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", BLOCK_DLSUITE + script], capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
