#!/bin/bash
# The whole suite (as run_tests.sh runs it, without set-up) against a few survivors.
cd /tmp/mut
export TF_CPP_MIN_LOG_LEVEL=2
for name in "$@"; do
  .venv/bin/python - "$name" <<'PY'
import sys; sys.path.insert(0,'/tmp/mutrun'); from mutants import M
for n,f,old,new in M:
  if n==sys.argv[1]:
    s=open(f).read(); assert s.count(old)==1; open(f,'w').write(s.replace(old,new))
PY
  start=$(date +%s)
  out=$(.venv/bin/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -p no:cacheprovider 2>&1 | tail -15)
  res=$(echo "$out" | grep -E "passed|failed" | tail -1)
  failing=$(echo "$out" | grep -E "^FAILED" | head -3 | cut -c1-150 | tr '\n' ';')
  echo "$name FULL: $res $(( $(date +%s) - start ))s $failing" >> /tmp/mutrun/full_results.txt
  git checkout -q -- alc_jax
done
echo DONE >> /tmp/mutrun/full_results.txt
